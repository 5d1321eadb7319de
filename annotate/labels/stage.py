"""The label stage: mean head model, per-face fits and per-camera labels, chunked on disk.

Reads the ingest tables (``faces3d.parquet``, ``cameras.parquet``) and writes
``head_fits.parquet`` and ``labels.parquet``. Faces are processed in chunks of
``chunk_faces`` rows, streamed from and to Parquet, so peak memory does not grow with the
sequence length. No videos are needed.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from annotate.datasets.tables import StreamingTableWriter, fixed_list_to_numpy, iter_batches, read_table
from annotate.geometry.cameras import CameraRig
from annotate.geometry.head_frame import HeadFrameSpec
from annotate.labels.fit import FitConfig, HeadFits, fit_heads
from annotate.labels.head_model import HeadModel, build_head_model, subsample_indices
from annotate.labels.per_view import ViewConfig, ViewLabels, camera_labels
from annotate.panoptic.ingest import load_cameras

FACE_COLUMNS = ["sequence", "frame", "person", "landmarks_world", "score", "source"]


@dataclass
class LabelSummary:
    faces: int = 0
    fits_ok: int = 0
    labels: int = 0
    labels_valid: int = 0
    fit_status: Counter = field(default_factory=Counter)
    reject_reasons: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def __str__(self) -> str:
        lines = [f"faces fitted: {self.faces} ({self.fits_ok} ok)",
                 f"camera labels: {self.labels} ({self.labels_valid} valid) in {self.seconds:.1f} s"]
        if self.fit_status:
            lines.append("fit status: " + ", ".join(f"{k}={v}" for k, v in sorted(self.fit_status.items())))
        bad = {k: v for k, v in self.reject_reasons.items() if k}
        if bad:
            lines.append("rejected views: " + ", ".join(f"{k}={v}" for k, v in sorted(bad.items())))
        return "\n".join(lines)


def sample_faces(faces3d_paths: Iterable[str | Path], max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced faces across the given tables: ((M,70,3) landmarks, (M,70) scores).

    Reads in row batches and keeps only the sampled rows, so memory stays bounded.
    """
    paths = [Path(p) for p in faces3d_paths]
    counts = [pq.ParquetFile(p).metadata.num_rows for p in paths]
    keep = subsample_indices(sum(counts), max_faces)
    marks, scores, offset = [], [], 0
    for path, n in zip(paths, counts):
        local = keep[(keep >= offset) & (keep < offset + n)] - offset
        start = 0
        for batch in iter_batches(path, "faces3d", 4096, columns=["landmarks_world", "score"]):
            sel = local[(local >= start) & (local < start + batch.num_rows)] - start
            if len(sel):
                marks.append(fixed_list_to_numpy(batch.column("landmarks_world"), (70, 3))[sel])
                scores.append(fixed_list_to_numpy(batch.column("score"), (70,))[sel])
            start += batch.num_rows
        offset += n
    if not marks:
        raise ValueError(f"no faces to build a head model from in {[str(p) for p in paths]}")
    return np.concatenate(marks).astype(np.float64), np.concatenate(scores).astype(np.float64)


def build_model_from_tables(faces3d_paths: Iterable[str | Path], max_faces: int = 3000,
                            spec: HeadFrameSpec = HeadFrameSpec()) -> HeadModel:
    """Mean head model (GPA) from up to ``max_faces`` faces sampled across sequences."""
    paths = [str(p) for p in faces3d_paths]
    landmarks, scores = sample_faces(paths, max_faces)
    return build_head_model(landmarks, scores, spec, source=f"GPA over {len(landmarks)} faces from {', '.join(paths)}")


def _fit_columns(batch, fits: HeadFits) -> dict:
    return {
        "sequence": batch.column("sequence"), "frame": batch.column("frame"), "person": batch.column("person"),
        "R_world_head": fits.R_world_head.reshape(-1, 9), "t_world_head": fits.t_world_head,
        "scale": fits.scale, "rms_cm": fits.rms_cm, "landmarks_used": fits.landmarks_used,
        "landmark_weight": fits.landmark_weight, "status": fits.status,
        "landmarks_source": batch.column("source"),
    }


