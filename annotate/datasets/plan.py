"""The dataset plan: which labelled views become samples, decided before decoding any video.

Reads only the key columns of each sequence's ``labels.parquet`` (bounded memory: one
sequence's keys at a time, then the kept rows of all), and applies in order:

1. valid labels only (``reject_reason == ''``); the others are counted by reason;
2. the frame selection (start, end inclusive, every step-th; or per camera the frame of each
   window of ``step`` frames cheapest to decode: annotate.datasets.frame_choice);
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
from typing import Sequence

import numpy as np
import pandas as pd

from annotate.datasets.frame_choice import (FRAME_CHOICES, FrameKindsOf, cheapest_to_decode, describe_windows,
                                            exact_frames, frame_kind)
from annotate.datasets.splits import (SplitConfig, assign_splits, balance_subsample, balance_weights,
                                      subject_names, thin_by_yaw)
from annotate.core.tables import read_table, write_table

LABEL_KEYS = ["sequence", "frame", "person", "camera", "yaw", "reject_reason"]


@dataclass(frozen=True)
class PlanConfig:
    """Frame selection (end inclusive, None = last), split, thinning and balancing.

    frame_choice: 'exact' keeps frames start, start + step, ...; 'cheapest_to_decode' keeps,
    per camera and window of step frames, the labelled frame its video decodes most cheaply
    (a key frame, else a reference picture, else start + k * step;
    annotate.datasets.frame_choice). Needs labels on the frames between (ingest every frame,
    or a step dividing this one) to have a choice.
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
    reference_frame_windows: int = 0
    other_frame_windows: int = 0
    frame_kinds_unknown: list = field(default_factory=list)
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
                f"thinned: {self.thinned}, balanced out: {self.balanced_out}" + self._frame_choice_line())

    def _frame_choice_line(self) -> str:
        if not (self.key_frame_windows or self.reference_frame_windows or self.other_frame_windows
                or self.frame_kinds_unknown):
            return ""
        return "\nframes cheapest to decode: " + describe_windows(
            self.key_frame_windows, self.reference_frame_windows, self.other_frame_windows, self.frame_kinds_unknown)


def _cheapest_selected(df: pd.DataFrame, config: PlanConfig, kinds_of: FrameKindsOf,
                       summary: PlanSummary) -> np.ndarray:
    """(len(df),) bool: the rows ``frame_choice='cheapest_to_decode'`` keeps, camera by camera."""
    selected = np.zeros(len(df), dtype=bool)
    frame = df["frame"].to_numpy(np.int64)
    for (sequence, camera), rows in df.groupby(["sequence", "camera"], sort=True).indices.items():
        key, reference = kinds_of(str(sequence), str(camera))
        keep, windows = cheapest_to_decode(frame[rows], frame_kind(frame[rows], key, reference),
                                           config.frame_start, config.frame_end, config.frame_step)
        selected[rows] = keep
        summary.key_frame_windows += windows["key"]
        summary.reference_frame_windows += windows["reference"]
        summary.other_frame_windows += windows["other"]
    return selected


def _sequence_rows(labels_path: str | Path, config: PlanConfig, summary: PlanSummary,
                   kinds_of: FrameKindsOf | None = None) -> pd.DataFrame:
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
    if config.frame_choice == "cheapest_to_decode":
        if kinds_of is None:
            raise ValueError("frame_choice 'cheapest_to_decode' needs the cameras' frame kinds (kinds_of)")
        selected = _cheapest_selected(df, config, kinds_of, summary)
    else:
        selected = exact_frames(df["frame"].to_numpy(), config.frame_start, config.frame_end, config.frame_step)
    summary.frames_not_selected += int((~selected).sum())
    df = df[selected].drop(columns="reject_reason")
    df["subject"] = subject_names(df["sequence"].to_numpy(), df["person"].to_numpy(), config.split.subjects)
    df["split"] = assign_splits(df["sequence"].to_numpy(), df["subject"].to_numpy(), config.split)
    group = df.groupby(["sequence", "camera", "person"], sort=False).ngroup().to_numpy()
    keep = thin_by_yaw(group, df["frame"].to_numpy(), df["yaw"].to_numpy(), config.thin_min_yaw_change_deg)
    summary.thinned += int((~keep).sum())
    return df[keep]


def plan_samples(labels_paths: Sequence[str | Path], config: PlanConfig = PlanConfig(),
                 kinds_of: FrameKindsOf | None = None) -> tuple[pd.DataFrame, PlanSummary]:
    """The planned samples of all sequences (plan columns) and the counts behind them.

    kinds_of: each camera's key frames and reference pictures, needed with
    ``frame_choice='cheapest_to_decode'``.
    """
    summary = PlanSummary()
    parts = [_sequence_rows(p, config, summary, kinds_of) for p in labels_paths]
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
               config: PlanConfig = PlanConfig(), kinds_of: FrameKindsOf | None = None) -> PlanSummary:
    """Write ``plan.parquet`` (schemas/dataset_plan.schema.yaml); returns the summary."""
    df, summary = plan_samples(labels_paths, config, kinds_of)
    columns = {c: df[c].to_numpy() for c in ("sequence", "frame", "person", "camera", "subject", "split",
                                              "yaw", "sample_weight")}
    columns["frame"] = columns["frame"].astype(np.int32)
    columns["person"] = columns["person"].astype(np.int32)
    columns["sample_weight"] = columns["sample_weight"].astype(np.float32)
    write_table(columns, out_path, "dataset_plan")
    return summary
