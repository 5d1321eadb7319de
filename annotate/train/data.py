"""The training-side input pipeline on top of the shard reader (``annotate.datasets``).

    shard rows (schemas/samples.schema.yaml) --record_to_sample--> sample dict (augment.py)
      --train_transform / eval_transform--> tensors --collate--> batch

``EpochSampler`` fixes the order: a storage-local shuffle (blocks of row groups, see its
docstring) or a plain permutation (or, yaw-balanced, weighted draws with replacement),
drawn from ``(seed, epoch)``, sharded across DDP processes and loader workers, started at
any position so a resumed run continues mid-epoch. It yields ``(index, epoch, position)`` and
the dataset seeds each sample's augmentation from ``(seed, epoch, position)``: a sample's
pixels depend on neither the worker that made it nor on whether the run was resumed.

Batches hold uint8 images; ``normalize_images`` converts them on the device (4x less host
to device traffic than float32 and no normalisation work in the loader workers).

A batch is a dict: ``image`` (B, 3, H, W) uint8; ``euler_deg`` (B, 3) float32 [yaw, pitch,
roll]; ``R`` (B, 3, 3) float32 R_cam_head; ``landmarks`` (B, 70, 2) float32 as fractions of
the network input (x / W, y / H), NaN when unknown; ``visible`` (B, 70) float32 1 / 0 / NaN;
``sequence`` and ``sample_id``: lists of str.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from annotate.head.head_frame import NUM_LANDMARKS
from annotate.head.visibility import NO_POSE, NOT_TESTED, VISIBLE
from annotate.train.augment import AugmentConfig, eval_transform, train_transform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RecordSource(Protocol):
    """Random access to sample records: ``len``, ``source[i] -> dict`` of samples-schema
    columns (``image`` JPEG bytes or an (H, W, 3) uint8 RGB array, ``yaw``, ``pitch``,
    ``roll``, ``R_cam_head``, optional ``landmarks_crop`` and ``landmark_visibility``,
    ``sequence``, ``sample_id``), and ``labels_deg() -> (N, 3)`` [yaw, pitch, roll] without
    decoding any image (for yaw balancing and the constant baseline)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict: ...

    def labels_deg(self) -> np.ndarray: ...


def visible_from_codes(codes: np.ndarray | None) -> np.ndarray:
    """(70,) visibility codes (annotate.head.visibility) -> (70,) float32: 1 visible,
    0 hidden (outside the image, self-occluded, occluded by another head), NaN unknown."""
    if codes is None:
        return np.full(NUM_LANDMARKS, np.nan, np.float32)
    codes = np.asarray(codes).reshape(NUM_LANDMARKS)
    out = (codes == VISIBLE).astype(np.float32)
    out[(codes == NO_POSE) | (codes == NOT_TESTED)] = np.nan
    return out


def _decode(image) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image
    from annotate.media.jpeg import decode_jpeg_rgb

    return decode_jpeg_rgb(bytes(image))


def record_to_sample(record: dict) -> dict:
    """A shard row -> a sample dict (augment.py): decoded image, labels as numpy arrays."""
    lm = record.get("landmarks_crop")
    return {
        "image": _decode(record["image"]),
        "euler_deg": np.array([record["yaw"], record["pitch"], record["roll"]], np.float64),
        "R": np.asarray(record["R_cam_head"], np.float64).reshape(3, 3),
        "landmarks": None if lm is None else np.asarray(lm, np.float32).reshape(NUM_LANDMARKS, 2),
        "visible": visible_from_codes(record.get("landmark_visibility")),
        "sequence": str(record.get("sequence", "")),
        "sample_id": str(record.get("sample_id", "")),
    }


def sample_to_tensors(sample: dict) -> dict:
    """A transformed sample -> tensors (landmarks as fractions of the image size)."""
    image = sample["image"]
    h, w = image.shape[:2]
    lm = sample.get("landmarks")
    if lm is None:
        lm = np.full((NUM_LANDMARKS, 2), np.nan, np.float32)
    else:
        # Pixel centres at integers: the image spans [-0.5, w - 0.5].
        lm = (np.asarray(lm, np.float32) + 0.5) / np.array([w, h], np.float32)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        "euler_deg": torch.tensor(sample["euler_deg"], dtype=torch.float32),
        "R": torch.tensor(sample["R"], dtype=torch.float32),
        "landmarks": torch.from_numpy(lm),
        "visible": torch.from_numpy(np.asarray(sample["visible"], np.float32)),
        "sequence": sample["sequence"],
        "sample_id": sample["sample_id"],
    }


