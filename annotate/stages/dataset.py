"""Stage ``dataset``: entry points for the Snakemake rules (pipelines/dataset.smk).

Each takes a resolved config (``annotate.config.resolve_config``; section ``dataset``) and
explicit paths. Layout of ``results/dataset/`` (``<out>``)::

    plan.parquet, plan_summary.json       which labelled views become samples, and why not
    shards/<split>/<seq>/<cam>-NNN.parquet the samples (schemas/samples.schema.yaml)
    parts/<seq>.json                      per-sequence build summary (rule output)
    parts/<seq>-rejections.parquet        samples whose media failed, with reasons
    parts/<seq>/<cam>.json                per-camera manifests: what makes a rerun resume
    frames/<seq>/<cam>/<frame>.jpg        full frames (only with the COCO export on)
    index.json                            every shard: path, split, sequence, camera, rows, bytes
    rejections.parquet                    all media rejections
    card.json, card.md                    the dataset card
    exports/whenet/, exports/300wlp/, exports/coco/
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from annotate.core.atomic import write_json_atomic
from annotate.core.names import check_name
from annotate.core.tables import read_table
from annotate.datasets.build import BuildConfig, SequenceBuild, build_sequence
from annotate.datasets.plan import PlanConfig, PlanSummary, write_plan
from annotate.datasets.shards import ShardLimits
from annotate.datasets.splits import SplitConfig
from annotate.media.crops import CropSpec
from annotate.media.video import VideoError, camera_video_path, frame_kinds
from annotate.panoptic.frame_offsets import frames_of

EXPORTS = ("whenet", "w300lp", "coco")
# Export name -> its folder under <out>/exports.
EXPORT_FOLDERS = {"whenet": "whenet", "w300lp": "300wlp", "coco": "coco"}


def plan_config(config: dict) -> PlanConfig:
    d = config["dataset"]
    s = d["split"]
    return PlanConfig(
        frame_start=d["frame_start"], frame_end=d["frame_end"], frame_step=d["frame_step"],
        frame_choice=d["frame_choice"],
        split=SplitConfig(by=s["by"], fractions=dict(s["fractions"]), seed=s["seed"], subjects=dict(s["subjects"]),
                          assign=dict(s["assign"])),
        thin_min_yaw_change_deg=d["thinning"]["min_yaw_change_deg"],
        balance=d["balance"]["mode"], balance_bin_deg=d["balance"]["bin_deg"],
        balance_target_per_bin=d["balance"]["target_per_bin"])


def build_config(config: dict) -> BuildConfig:
    d = config["dataset"]
    c, sh = d["crop"], d["shard"]
    return BuildConfig(
        crop=CropSpec(size=c["size"], margin=c["margin"], pad_rgb=tuple(c["pad_rgb"])),
        jpeg_quality=d["jpeg_quality"],
        shard=ShardLimits(max_samples=sh["max_samples"], max_bytes=int(sh["max_mb"] * 2 ** 20),
                          row_group_samples=sh["row_group_samples"]),
        source=d["source"], threads=d["threads"], full_frames=bool(d["exports"]["coco"]),
        crop_device=d["crop_device"])


def enabled_exports(config: dict) -> list[str]:
    """The exports switched on in ``dataset.exports``."""
    return [e for e in EXPORTS if config["dataset"]["exports"][e]]


class VideoFrameKinds:
    """Each camera video's key frames and reference pictures (annotate.media.video.frame_kinds)
    under a folder of sequences, for ``dataset.frame_choice: cheapest_to_decode``. A video
    that cannot be read has none: its windows keep frame start + k * step (the build then
    records the video's problem); ``unknown`` lists those cameras, and those whose
    reference pictures are not marked, with the reason."""

    def __init__(self, sequence_root: str | Path, show_progress: bool = True,
                 offsets: dict[str, dict[str, int]] | None = None):
        from tqdm import tqdm

        self.root = Path(sequence_root)
        self.offsets = offsets or {}          # sequence -> camera -> picture number of frame 0
        self.unknown: list[str] = []
        # One demuxing pass per video: seconds each for long videos.
        self.progress = tqdm(desc="read frame kinds", unit="video", disable=None if show_progress else True)

    def __call__(self, sequence: str, camera: str) -> tuple[np.ndarray, np.ndarray | None]:
        seq_dir = self.root / check_name(sequence, "sequence", "labels table")
        self.progress.update(1)
        try:
            kinds = frame_kinds(camera_video_path(seq_dir, camera))
        except VideoError as err:
            self.unknown.append(f"{sequence}/{camera} ({err.reason}: {err.detail})")
            return np.zeros(0, dtype=np.int64), None
        if not len(kinds.key):
            self.unknown.append(f"{sequence}/{camera} (frame numbers not in its packets' time stamps)")
        elif kinds.reference is None:
            self.unknown.append(f"{sequence}/{camera} (reference pictures not read: H.264 and HEVC packets "
                                f"whose every picture has a slice only; key frames used)")
        offset = self.offsets.get(sequence, {}).get(camera, 0)
        reference = None if kinds.reference is None else frames_of(kinds.reference, offset)
        return frames_of(kinds.key, offset), reference


def sequence_frame_offsets(cameras_paths: Sequence[str | Path]) -> dict[str, dict[str, int]]:
    """sequence -> camera -> picture number of frame 0, from the sequences' cameras tables."""
    from annotate.panoptic.tables import load_frame_offsets

    out = {}
    for path in cameras_paths:
        sequence = read_table(path, "cameras", columns=["sequence"]).column("sequence")
        if len(sequence):
            out[str(sequence[0])] = load_frame_offsets(path)
    return out


def run_plan(config: dict, labels_paths: Sequence[str | Path], plan_path: str | Path,
             summary_path: str | Path, sequence_root: str | Path | None = None,
             cameras_paths: Sequence[str | Path] = ()) -> PlanSummary:
    """Write plan.parquet and plan_summary.json from the sequences' labels tables.

    sequence_root: the folder of sequence folders, whose camera videos are read (packets
    only) with ``dataset.frame_choice: cheapest_to_decode`` (refused with ``dataset.source: images``;
    with ``auto``, a camera without a video has unknown frame kinds); cameras_paths: the
    sequences' cameras tables, whose ``frame_offset`` turns picture numbers into frames.
    """
    plan = plan_config(config)
    kinds_of = None
    if plan.frame_choice == "cheapest_to_decode":
        if config["dataset"]["source"] == "images":
            raise ValueError("dataset.frame_choice: cheapest_to_decode needs dataset.source: video or auto "
                             "(got 'images': every image decodes alone)")
        if sequence_root is None:
            raise ValueError("dataset.frame_choice: cheapest_to_decode needs the sequences' folder to read the videos")
        kinds_of = VideoFrameKinds(sequence_root, offsets=sequence_frame_offsets(cameras_paths))
    try:
        summary = write_plan(labels_paths, plan_path, plan, kinds_of)
    finally:
        if kinds_of is not None:
            kinds_of.progress.close()
    if kinds_of is not None:
        summary.frame_kinds_unknown = kinds_of.unknown
    write_json_atomic(summary_path, summary.to_dict())
    return summary


def run_build(config: dict, sequence: str, plan_path: str | Path, labels_path: str | Path,
              cameras_path: str | Path, seq_dir: str | Path, out_dir: str | Path, on_shard=None,
              show_progress: bool = True, on_progress=None) -> SequenceBuild:
    """Crop one sequence's planned samples into shards (resumable), with a progress bar
    unless ``show_progress`` is False; see annotate.datasets.build.build_sequence."""
    return build_sequence(sequence, plan_path, labels_path, cameras_path, seq_dir, out_dir, build_config(config),
                          on_shard=on_shard, show_progress=show_progress, on_progress=on_progress)


def run_card(config: dict, out_dir: str | Path, plan_summary_path: str | Path,
             sequence_json_paths: Sequence[str | Path], rejection_paths: Sequence[str | Path]) -> dict:
    """index.json, rejections.parquet, card.json and card.md."""
    from annotate.datasets.card import write_card

    return write_card(out_dir, plan_summary_path, sequence_json_paths, rejection_paths,
                      {"dataset": config["dataset"], "results": config["results"], "source": config["source"]})


def run_export(config: dict, name: str, dataset_dir: str | Path, out_dir: str | Path) -> dict:
    """One export (whenet, w300lp or coco) of the dataset in ``dataset_dir``."""
    if name == "whenet":
        from annotate.datasets.exports.whenet import export_whenet

        return export_whenet(dataset_dir, out_dir)
    if name == "w300lp":
        from annotate.datasets.exports.w300lp import export_300wlp

        return export_300wlp(dataset_dir, out_dir, config["dataset"]["exports"]["frontal_max_deg"])
    if name == "coco":
        from annotate.datasets.exports.coco import export_coco

        return export_coco(dataset_dir, out_dir)
    raise ValueError(f"unknown export {name!r} (one of {EXPORTS})")


def export_folder(name: str) -> str:
    """The folder of an export under ``<out>/exports``."""
    return EXPORT_FOLDERS[name]


def export_of_folder(folder: str) -> str:
    """The export written to ``<out>/exports/<folder>``."""
    return {v: k for k, v in EXPORT_FOLDERS.items()}[folder]
