"""The dataset plan: which labelled views become samples, decided before decoding any video.

Reads only the key columns of each sequence's ``labels.parquet`` (bounded memory: one
sequence's keys at a time, then the kept rows of all), and applies in order:

1. valid labels only (``reject_reason == ''``); the others are counted by reason;
2. the frame selection (start, end inclusive, every step-th; or, with ``frame_choice``
   ``key_frames``, in each window of ``step`` frames the camera's key frame when it has one);
3. the split of each sample's sequence or subject (annotate.datasets.splits);
4. WHENet thinning per (sequence, camera, person), if configured;
5. yaw balancing of the train split (weights or subsample), if configured.

The result is ``plan.parquet`` (schemas/dataset_plan.schema.yaml), sorted by sequence,
camera, frame and person, and a summary with every count the dataset card reports.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from annotate.datasets.splits import (SplitConfig, assign_splits, balance_subsample, balance_weights,
                                      subject_names, thin_by_yaw)
from annotate.core.tables import read_table, write_table

LABEL_KEYS = ["sequence", "frame", "person", "camera", "yaw", "reject_reason"]
FRAME_CHOICES = ("exact", "key_frames")

# (sequence, camera) -> sorted frame numbers of the camera's key frames (empty = unknown).
KeyFramesOf = Callable[[str, str], np.ndarray]


@dataclass(frozen=True)
class PlanConfig:
    """Frame selection (end inclusive, None = last), split, thinning and balancing.

    frame_choice: 'exact' keeps frames start, start + step, ...; 'key_frames' keeps, for
    each camera and each window [start + k * step, start + (k + 1) * step), the labelled
    key frame of that camera's video in the window (the one with the most valid labels,
    then the earliest), else frame start + k * step as 'exact' does: a key frame decodes
    from one picture, any other frame from every reference picture back to the key frame
    before it. Needs labels on the frames between (ingest every frame, or a step dividing
    this one) to have a choice.
    thin_min_yaw_change_deg: 0 = off; WHENet used 5.
    balance: 'none', 'weights' (sample_weight ~ 1 / yaw-bin count) or 'subsample'
    (cap each yaw bin near balance_target_per_bin, None = the median bin count); applied
    to the train split only, so val and test keep the natural distribution.
    """

    frame_start: int = 0
    frame_end: int | None = None
    frame_step: int = 1
    frame_choice: str = "exact"
    split: SplitConfig = field(default_factory=SplitConfig)
    thin_min_yaw_change_deg: float = 0.0
    balance: str = "none"
    balance_bin_deg: float = 10.0
    balance_target_per_bin: int | None = None

    def __post_init__(self) -> None:
        if self.balance not in ("none", "weights", "subsample"):
            raise ValueError(f"balance must be none, weights or subsample, got {self.balance!r}")
        if self.frame_choice not in FRAME_CHOICES:
            raise ValueError(f"frame_choice must be one of {FRAME_CHOICES}, got {self.frame_choice!r}")


@dataclass
class PlanSummary:
    labels: int = 0
    valid_labels: int = 0
    label_rejections: Counter = field(default_factory=Counter)
    frames_not_selected: int = 0
    key_frame_windows: int = 0
    other_frame_windows: int = 0
    key_frames_unknown: list = field(default_factory=list)
    thinned: int = 0
    balanced_out: int = 0
    samples: int = 0
    samples_per_split: Counter = field(default_factory=Counter)
    sequences: list = field(default_factory=list)
    subjects_per_split: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["label_rejections"] = dict(sorted(self.label_rejections.items()))
        d["samples_per_split"] = dict(sorted(self.samples_per_split.items()))
        return d

    def __str__(self) -> str:
        bad = ", ".join(f"{k}={v}" for k, v in sorted(self.label_rejections.items())) or "none"
        per = ", ".join(f"{k}={v}" for k, v in sorted(self.samples_per_split.items())) or "none"
        return (f"labels: {self.labels} ({self.valid_labels} valid; rejected: {bad})\n"
                f"planned samples: {self.samples} ({per}); frames not selected: {self.frames_not_selected}, "
                f"thinned: {self.thinned}, balanced out: {self.balanced_out}" + self._key_frame_line())

    def _key_frame_line(self) -> str:
        if not (self.key_frame_windows or self.other_frame_windows or self.key_frames_unknown):
            return ""
        unknown = f"; key frames unknown for {', '.join(self.key_frames_unknown)}" if self.key_frames_unknown else ""
        return (f"\nframe windows (camera x step): {self.key_frame_windows} at a key frame, "
                f"{self.other_frame_windows} at frame start + k * step{unknown}")


def _in_range(f: np.ndarray, config: PlanConfig) -> np.ndarray:
    ok = f >= config.frame_start
    if config.frame_end is not None:
        ok &= f <= config.frame_end
    return ok


def _frame_selected(frame: np.ndarray, config: PlanConfig) -> np.ndarray:
    f = np.asarray(frame, dtype=np.int64)
    return _in_range(f, config) & ((f - config.frame_start) % config.frame_step == 0)


def key_frame_selected(frame: np.ndarray, key: np.ndarray, config: PlanConfig) -> tuple[np.ndarray, int, int]:
    """Rows of one camera kept by ``frame_choice='key_frames'``.

    frame: (n,) frame number of each valid label row of one camera; key: (n,) bool, the
    row's frame is a key frame of that camera's video. Returns ((n,) bool kept, windows
    kept at a key frame, windows kept at frame start + k * step).
    """
    f = np.asarray(frame, dtype=np.int64)
    inside = _in_range(f, config)
    window = (f - config.frame_start) // config.frame_step
    keep = _frame_selected(f, config)
    candidates = np.flatnonzero(inside & np.asarray(key, dtype=bool))
    pairs, rows = np.unique(np.stack([window[candidates], f[candidates]], axis=1).reshape(-1, 2), axis=0,
                            return_counts=True)
    # Per window: most rows first, then the earliest frame.
    order = np.lexsort((pairs[:, 1], -rows, pairs[:, 0]))
    pairs = pairs[order]
    first = np.r_[True, pairs[1:, 0] != pairs[:-1, 0]] if len(pairs) else np.zeros(0, dtype=bool)
    chosen_window, chosen_frame = pairs[first, 0], pairs[first, 1]
    at_key = inside & np.isin(window, chosen_window)
    pos = np.searchsorted(chosen_window, window[at_key])
    keep[at_key] = f[at_key] == chosen_frame[pos]
    other_windows = len(np.unique(window[keep & ~at_key]))
    return keep, len(chosen_window), other_windows


def _key_frames_selected(df: pd.DataFrame, config: PlanConfig, key_frames_of: KeyFramesOf,
                         summary: PlanSummary) -> np.ndarray:
    """(len(df),) bool: the rows ``frame_choice='key_frames'`` keeps, camera by camera."""
    selected = np.zeros(len(df), dtype=bool)
    frame = df["frame"].to_numpy(np.int64)
    for (sequence, camera), rows in df.groupby(["sequence", "camera"], sort=True).indices.items():
        keys = np.asarray(key_frames_of(str(sequence), str(camera)), dtype=np.int64)
        keep, at_key, other = key_frame_selected(frame[rows], np.isin(frame[rows], keys), config)
        selected[rows] = keep
        summary.key_frame_windows += at_key
        summary.other_frame_windows += other
    return selected


def _sequence_rows(labels_path: str | Path, config: PlanConfig, summary: PlanSummary,
                   key_frames_of: KeyFramesOf | None = None) -> pd.DataFrame:
    """Valid, selected, split and thinned rows of one labels table."""
    table = read_table(labels_path, "labels", columns=LABEL_KEYS)
    df = pd.DataFrame({c: table.column(c).to_numpy(zero_copy_only=False) for c in LABEL_KEYS})
    df["sequence"] = df["sequence"].astype(str)
    df["camera"] = df["camera"].astype(str)
    reasons = df["reject_reason"].astype(str)
    summary.labels += len(df)
    summary.label_rejections.update(reasons[reasons != ""].tolist())
    df = df[reasons == ""]
    summary.valid_labels += len(df)
    if config.frame_choice == "key_frames":
        if key_frames_of is None:
            raise ValueError("frame_choice 'key_frames' needs the cameras' key frames (key_frames_of)")
        selected = _key_frames_selected(df, config, key_frames_of, summary)
    else:
        selected = _frame_selected(df["frame"].to_numpy(), config)
    summary.frames_not_selected += int((~selected).sum())
    df = df[selected].drop(columns="reject_reason")
    df["subject"] = subject_names(df["sequence"].to_numpy(), df["person"].to_numpy(), config.split.subjects)
    df["split"] = assign_splits(df["sequence"].to_numpy(), df["subject"].to_numpy(), config.split)
    group = df.groupby(["sequence", "camera", "person"], sort=False).ngroup().to_numpy()
    keep = thin_by_yaw(group, df["frame"].to_numpy(), df["yaw"].to_numpy(), config.thin_min_yaw_change_deg)
    summary.thinned += int((~keep).sum())
    return df[keep]


def plan_samples(labels_paths: Sequence[str | Path], config: PlanConfig = PlanConfig(),
                 key_frames_of: KeyFramesOf | None = None) -> tuple[pd.DataFrame, PlanSummary]:
    """The planned samples of all sequences (plan columns) and the counts behind them.

    key_frames_of: each camera's key frames, needed with ``frame_choice='key_frames'``.
    """
    summary = PlanSummary()
    parts = [_sequence_rows(p, config, summary, key_frames_of) for p in labels_paths]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LABEL_KEYS[:-1] + ["subject", "split"])
    df["sample_weight"] = np.float32(1.0)
    train = (df["split"] == "train").to_numpy()
    if config.balance != "none" and train.any():
        yaw = df.loc[train, "yaw"].to_numpy()
        if config.balance == "weights":
            df.loc[train, "sample_weight"] = balance_weights(yaw, config.balance_bin_deg)
        else:
            keys = (df.loc[train, "sequence"] + "/" + df.loc[train, "frame"].astype(str) + "/"
                    + df.loc[train, "person"].astype(str) + "/" + df.loc[train, "camera"]).to_numpy()
            keep = np.ones(len(df), dtype=bool)
            keep[train] = balance_subsample(yaw, keys, config.balance_bin_deg, config.balance_target_per_bin,
                                            config.split.seed)
            summary.balanced_out = int((~keep).sum())
            df = df[keep]
    df = df.sort_values(["sequence", "camera", "frame", "person"], kind="stable").reset_index(drop=True)
    summary.samples = len(df)
    summary.samples_per_split = Counter(df["split"].tolist())
    summary.sequences = sorted(set(df["sequence"].tolist()))
    summary.subjects_per_split = {s: int(n) for s, n in df.groupby("split")["subject"].nunique().items()}
    return df, summary


def write_plan(labels_paths: Sequence[str | Path], out_path: str | Path,
               config: PlanConfig = PlanConfig(), key_frames_of: KeyFramesOf | None = None) -> PlanSummary:
    """Write ``plan.parquet`` (schemas/dataset_plan.schema.yaml); returns the summary."""
    df, summary = plan_samples(labels_paths, config, key_frames_of)
    columns = {c: df[c].to_numpy() for c in ("sequence", "frame", "person", "camera", "subject", "split",
                                              "yaw", "sample_weight")}
    columns["frame"] = columns["frame"].astype(np.int32)
    columns["person"] = columns["person"].astype(np.int32)
    columns["sample_weight"] = columns["sample_weight"].astype(np.float32)
    write_table(columns, out_path, "dataset_plan")
    return summary