def augment_rng(seed: int, epoch: int, position: int) -> np.random.Generator:
    """The generator of one draw's augmentation: a function of (seed, epoch, position) only."""
    return np.random.default_rng([seed, epoch, position])


class PoseDataset(Dataset):
    """Map-style dataset over a ``RecordSource``; items are ``(index, epoch, position)``
    keys from ``EpochSampler`` (or plain indices for evaluation, which is not augmented).

    train: random crop/scale, flip, colour, blur (``augment``); else the centred crop.
    """

    def __init__(self, source: RecordSource, image_size: int, crop_fraction: float = 1.0,
                 augment: AugmentConfig | None = None, seed: int = 0):
        self.source = source
        self.image_size = image_size
        self.crop_fraction = crop_fraction
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key) -> dict:
        index, epoch, position = key if isinstance(key, tuple) else (key, 0, key)
        sample = record_to_sample(self.source[index])
        if self.augment is None:
            sample = eval_transform(sample, self.image_size, self.crop_fraction)
        else:
            rng = augment_rng(self.seed, epoch, position)
            sample = train_transform(sample, self.image_size, self.crop_fraction, self.augment, rng)
        return sample_to_tensors(sample)


class EpochSampler(Sampler):
    """Deterministic, resumable, DDP-sharded order of one epoch, drawn from ``(seed, epoch)``.

    ``order="random"``: a permutation of all samples, or with ``weights`` draws with
    replacement (yaw balancing); process ``rank`` takes every ``world_size``-th.

    ``order="blocks"`` (storage-local, for row-group readers such as ShardRecords): the
    samples are cut into contiguous blocks of ``block_size`` (a shard row group), the full
    blocks are permuted (a partial last block stays last), consecutive permuted blocks form
    windows of ``window_blocks`` and each window's samples are permuted. Window ``j`` goes
    to process ``j % world_size`` and, within it, to stream ``(j // world_size) % streams``;
    the process's batches take the streams in turn, so DataLoader worker ``k`` (which gets
    batches ``k, k + W, ...``; ``streams = W``) reads only its own windows and each row group
    about once per epoch, like a shuffle buffer, but with a fixed, resumable order.

    Every process gets the same number of samples (``per_rank``, the same every epoch).
    ``set_epoch(epoch, start=k)`` skips this process's first ``k`` samples (resuming).
    Yields ``(index, epoch, position)``; ``position`` is unique within the epoch.
    """

    def __init__(self, num_items: int, *, batch_size: int = 1, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1, weights: np.ndarray | None = None, order: str = "random",
                 block_size: int = 64, window_blocks: int = 8, streams: int = 1):
        if num_items < world_size:
            raise ValueError(f"{num_items} samples cannot be shared by {world_size} processes")
        if order not in ("random", "blocks"):
            raise ValueError(f"unknown sample order {order!r}")
        if weights is not None and order != "random":
            raise ValueError("weighted (yaw-balanced) sampling needs order='random'")
        self.num_items, self.batch_size = num_items, batch_size
        self.shuffle, self.seed = shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.order, self.block_size, self.window_blocks = order, block_size, window_blocks
        self.streams = max(1, streams)
        self.epoch, self.start = 0, 0
        self.per_rank = min(len(s) for s in self._untrimmed(0))

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)

    def _untrimmed(self, epoch: int) -> list[np.ndarray]:
        """Every process's index sequence for ``epoch``, before equalising the lengths."""
        g = self._generator(epoch)
        if self.order == "random":
            if self.weights is not None:
                order = torch.multinomial(self.weights, self.num_items, replacement=True, generator=g)
            elif self.shuffle:
                order = torch.randperm(self.num_items, generator=g)
            else:
                order = torch.arange(self.num_items)
            order = order.numpy()
            return [order[r::self.world_size] for r in range(self.world_size)]
        n, bs = self.num_items, self.block_size
        full = n // bs
        perm = torch.randperm(full, generator=g).numpy() if self.shuffle else np.arange(full)
        blocks = [np.arange(b * bs, (b + 1) * bs) for b in perm]
        if n % bs:
            blocks.append(np.arange(full * bs, n))
        windows = [np.concatenate(blocks[i:i + self.window_blocks]) for i in range(0, len(blocks), self.window_blocks)]
        if self.shuffle:
            windows = [w[torch.randperm(len(w), generator=g).numpy()] for w in windows]
        return [self._interleave(windows[r::self.world_size]) for r in range(self.world_size)]

    def _interleave(self, windows: list[np.ndarray]) -> np.ndarray:
        """One process's windows dealt to ``streams`` streams, then batches taken in turn."""
        streams = [np.concatenate(windows[s::self.streams]) if windows[s::self.streams] else np.zeros(0, int)
                   for s in range(self.streams)]
        chunks, ptr, b = [], [0] * self.streams, self.batch_size
        while any(ptr[s] < len(streams[s]) for s in range(self.streams)):
            for s in range(self.streams):
                if ptr[s] < len(streams[s]):
                    chunks.append(streams[s][ptr[s]:ptr[s] + b])
                    ptr[s] += b
        return np.concatenate(chunks) if chunks else np.zeros(0, int)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """(per_rank,) dataset indices this process visits in ``epoch``."""
        return self._untrimmed(epoch)[self.rank][:self.per_rank]

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        order = self.epoch_order(self.epoch)
        for i in range(self.start, len(order)):
            yield int(order[i]), self.epoch, i * self.world_size + self.rank

    def __len__(self) -> int:
        return self.per_rank - self.start


