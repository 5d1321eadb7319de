"""Bounded-size Parquet shards of the samples table, each written atomically.

``ShardWriter`` takes rows in batches and writes ``<directory>/<prefix>-NNN.parquet``,
starting a new shard when the current one reaches ``max_samples`` rows or ``max_bytes``
(estimated from the JPEG bytes plus a fixed per-row allowance). Rows are written in row
groups of ``row_group_samples`` so a reader can fetch one sample without reading a shard.
A shard appears under its final name only when complete (annotate.core.tables'
StreamingTableWriter); ``abort`` removes the partial one. The same rows in the same order
give byte-identical shards (no timestamps in the files), which makes resumed runs
reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from annotate.core.schema import SchemaError, load_schema
from annotate.core.tables import StreamingTableWriter, to_arrow

SCHEMA = "samples"
# Label columns, transform, strings: a conservative allowance per row besides the JPEG.
ROW_OVERHEAD_BYTES = 1500


@dataclass(frozen=True)
class ShardLimits:
    """max_samples rows or max_bytes (whichever first) per shard; rows per row group."""

    max_samples: int = 4096
    max_bytes: int = 256 * 2 ** 20
    row_group_samples: int = 64

    def __post_init__(self) -> None:
        if min(self.max_samples, self.max_bytes, self.row_group_samples) < 1:
            raise ValueError(f"shard limits must be positive: {self}")


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    rows: int
    bytes: int


def shard_name(prefix: str, number: int) -> str:
    return f"{prefix}-{number:03d}.parquet"


class ShardWriter:
    """Writes the samples of one unit (e.g. one split of one camera) into numbered shards."""

    def __init__(self, directory: str | Path, prefix: str, limits: ShardLimits = ShardLimits(),
                 on_shard=None):
        self.directory = Path(directory)
        self.prefix = prefix
        self.limits = limits
        self.on_shard = on_shard            # called with each finished ShardInfo (progress, tests)
        self.shards: list[ShardInfo] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: StreamingTableWriter | None = None
        self._rows = 0
        self._bytes = 0

    def write(self, rows: dict | pa.Table) -> None:
        """Append rows: a column dict, or a table with exactly the samples schema."""
        if isinstance(rows, pa.Table):
            if not rows.schema.equals(load_schema(SCHEMA).arrow, check_metadata=False):
                raise SchemaError("ShardWriter.write: table schema differs from schemas/samples.schema.yaml")
            table = rows
        else:
            table = to_arrow(rows, SCHEMA)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.limits.row_group_samples:
            self._flush(self.limits.row_group_samples)

    def _take(self, n: int) -> pa.Table:
        """The first n pending rows, removed from the pending list."""
        table = pa.concat_tables(self._pending)
        head, rest = table.slice(0, n), table.slice(n)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        return head

    def _flush(self, n: int) -> None:
        rows = self._take(n)
        # Split the row group where the shard limits fall, so every shard stays bounded.
        while rows.num_rows:
            if self._writer is None:
                path = self.directory / shard_name(self.prefix, len(self.shards))
                self._writer = StreamingTableWriter(path, SCHEMA)
                self._rows = self._bytes = 0
            sizes = pc.binary_length(rows.column("image")).to_numpy(zero_copy_only=False) + ROW_OVERHEAD_BYTES
            room_rows = self.limits.max_samples - self._rows
            cum = self._bytes + sizes.cumsum()
            room_bytes = int((cum <= self.limits.max_bytes).sum()) or (0 if self._rows else 1)
            take = max(0, min(rows.num_rows, room_rows, room_bytes))
            if take:
                part = rows.slice(0, take)
                self._writer.write(part)
                self._rows += take
                self._bytes += int(sizes[:take].sum())
                rows = rows.slice(take)
            if rows.num_rows or self._rows >= self.limits.max_samples:
                self._close_shard()

    def _close_shard(self) -> None:
        if self._writer is None:
            return
        path = self._writer.close()
        info = ShardInfo(path, self._rows, path.stat().st_size)
        self._writer = None
        self.shards.append(info)
        if self.on_shard is not None:
            self.on_shard(info)

    def close(self) -> list[ShardInfo]:
        """Write the remaining rows, finish the open shard; returns every shard written."""
        if self._pending_rows:
            self._flush(self._pending_rows)
        self._close_shard()
        return self.shards

    def abort(self) -> None:
        """Drop the shard being written (finished shards stay; the caller owns them)."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        self._pending, self._pending_rows = [], 0
