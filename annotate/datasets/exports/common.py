"""Shared by the exports: atomic export folders and the samples of each split."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq

from annotate.datasets.readers import iter_records, shard_paths
from annotate.core.names import check_name


def dataset_splits(dataset_dir: str | Path) -> list[str]:
    """The splits that have shards, in train/val/test order."""
    found = {p.relative_to(Path(dataset_dir) / "shards").parts[0] for p in shard_paths(dataset_dir)}
    order = ["train", "val", "test"]
    return [s for s in order if s in found] + sorted(found - set(order))


def split_records(dataset_dir: str | Path, split: str, columns: list[str], desc: str | None = None
                  ) -> Iterator[dict]:
    """Every sample record of one split, shard by shard (one row group in memory).

    desc: label of a progress bar over the split's samples (stderr; none when None): an
    export of a real dataset writes hundreds of thousands of files.
    """
    paths = shard_paths(dataset_dir, split)
    records = (r for path in paths for r in iter_records(path, columns))
    if desc is None:
        yield from records
        return
    from tqdm import tqdm

    total = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    yield from tqdm(records, total=total, unit="sample", desc=desc, mininterval=2.0)


def sample_stem(record: dict) -> str:
    """``<sequence>/<camera>/<frame:08d>_<person>``: a sample's file name without extension.

    The names come from shard files and are checked (``annotate.core.names``) before they make a
    path, so a shard cannot send an export outside its folder."""
    where = f"shard record {record.get('sample_id', '')!s}".strip()
    return (f"{check_name(record['sequence'], 'sequence', where)}/{check_name(record['camera'], 'camera', where)}/"
            f"{int(record['frame']):08d}_{int(record['person'])}")


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)

