"""The training-side input pipeline on top of the shard reader (``annotate.datasets``).

    shard rows (schemas/samples.schema.yaml) --record_to_sample--> sample dict (augment.py)
      --train_transform / eval_transform--> tensors --collate--> batch

``EpochSampler`` fixes the order: a permutation (or, yaw-balanced, weighted draws with
replacement) drawn from ``(seed, epoch)``, sharded across DDP processes, started at any
position so a resumed run continues mid-epoch. It yields ``(index, epoch, position)`` and
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

from typing import Iterator, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from annotate.labels.visibility import NO_POSE, NOT_TESTED, VISIBLE
from annotate.train.augment import AugmentConfig, eval_transform, train_transform

NUM_LANDMARKS = 70
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
    """(70,) visibility codes (annotate.labels.visibility) -> (70,) float32: 1 visible,
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


def yaw_balanced_weights(yaw_deg: np.ndarray, bin_deg: float) -> np.ndarray:
    """(N,) sampling weights ``1 / count(yaw bin)`` over [-180, 180), normalised to mean 1."""
    yaw = np.mod(np.asarray(yaw_deg, np.float64) + 180.0, 360.0)
    nbins = int(np.ceil(360.0 / bin_deg))
    b = np.minimum((yaw / bin_deg).astype(int), nbins - 1)
    counts = np.bincount(b, minlength=nbins)
    w = 1.0 / counts[b]
    return w * (len(w) / w.sum())


class EpochSampler(Sampler):
    """Deterministic, resumable, DDP-sharded order of one epoch.

    Each epoch draws ``num_samples`` positions: a permutation of the dataset from
    ``(seed, epoch)`` (or, with ``weights``, draws with replacement), cut to a multiple of
    ``world_size`` (``drop_last``) or padded by wrapping around, and split ``rank::world_size``.
    ``set_epoch(epoch, start=k)`` skips this process's first ``k`` positions (resuming).
    Yields ``(index, epoch, position)`` with ``position`` the global draw number.
    """

    def __init__(self, num_items: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1, weights: np.ndarray | None = None, drop_last: bool = True):
        if num_items < world_size:
            raise ValueError(f"{num_items} samples cannot be shared by {world_size} processes")
        self.num_items = num_items
        self.shuffle, self.seed = shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.drop_last = drop_last
        self.epoch, self.start = 0, 0
        self.per_rank = num_items // world_size if drop_last else -(-num_items // world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def epoch_order(self, epoch: int) -> np.ndarray:
        """(per_rank * world_size,) dataset indices of the whole epoch, all processes."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        total = self.per_rank * self.world_size
        if self.weights is not None:
            order = torch.multinomial(self.weights, total, replacement=True, generator=g)
        elif self.shuffle:
            order = torch.randperm(self.num_items, generator=g)
        else:
            order = torch.arange(self.num_items)
        order = order.numpy()
        if len(order) < total:
            order = np.resize(order, total)
        return order[:total]

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        order = self.epoch_order(self.epoch)
        positions = np.arange(self.rank, len(order), self.world_size)
        for pos in positions[self.start:]:
            yield int(order[pos]), self.epoch, int(pos)

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


def make_loader(dataset: Dataset, batch_size: int, sampler: Sampler | None = None, num_workers: int = 0,
                drop_last: bool = False, pin_memory: bool = False, seed: int = 0) -> DataLoader:
    """A DataLoader with this module's collate; persistent workers when there are any.

    It has its own generator: starting an epoch must not draw from the global torch RNG, or
    a resumed run would draw different dropout masks than an uninterrupted one.
    """
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate, drop_last=drop_last, pin_memory=pin_memory,
                      worker_init_fn=_worker_init if num_workers else None,
                      persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers else None,
                      generator=torch.Generator().manual_seed(seed))


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