def collate(items: Sequence[dict]) -> dict:
    """Stack tensors; keep strings as lists."""
    out = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else list(values)
    return out


def normalize_images(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> float32 normalised with the ImageNet mean and std (on its device)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255.0
    x = (images.float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _worker_init(_worker_id: int) -> None:
    # One thread per worker: the workers are the parallelism; OpenCV must not spawn more.
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def worker_context():
    """The multiprocessing context of the loader workers: a fork server.

    Plain ``fork`` copies the training process with its thread pools (OpenMP, OpenCV's)
    mid-flight, and a worker forked after the main process has used them can deadlock.
    The fork server is a clean process that imports this module once; workers fork from it
    in milliseconds.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def make_loader(dataset: Dataset, batch_size: int, sampler: Sampler | None = None, num_workers: int = 0,
                drop_last: bool = False, pin_memory: bool = False, seed: int = 0) -> DataLoader:
    """A DataLoader with this module's collate; persistent fork-server workers when there are any.

    It has its own generator: starting an epoch must not draw from the global torch RNG, or
    a resumed run would draw different dropout masks than an uninterrupted one.
    """
    workers = {"worker_init_fn": _worker_init, "persistent_workers": True, "prefetch_factor": 4,
               "multiprocessing_context": worker_context()} if num_workers else {}
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate, drop_last=drop_last, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed), **workers)


def expand_shard_paths(entries: Sequence[str | Path]) -> list[Path]:
    """Shard files, and the ``*.parquet`` files under each folder (sorted, hidden ones skipped)."""
    out: list[Path] = []
    for entry in entries:
        p = Path(entry)
        if p.is_dir():
            found = sorted(q for q in p.glob("**/*.parquet") if not q.name.startswith("."))
            if not found:
                raise FileNotFoundError(f"{p}: no *.parquet shards in this folder")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"shard {p} does not exist")
    return out


def open_shard_source(data_cfg: dict, which: str) -> RecordSource | None:
    """The ``train`` or ``val`` records of a resolved ``data`` config section.

    Explicit shard lists (``data.train`` / ``data.val``) win; otherwise the split
    ``data.<which>_split`` of the dataset folder ``data.dataset``. Reading is
    ``annotate.datasets.readers.ShardRecords`` (issue 3's reader), which also refuses
    shards of another schema or an unknown major version. None when nothing is configured
    or the split has no shards.
    """
    from annotate.datasets.readers import ShardRecords, shard_paths

    # Enough cached row groups for one window of the "blocks" order (+ the ones it straddles).
    cache = data_cfg["window_blocks"] + 2
    if data_cfg[which]:
        return ShardRecords(expand_shard_paths(data_cfg[which]), cache_row_groups=cache)
    split = data_cfg[f"{which}_split"]
    if not data_cfg["dataset"] or split is None:
        return None
    paths = shard_paths(data_cfg["dataset"], split)
    if not paths:
        return None
    return ShardRecords(paths, cache_row_groups=cache)


class InMemorySource:
    """A ``RecordSource`` over a list of record dicts (external test sets, small tests)."""

    def __init__(self, records: list[dict]):
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return self.records[index]

    def labels_deg(self) -> np.ndarray:
        return np.array([[r["yaw"], r["pitch"], r["roll"]] for r in self.records], np.float64).reshape(-1, 3)


