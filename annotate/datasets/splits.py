"""Splits, WHENet-style thinning and yaw balancing: which labelled views become samples.

Pure functions over arrays; annotate.datasets.plan applies them to the labels tables.

- Splits are by sequence or by subject, never by frame (neighbouring frames are
  near-duplicates). A key (the sequence name, or the subject) goes to a split by a hash of
  ``"<seed>:<key>"``, so the assignment is deterministic, independent of the order and of
  which other keys exist, and stable when data are added.
- Thinning (WHENet): per (sequence, camera, person), in frame order, a view is kept only
  when its yaw moved at least ``min_yaw_change_deg`` from the last kept one.
- Balancing: yaw histogram in ``bin_deg`` bins over (-180, 180]; either a per-sample weight
  inversely proportional to its bin's count (mean 1), or a deterministic hash-based
  subsample that caps each bin near ``target_per_bin``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    """by: 'sequence' or 'subject'; fractions: train/val/test shares (sum 1); seed: hash salt;
    subjects: '<sequence>:<person>' -> subject name (the same person across sequences);
    assign: key -> split, overriding the hash (e.g. fixed test sequences)."""

    by: str = "subject"
    fractions: dict = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    seed: int = 0
    subjects: dict = field(default_factory=dict)
    assign: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.by not in ("sequence", "subject"):
            raise ValueError(f"split.by must be 'sequence' or 'subject', got {self.by!r}")
        unknown = set(self.fractions) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split names {sorted(unknown)} (train, val, test)")
        total = sum(float(v) for v in self.fractions.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, got {total}")
        bad = {k: v for k, v in self.assign.items() if v not in SPLITS}
        if bad:
            raise ValueError(f"split.assign names unknown splits: {bad}")


def unit_hash(text: str) -> float:
    """A deterministic number in [0, 1) from ``text`` (first 8 bytes of its SHA-256)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def subject_names(sequences: np.ndarray, persons: np.ndarray, mapping: dict) -> np.ndarray:
    """(N,) object array: ``mapping.get("<sequence>:<person>", "<sequence>:<person>")``."""
    keys = np.array([f"{s}:{int(p)}" for s, p in zip(sequences, persons)], dtype=object)
    if not mapping:
        return keys
    return np.array([mapping.get(k, k) for k in keys], dtype=object)


def split_of_key(key: str, config: SplitConfig) -> str:
    """The split of one sequence or subject key."""
    if key in config.assign:
        return config.assign[key]
    u = unit_hash(f"{config.seed}:{key}")
    edge = 0.0
    for name in SPLITS:
        edge += float(config.fractions.get(name, 0.0))
        if u < edge:
            return name
    return [n for n in SPLITS if config.fractions.get(n, 0.0) > 0][-1]


def assign_splits(sequences: np.ndarray, subjects: np.ndarray, config: SplitConfig) -> np.ndarray:
    """(N,) object array of split names for samples with these sequences and subjects."""
    keys = np.asarray(sequences if config.by == "sequence" else subjects, dtype=object)
    uniq, inverse = np.unique(keys.astype(str), return_inverse=True)
    per_key = np.array([split_of_key(k, config) for k in uniq], dtype=object)
    return per_key[inverse] if len(keys) else np.array([], dtype=object)


def wrap_deg(angle: np.ndarray) -> np.ndarray:
    """Angles in degrees wrapped to (-180, 180]."""
    a = np.mod(np.asarray(angle, dtype=np.float64) + 180.0, 360.0) - 180.0
    return np.where(a == -180.0, 180.0, a)


def thin_by_yaw(group: np.ndarray, frame: np.ndarray, yaw_deg: np.ndarray, min_change_deg: float) -> np.ndarray:
    """(N,) bool keep-mask: WHENet thinning within each group, in frame order.

    group: (N,) int group id (one per sequence, camera and person); frame (N,); yaw_deg (N,).
    The first view of a group is kept; a later one only if its yaw differs (wrapped) by at
    least ``min_change_deg`` from the last kept view of the group. 0 keeps everything.
    """
    n = len(frame)
    keep = np.ones(n, dtype=bool)
    if min_change_deg <= 0 or n == 0:
        return keep
    order = np.lexsort((frame, group))
    g, y = np.asarray(group)[order], np.asarray(yaw_deg, dtype=np.float64)[order]
    last_group, last_yaw = None, 0.0
    kept_sorted = np.zeros(n, dtype=bool)
    for i in range(n):                       # sequential by nature: each decision uses the last kept
        if g[i] != last_group or abs(wrap_deg(y[i] - last_yaw)) >= min_change_deg:
            kept_sorted[i] = True
            last_group, last_yaw = g[i], y[i]
    keep[order] = kept_sorted
    return keep


def yaw_bins(yaw_deg: np.ndarray, bin_deg: float) -> np.ndarray:
    """(N,) int bin index of each yaw in (-180, 180] with bins of ``bin_deg`` from -180."""
    nbins = int(np.ceil(360.0 / bin_deg))
    idx = np.floor((wrap_deg(yaw_deg) + 180.0) / bin_deg).astype(np.int64)
    return np.clip(idx, 0, nbins - 1)


def balance_weights(yaw_deg: np.ndarray, bin_deg: float) -> np.ndarray:
    """(N,) float32 weights inversely proportional to the yaw bin's count, mean 1."""
    if len(yaw_deg) == 0:
        return np.zeros(0, dtype=np.float32)
    bins = yaw_bins(yaw_deg, bin_deg)
    counts = np.bincount(bins)
    w = 1.0 / counts[bins]
    return (w * len(w) / w.sum()).astype(np.float32)


def balance_subsample(yaw_deg: np.ndarray, sample_keys: np.ndarray, bin_deg: float,
                      target_per_bin: int | None, seed: int = 0) -> np.ndarray:
    """(N,) bool keep-mask that caps each yaw bin at about ``target_per_bin`` samples.

    target_per_bin None = the median count of the non-empty bins. A sample of a bin with
    count n is kept when hash(seed, key) < target / n, so the choice does not depend on
    the order of the rows.
    """
    if len(yaw_deg) == 0:
        return np.zeros(0, dtype=bool)
    bins = yaw_bins(yaw_deg, bin_deg)
    counts = np.bincount(bins)
    target = float(np.median(counts[counts > 0])) if target_per_bin is None else float(target_per_bin)
    p = np.minimum(1.0, target / counts[bins])
    u = np.array([unit_hash(f"{seed}:{k}") for k in sample_keys])
    return u < p