def _label_columns(batch, rig: CameraRig, camera_index: np.ndarray, fits: HeadFits,
                   helmet: np.ndarray, views: ViewLabels) -> dict:
    """Rows in (face, camera) order: arrays (C, M, ...) are transposed to (M, C, ...)."""
    C, M = len(rig), batch.num_rows

    def rows(a):
        a = np.asarray(a)
        return np.swapaxes(a, 0, 1).reshape((M * C,) + a.shape[2:])

    def per_face(a):
        return np.repeat(np.asarray(a), C, axis=0)

    reject = rows(views.reject)
    return {
        "sequence": per_face(batch.column("sequence").to_numpy(zero_copy_only=False)),
        "frame": per_face(batch.column("frame").to_numpy()),
        "person": per_face(batch.column("person").to_numpy()),
        "camera": np.tile(np.asarray(rig.names, dtype=object), M),
        "camera_index": np.tile(camera_index, M),
        "yaw": rows(views.euler_deg[..., 0]), "pitch": rows(views.euler_deg[..., 1]),
        "roll": rows(views.euler_deg[..., 2]),
        "R_cam_head": rows(views.R_cam_head).reshape(-1, 9), "rot6d": rows(views.rot6d),
        "quat_cam_head": rows(views.quat), "head_centre_cam": rows(views.centre_cam),
        "head_scale": per_face(fits.scale), "helmet_radius_cm": per_face(helmet),
        "box": rows(views.box), "box_unclipped": rows(views.box_unclipped),
        "box_fraction_inside": rows(views.fraction_inside), "facing_camera": rows(views.facing),
        "fit_rms_cm": per_face(fits.rms_cm), "fit_landmarks_used": per_face(fits.landmarks_used),
        "valid": reject == "", "reject_reason": reject,
    }


def label_faces(model: HeadModel, rig: CameraRig, landmarks_world: np.ndarray, scores: np.ndarray | None,
                fit_config: FitConfig = FitConfig(), view_config: ViewConfig = ViewConfig()
                ) -> tuple[HeadFits, np.ndarray, ViewLabels]:
    """Fit M faces and label them in every camera: the pure core of the stage.

    landmarks_world (M,70,3) cm; scores (M,70) or None. Returns the fits, the helmet radii
    (M,) cm and the (C, M) view labels.
    """
    fits = fit_heads(model, landmarks_world, scores, fit_config)
    helmet = model.spec.helmet_radius_cm * np.where(np.isfinite(fits.scale), fits.scale, 1.0)
    # A face whose fit was refused keeps its fitted values (NaN where there are none) and
    # every one of its views is marked fit_failed.
    views = camera_labels(rig, fits.R_world_head, fits.t_world_head, helmet, fits.ok, view_config)
    return fits, helmet, views


def label_sequence(faces3d_path: str | Path, cameras_path: str | Path, model: HeadModel,
                   out_dir: str | Path, fit_config: FitConfig = FitConfig(),
                   view_config: ViewConfig = ViewConfig(), chunk_faces: int = 200,
                   progress: bool | None = None) -> LabelSummary:
    """Write ``out_dir/head_fits.parquet`` and ``out_dir/labels.parquet`` for one sequence."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    rig = load_cameras(cameras_path)
    cams = read_table(cameras_path, "cameras", columns=["camera", "camera_index"]).to_pydict()
    index_of = dict(zip(cams["camera"], cams["camera_index"]))
    camera_index = np.array([index_of[n] for n in rig.names], dtype=np.int16)
    total = pq.ParquetFile(faces3d_path).metadata.num_rows
    summary = LabelSummary()
    with StreamingTableWriter(out_dir / "head_fits.parquet", "head_fits") as fits_out, \
            StreamingTableWriter(out_dir / "labels.parquet", "labels") as labels_out, \
            tqdm(total=total, unit="face", desc="label", disable=None if progress is None else not progress) as bar:
        for batch in iter_batches(faces3d_path, "faces3d", chunk_faces, columns=FACE_COLUMNS):
            landmarks = fixed_list_to_numpy(batch.column("landmarks_world"), (70, 3)).astype(np.float64)
            scores = fixed_list_to_numpy(batch.column("score"), (70,)).astype(np.float64)
            fits, helmet, views = label_faces(model, rig, landmarks, scores, fit_config, view_config)
            fits_out.write(_fit_columns(batch, fits))
            cols = _label_columns(batch, rig, camera_index, fits, helmet, views)
            labels_out.write(cols)
            summary.faces += batch.num_rows
            summary.fits_ok += int(fits.ok.sum())
            summary.fit_status.update(fits.status.tolist())
            summary.labels += len(cols["valid"])
            summary.labels_valid += int(cols["valid"].sum())
            summary.reject_reasons.update(cols["reject_reason"].tolist())
            bar.update(batch.num_rows)
    summary.seconds = time.perf_counter() - start
    return summary
