"""Reading sample shards: the shard list of a dataset, and random access to sample records.

Shards are plain Parquet (schemas/samples.schema.yaml): pandas, pyarrow, polars, DuckDB and
Hugging Face ``datasets`` read them without this package. This module adds what a trainer
needs on top: the shards of one split (from ``index.json``, or by listing the folder), the
schema check, and ``ShardRecords``, random access by sample number that reads one row
group at a time (row groups are small, 64 samples by default) and keeps the last few.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from annotate.core.tables import check_file_schema
from annotate.core.names import check_relative_path

SCHEMA = "samples"
INDEX_FILE = "index.json"
# What a training step needs; the label-only columns are far smaller than the images.
TRAIN_COLUMNS = ["sample_id", "sequence", "image", "yaw", "pitch", "roll", "R_cam_head", "landmarks_crop",
                 "landmark_visibility", "sample_weight"]


def shard_paths(root: str | Path, split: str | None = None) -> list[Path]:
    """The shard files of a dataset folder (``results/dataset``), optionally of one split.

    Uses ``index.json`` when present (the shards the card counted, in a fixed order),
    else every ``shards/<split>/**/*.parquet`` in sorted order.
    """
    root = Path(root)
    index = root / INDEX_FILE
    if index.is_file():
        doc = json.loads(index.read_text())
        return [check_relative_path(s["path"], root, "shard path", index)
                for s in doc["shards"] if split is None or s["split"] == split]
    pattern = f"shards/{split}/**/*.parquet" if split else "shards/**/*.parquet"
    return sorted(p for p in root.glob(pattern) if not p.name.startswith("."))


def _as_paths(shards: str | Path | Sequence[str | Path], split: str | None) -> list[Path]:
    if isinstance(shards, (str, Path)) and Path(shards).is_dir():
        return shard_paths(shards, split)
    if isinstance(shards, (str, Path)):
        return [Path(shards)]
    return [Path(p) for p in shards]


class ShardRecords:
    """Random access to the samples of some shards: ``len``, ``records[i] -> dict``.

    shards: a dataset folder (with ``split``), one shard, or a list of shards.
    columns: the columns each record holds (default ``TRAIN_COLUMNS``); ``image`` stays
    JPEG bytes. Sample i is row i of the shards concatenated in the given order. A
    ``RecordSource`` for annotate.train (``labels_deg`` reads no image).
    """

    def __init__(self, shards: str | Path | Sequence[str | Path], split: str | None = None,
                 columns: Sequence[str] | None = None, cache_row_groups: int = 4):
        self.paths = _as_paths(shards, split)
        for p in self.paths:
            check_file_schema(p, SCHEMA)
        self.columns = list(columns or TRAIN_COLUMNS)
        # (shard, row group) of every row group, and the first sample number of each.
        groups, starts, total = [], [], 0
        for s, p in enumerate(self.paths):
            meta = pq.ParquetFile(p).metadata
            for g in range(meta.num_row_groups):
                groups.append((s, g))
                starts.append(total)
                total += meta.row_group(g).num_rows
        self._groups = groups
        self._starts = np.asarray(starts, dtype=np.int64)
        self._len = total
        self._files: dict[int, pq.ParquetFile] = {}
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = max(1, cache_row_groups)

    def __len__(self) -> int:
        return self._len

    def __getstate__(self):
        # Open files do not pickle (DataLoader workers): each worker reopens its own.
        state = dict(self.__dict__)
        state["_files"], state["_cache"] = {}, OrderedDict()
        return state

    def _row_group(self, k: int) -> dict:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        s, g = self._groups[k]
        if s not in self._files:
            self._files[s] = pq.ParquetFile(self.paths[s])
        table = self._files[s].read_row_group(g, columns=self.columns)
        cols = {c: _column_values(table.column(c)) for c in self.columns}
        self._cache[k] = cols
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return cols

    def __getitem__(self, index: int) -> dict:
        if not -self._len <= index < self._len:
            raise IndexError(f"sample {index} out of range ({self._len} samples)")
        index %= self._len
        k = int(np.searchsorted(self._starts, index, side="right") - 1)
        cols = self._row_group(k)
        row = index - int(self._starts[k])
        return {c: v[row] for c, v in cols.items()}

    def labels_deg(self) -> np.ndarray:
        """(N, 3) [yaw, pitch, roll] of every sample, without reading any image."""
        return read_columns(self.paths, ["yaw", "pitch", "roll"]).to_pandas().to_numpy(np.float64).reshape(-1, 3)


def _column_values(col: pa.ChunkedArray) -> list | np.ndarray:
    """Per-row values: numpy rows for numeric lists (None for nulls), bytes for binary."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = col.type
    if pa.types.is_fixed_size_list(t):
        n = t.list_size
        flat = col.flatten().to_numpy(zero_copy_only=False) if col.null_count == 0 else None
        if flat is not None:
            return list(flat.reshape(len(col), n))
        return [None if v is None else np.asarray(v) for v in col.to_pylist()]
    if pa.types.is_dictionary(t):
        return col.cast(t.value_type).to_pylist()
    if pa.types.is_binary(t) or pa.types.is_string(t):
        return col.to_pylist()
    return col.to_numpy(zero_copy_only=False)


def read_columns(shards: str | Path | Sequence[str | Path], columns: Sequence[str], split: str | None = None
                 ) -> pa.Table:
    """Some columns of every sample as one Arrow table (checks each shard's schema)."""
    paths = _as_paths(shards, split)
    tables = []
    for p in paths:
        check_file_schema(p, SCHEMA)
        tables.append(pq.read_table(p, columns=list(columns)))
    if not tables:
        from annotate.core.schema import load_schema

        schema = load_schema(SCHEMA).arrow
        return pa.schema([schema.field(c) for c in columns]).empty_table()
    return pa.concat_tables(tables)


def iter_records(path: str | Path, columns: Sequence[str] | None = None, batch_rows: int = 64) -> Iterator[dict]:
    """The records of one shard in order, a row group's worth in memory at a time."""
    check_file_schema(path, SCHEMA)
    cols = list(columns or TRAIN_COLUMNS)
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=cols):
        values = {c: _column_values(batch.column(c)) for c in cols}
        for i in range(batch.num_rows):
            yield {c: v[i] for c, v in values.items()}
