"""Sample shards as PyTorch datasets: map-style (random access) and iterable (streaming).

Both decode the JPEG crop to an (H, W, 3) uint8 RGB array and hand the record to
``transform`` (augmentation; it returns what the DataLoader collates). The default
transform makes tensors: ``image`` (3, H, W) uint8, ``euler_deg`` (3,) float32
[yaw, pitch, roll], ``R`` (3, 3) float32 R_cam_head, ``sample_weight``, ``sample_id``.

- ``ShardDataset``: map-style over ``ShardRecords`` (any sampler: shuffling, weighted
  sampling with ``sample_weight``, DistributedSampler).
- ``ShardIterableDataset``: streams row groups; the row groups of all shards are dealt
  out round-robin over DDP ranks x DataLoader workers (``torch.utils.data.get_worker_info``),
  in an order shuffled per epoch (``set_epoch``), with a shuffle buffer inside each worker.
  Sequential reads of whole row groups make it the fastest way through a dataset.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from annotate.datasets.readers import TRAIN_COLUMNS, ShardRecords, _as_paths, _column_values
from annotate.core.tables import check_file_schema
from annotate.media.jpeg import decode_jpeg_rgb


def decode_record(record: dict) -> dict:
    """The record with ``image`` decoded to (H, W, 3) uint8 RGB."""
    out = dict(record)
    out["image"] = decode_jpeg_rgb(bytes(record["image"]))
    return out


def to_tensors(record: dict) -> dict:
    """The default transform: a decoded record -> tensors (no augmentation)."""
    image = np.ascontiguousarray(record["image"].transpose(2, 0, 1))
    return {
        "image": torch.from_numpy(image),
        "euler_deg": torch.tensor([record["yaw"], record["pitch"], record["roll"]], dtype=torch.float32),
        "R": torch.as_tensor(np.asarray(record["R_cam_head"], np.float32).reshape(3, 3)),
        "sample_weight": torch.tensor(float(record.get("sample_weight", 1.0)), dtype=torch.float32),
        "sample_id": record.get("sample_id", ""),
    }


class ShardDataset(Dataset):
    """Map-style dataset: sample i of the shards (``ShardRecords`` order), decoded."""

    def __init__(self, shards: str | Path | Sequence[str | Path], split: str | None = None,
                 transform: Callable[[dict], dict] = to_tensors, columns: Sequence[str] | None = None):
        self.records = ShardRecords(shards, split, columns)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return self.transform(decode_record(self.records[index]))


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def assign_row_groups(groups: list, epoch: int, seed: int, shuffle: bool, rank: int, world_size: int,
                      worker: int, num_workers: int) -> list:
    """The row groups one worker of one rank reads this epoch.

    Every (shard, row group) goes to exactly one of ``world_size * num_workers`` readers,
    round-robin over an order that is shuffled from (seed, epoch) when ``shuffle``.
    """
    order = list(groups)
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    reader = rank * num_workers + worker
    return order[reader::world_size * num_workers]


class ShardIterableDataset(IterableDataset):
    """Streams the samples of some shards, split across DDP ranks and DataLoader workers.

    rank / world_size: default from torch.distributed when it is initialised, else 0 / 1.
    shuffle_buffer: samples held per worker for shuffling (0 = read order).
    """

    def __init__(self, shards: str | Path | Sequence[str | Path], split: str | None = None,
                 transform: Callable[[dict], dict] = to_tensors, columns: Sequence[str] | None = None,
                 shuffle: bool = True, shuffle_buffer: int = 256, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None):
        self.paths = _as_paths(shards, split)
        for p in self.paths:
            check_file_schema(p, "samples")
        self.columns = list(columns or TRAIN_COLUMNS)
        self.groups = [(s, g) for s, p in enumerate(self.paths) for g in range(pq.ParquetFile(p).metadata.num_row_groups)]
        self.transform = transform
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer if shuffle else 0
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for a new epoch (call on every rank before iterating)."""
        self.epoch = int(epoch)

    def _reader(self) -> tuple[int, int, int, int]:
        """(rank, world_size, worker, num_workers) of the calling process."""
        rank, world = _distributed()
        rank = self.rank if self.rank is not None else rank
        world = self.world_size if self.world_size is not None else world
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank, world, worker, workers

    def _records(self, groups: list) -> Iterator[dict]:
        files: dict[int, pq.ParquetFile] = {}
        for s, g in groups:
            if s not in files:
                files[s] = pq.ParquetFile(self.paths[s])
            table = files[s].read_row_group(g, columns=self.columns)
            cols = {c: _column_values(table.column(c)) for c in self.columns}
            for i in range(table.num_rows):
                yield {c: v[i] for c, v in cols.items()}

    def __iter__(self) -> Iterator[dict]:
        rank, world, worker, workers = self._reader()
        groups = assign_row_groups(self.groups, self.epoch, self.seed, self.shuffle, rank, world, worker, workers)
        records = self._records(groups)
        if not self.shuffle_buffer:
            for r in records:
                yield self.transform(decode_record(r))
            return
        # A string seed is hashed deterministically (unlike hash() of a str).
        rng = random.Random(f"{self.seed}:{self.epoch}:{rank}:{worker}")
        buffer: list = []
        for r in records:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(r)
                continue
            j = rng.randrange(len(buffer))
            buffer[j], r = r, buffer[j]
            yield self.transform(decode_record(r))
        rng.shuffle(buffer)
        for r in buffer:
            yield self.transform(decode_record(r))
