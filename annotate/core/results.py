"""The results layout: where each stage's outputs live under the results folder.

One object, shared by the Snakemake rules (``pipelines/common.smk``), the stage entry points
(``annotate.stages``) and the CLI, so that no output path is spelled in two places::

    <results>/<sequence>/download/     summary.json (what the download rule fetched or verified)
    <results>/<sequence>/ingest/       cameras, frames, faces3d, bodies, rejections (.parquet)
    <results>/<sequence>/triangulate/  faces3d, detections2d, rejections, crosscheck,
                                       faces3d_combined (.parquet), summary.json, crosscheck.json
    <results>/head_model.json          the mean head model of all sequences
    <results>/<sequence>/labels/       head_fits, labels (.parquet), summary.json, subjects.json
    <results>/dataset/                 plan, shards, exports, card (annotate.stages.dataset)
    <results>/audit/                   report.html, metrics.json, flags.parquet, ...
    <results>/logs/<rule>/<sequence>.log

Sequence names may be Snakemake wildcards (``"{sequence}"``): the layout only joins paths.
Names read from data are checked where they are read (``annotate.core.names``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# File names inside each stage's folder: the writers of each stage use these.
INGEST_FILES = {"cameras": "cameras.parquet", "frames": "frames.parquet", "faces3d": "faces3d.parquet",
                "bodies": "bodies.parquet", "rejections": "rejections.parquet"}
TRIANGULATE_FILES = {"faces3d": "faces3d.parquet", "detections2d": "detections2d.parquet",
                     "rejections": "rejections.parquet", "summary": "summary.json",
                     "crosscheck": "crosscheck.parquet", "combined": "faces3d_combined.parquet",
                     "crosscheck_summary": "crosscheck.json"}
LABEL_FILES = {"head_fits": "head_fits.parquet", "labels": "labels.parquet", "summary": "summary.json",
               "subjects": "subjects.json"}

# config ``landmarks3d`` -> the faces3d table the head model and the labels use.
LANDMARKS3D_SOURCES = ("published", "triangulated", "both")


@dataclass(frozen=True)
class SequenceLayout:
    """The output folders and files of one sequence (``<results>/<sequence>``)."""

    base: Path

    @property
    def download_summary(self) -> Path:
        """What the download stage did (the data itself goes to ``panoptic.root``)."""
        return self.base / "download" / "summary.json"

    @property
    def ingest_dir(self) -> Path:
        return self.base / "ingest"

    @property
    def triangulate_dir(self) -> Path:
        return self.base / "triangulate"

    @property
    def labels_dir(self) -> Path:
        return self.base / "labels"

    def ingest(self, name: str) -> Path:
        """An ingest output: one of ``INGEST_FILES``."""
        return self.ingest_dir / INGEST_FILES[name]

    def triangulate(self, name: str) -> Path:
        """A triangulation output: one of ``TRIANGULATE_FILES``."""
        return self.triangulate_dir / TRIANGULATE_FILES[name]

    def labels(self, name: str) -> Path:
        """A label-stage output: one of ``LABEL_FILES``."""
        return self.labels_dir / LABEL_FILES[name]

    def faces3d_for_labels(self, landmarks3d: str) -> Path:
        """The faces3d table the labels use: published (ingest), triangulated, or both
        (published with triangulated gap fill, from the cross-check)."""
        if landmarks3d == "published":
            return self.ingest("faces3d")
        if landmarks3d == "triangulated":
            return self.triangulate("faces3d")
        if landmarks3d == "both":
            return self.triangulate("combined")
        raise ValueError(f"landmarks3d must be one of {LANDMARKS3D_SOURCES}, got {landmarks3d!r}")


@dataclass(frozen=True)
class ResultsLayout:
    """The results folder of a run (config ``results``)."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    def sequence(self, name: str) -> SequenceLayout:
        return SequenceLayout(self.root / name)

    @property
    def head_model(self) -> Path:
        return self.root / "head_model.json"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def audit(self) -> Path:
        return self.root / "audit"

    def log(self, rule: str, sequence: str | None = None) -> Path:
        """``logs/<rule>.log`` or, per sequence, ``logs/<rule>/<sequence>.log``."""
        return self.root / "logs" / (f"{rule}/{sequence}.log" if sequence else f"{rule}.log")
