"""The audit stage: read a dataset's label tables, measure, check, write the audit.

Inputs per sequence (``SequenceInputs``): the labels and head_fits tables and the head
model (required); the bodies, 2D detections (triangulate stage), published-vs-triangulated
cross-check and rejection tables, and the sequence folder's videos (all optional: a check
without its input is reported "not run"). Outputs in ``out_dir``, each written atomically:

- ``samples.parquet`` (schema audit_samples): one row per label with every measurement;
- ``flags.parquet`` (schema audit_flags): one row per flagged (label, reason);
- ``cameras.parquet`` (schema audit_cameras): per-camera reprojection and video lag;
- ``metrics.json``: per-check figures and pass/fail, counts, uncertainty;
- ``report.html``: the self-contained report (``annotate.audit.report``).

Memory: one sequence's tables are read whole, the label rows' fitted landmarks and the
detections included (about 1.2 kB per label).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from annotate.audit import measures, sync
from annotate.audit.checks import CHECKS, mark_flagged, overall_passed, run_checks
from annotate.core.atomic import write_json_atomic
from annotate.core.tables import fixed_list_to_numpy, read_table, write_table
from annotate.head.head_model import HeadModel, load_head_model
from annotate.head.per_view import model_landmarks_world

HD_FPS = 30000 / 1001
METRICS_FORMAT = "annotate.audit_metrics"
METRICS_VERSION = "1.0.0"
LIGHT_LABEL_COLUMNS = ["sequence", "frame", "person", "camera", "valid", "yaw", "pitch", "roll"]


@dataclass
class SequenceInputs:
    """The tables of one sequence the audit reads; None = not available."""

    sequence: str
    labels: Path
    fits: Path
    bodies: Path | None = None
    detections: Path | None = None
    crosscheck: Path | None = None
    rejections: list[Path] = field(default_factory=list)
    seq_dir: Path | None = None           # the Panoptic folder, for the video sync check
    frame_source: str = "auto"         # detect.frames_from
    frame_step: int = 1                   # ingest.frame_step: neighbours in a track are this far apart
    sync_windows: int = 3                 # audit.sync_windows x audit.sync_window_frames frames read per video
    sync_window_frames: int = 150
    frame_offsets: dict = field(default_factory=dict)   # camera -> picture number of frame 0 (ingest)


@dataclass
class AuditResult:
    samples: pd.DataFrame
    flags: pd.DataFrame
    cameras: pd.DataFrame
    metrics: dict
    rejections: pd.DataFrame

    @property
    def passed(self) -> bool:
        return bool(self.metrics["passed"])


# ------------------------------------------------------------------------------ fit level

def _fits_frame(path: Path) -> pd.DataFrame:
    t = read_table(path, "head_fits")
    n = t.num_rows
    return pd.DataFrame({
        "sequence": t.column("sequence").to_numpy().astype(str) if n else np.zeros(0, str),
        "frame": t.column("frame").to_numpy().astype(np.int64),
        "person": t.column("person").to_numpy().astype(np.int64),
        "R": list(fixed_list_to_numpy(t.column("R_world_head"), (3, 3))),
        "t": list(fixed_list_to_numpy(t.column("t_world_head"), (3,))),
        "scale": t.column("scale").to_numpy(),
        "rms_cm": t.column("rms_cm").to_numpy(),
        "landmarks_used": t.column("landmarks_used").to_numpy(),
        "rotation_sigma_deg": t.column("rotation_sigma_deg").to_numpy(),
        "fit_status": t.column("status").to_numpy(zero_copy_only=False).astype(str),
    })


def fit_measures(fits: pd.DataFrame, model: HeadModel, bodies: Path | None, crosscheck: Path | None,
                 fps: float = HD_FPS, frame_step: int = 1) -> pd.DataFrame:
    """Per (sequence, frame, person) fit: speeds, body distance, cross-check, uncertainty.
    frame_step: the frames the ingest kept are this far apart (the temporal window scales)."""
    out = fits[["sequence", "frame", "person", "fit_status"]].copy()
    n = len(fits)
    for col in ("angular_speed_deg_s", "head_speed_cm_s", "body_distance_cm", "crosscheck_cm", "uncertainty_deg"):
        out[col] = np.nan
    ok = (fits["fit_status"] == "ok").to_numpy()
    if not n or not ok.any():
        return out
    R = np.stack(fits["R"].to_numpy())
    t = np.stack(fits["t"].to_numpy())
    seq, person, frame = (fits[c].to_numpy() for c in ("sequence", "person", "frame"))
    idx = np.flatnonzero(ok)
    out.loc[ok, "angular_speed_deg_s"] = measures.neighbour_angular_speed(seq[idx], person[idx], frame[idx], R[idx], fps,
                                                                        max_gap=3 * frame_step)
    out.loc[ok, "head_speed_cm_s"] = measures.head_jump_speed(seq[idx], person[idx], frame[idx], t[idx], fps,
                                                              max_gap=3 * frame_step)
    out.loc[ok, "uncertainty_deg"] = fits["rotation_sigma_deg"].to_numpy()[idx].astype(np.float64)
    if bodies is not None and Path(bodies).is_file():
        joints, conf = _bodies_for(bodies, seq[idx], frame[idx], person[idx])
        world = model_landmarks_world(model.landmarks_head, R[idx], t[idx], fits["scale"].to_numpy()[idx])
        out.loc[ok, "body_distance_cm"] = measures.body_head_distance_cm(world, joints, conf)
    if crosscheck is not None and Path(crosscheck).is_file():
        cc = read_table(crosscheck, "faces3d_crosscheck", columns=["sequence", "frame", "person", "median_cm"]).to_pandas()
        cc["sequence"] = cc["sequence"].astype(str)
        merged = out[["sequence", "frame", "person"]].merge(cc, how="left", on=["sequence", "frame", "person"])
        out["crosscheck_cm"] = merged["median_cm"].to_numpy(np.float64)
    return out


def _bodies_for(path: Path, sequence: np.ndarray, frame: np.ndarray, person: np.ndarray):
    """Body face joints (M, 19, 3) and confidences (M, 19) of the given fits; NaN / -1
    where the person id has no body in that frame."""
    from annotate.panoptic.tables import load_bodies

    b = load_bodies(path)
    lookup = {(s, int(f), int(p)): i for i, (s, f, p) in enumerate(zip(b.sequence, b.frame, b.person))}
    joints = np.full((len(frame), 19, 3), np.nan)
    conf = np.full((len(frame), 19), -1.0)
    for k, key in enumerate(zip(sequence, frame.tolist(), person.tolist())):
        i = lookup.get(key)
        if i is not None:
            joints[k], conf[k] = b.joints[i], b.confidence[i]
    return joints, conf


# ---------------------------------------------------------------------------- view level

def rows_by_camera(path: Path, table: str, columns: list[str]) -> dict:
    """{camera: pyarrow Table of its rows}: the file read once (one scan per camera with a
    filter costs 5x more on a 31-camera table)."""
    t = read_table(path, table, columns=["camera", *columns])
    camera = t.column("camera").to_numpy(zero_copy_only=False).astype(str) if t.num_rows else np.zeros(0, str)
    return {c: t.take(np.flatnonzero(camera == c)) for c in np.unique(camera)}


LABEL_VIEW_COLUMNS = ["frame", "person", "valid", "box_unclipped", "landmarks_2d"]
# A camera is judged against its rig (camera_reprojection) only with this many valid labels:
# the median of a handful of views says more about those faces than about the calibration.
MIN_CAMERA_LABELS = 20
DETECTION_COLUMNS = ["frame", "person", "landmarks_px"]


def camera_measures(inputs: SequenceInputs, camera: str, t, d, audit: dict) -> tuple[pd.DataFrame, dict]:
    """One camera's labels: reprojection against its detections, and its video lag.

    t: the camera's label rows (LABEL_VIEW_COLUMNS); d: its detection rows
    (DETECTION_COLUMNS) or None. Returns per-label (frame, person, reprojection_px,
    reprojection_rel) and the cameras table row.
    """
    frame = t.column("frame").to_numpy().astype(np.int64)
    person = t.column("person").to_numpy().astype(np.int64)
    valid = t.column("valid").to_numpy(zero_copy_only=False)
    box = fixed_list_to_numpy(t.column("box_unclipped"), (4,)).astype(np.float64)
    fitted = fixed_list_to_numpy(t.column("landmarks_2d"), (70, 2)).astype(np.float64)
    repro = np.full(len(frame), np.nan)
    detections = 0
    if d is not None and d.num_rows:
        det = fixed_list_to_numpy(d.column("landmarks_px"), (70, 2)).astype(np.float64)
        rows = np.flatnonzero(valid)
        _, repro[rows] = measures.match_detections(frame[rows], fitted[rows], measures.box_side_px(box[rows]),
                                                   d.column("frame").to_numpy().astype(np.int64), det,
                                                   label_person=person[rows],
                                                   detection_person=d.column("person").to_numpy().astype(np.int64))
        detections = int(np.isfinite(repro).sum())
    rel = repro / np.maximum(measures.box_side_px(box), 1.0)
    lag, score = None, np.nan
    if audit["video_sync"] and inputs.seq_dir is not None and valid.any():
        est = _sync(inputs, camera, frame[valid], person[valid], box[valid])
        lag, score = est.lag_frames, est.score
    per_label = pd.DataFrame({"frame": frame, "person": person, "reprojection_px": repro, "reprojection_rel": rel})
    row = {"sequence": inputs.sequence, "camera": camera, "labels": int(valid.sum()), "detections": detections,
           "reprojection_median_px": float(np.nanmedian(repro)) if np.isfinite(repro).any() else np.nan,
           "reprojection_median_rel": float(np.nanmedian(rel)) if np.isfinite(rel).any() else np.nan,
           "sync_lag_frames": lag, "sync_score": score}
    return per_label, row


def _sync(inputs: SequenceInputs, camera: str, frame, person, box) -> sync.SyncEstimate:
    from annotate.media.video import VideoError

    try:
        return sync.camera_sync(inputs.seq_dir, camera, frame, person, box, source=inputs.frame_source,
                                offset=int(inputs.frame_offsets.get(camera, 0)),
                                windows=inputs.sync_windows, window_frames=inputs.sync_window_frames)
    except (VideoError, FileNotFoundError) as err:
        print(f"audit: {inputs.sequence} camera {camera}: video sync not measured: {err}")
        return sync.SyncEstimate(None, float("nan"), 0)


# ------------------------------------------------------------------------------ sequence

def audit_sequence(inputs: SequenceInputs, model: HeadModel, audit: dict, progress=None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The samples rows (one per label) and cameras rows of one sequence."""
    labels = read_table(inputs.labels, "labels", columns=LIGHT_LABEL_COLUMNS).to_pandas()
    for col in ("sequence", "camera"):
        labels[col] = labels[col].astype(str)
    fits = _fits_frame(inputs.fits)
    fit_level = fit_measures(fits, model, inputs.bodies, inputs.crosscheck, frame_step=inputs.frame_step)
    fit_level["fit_rms_cm"] = fits["rms_cm"].to_numpy(np.float32)
    fit_level["fit_landmarks_used"] = fits["landmarks_used"].to_numpy(np.int16)
    samples = labels.merge(fit_level, how="left", on=["sequence", "frame", "person"])
    samples["fit_status"] = samples["fit_status"].fillna("missing")
    samples["fit_rejected"] = samples["fit_status"] != "ok"
    per_label, camera_rows = [], []
    cameras = list(dict.fromkeys(labels["camera"]))
    views = rows_by_camera(inputs.labels, "labels", LABEL_VIEW_COLUMNS)
    detections = rows_by_camera(inputs.detections, "detections2d", DETECTION_COLUMNS) \
        if inputs.detections is not None and Path(inputs.detections).is_file() else None
    for camera in cameras:
        d = None if detections is None else detections.get(camera)
        rows, row = camera_measures(inputs, camera, views.pop(camera), d, audit)
        per_label.append(rows.assign(camera=camera))
        camera_rows.append(row)
        if progress is not None:
            progress.update(1)
    if per_label:
        samples = samples.merge(pd.concat(per_label), how="left", on=["frame", "person", "camera"])
    cameras = pd.DataFrame(camera_rows)
    if len(cameras):
        cameras["reprojection_ratio"] = reprojection_ratios(cameras["reprojection_median_px"].to_numpy(float),
                                                            cameras["labels"].to_numpy())
    return samples, cameras


def reprojection_ratios(median_px: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(C,) each camera's median reprojection px over the median camera's; NaN for cameras
    with fewer than MIN_CAMERA_LABELS valid labels (not judged) or without a median."""
    median_px = np.asarray(median_px, dtype=np.float64)
    typical = np.nanmedian(median_px) if np.isfinite(median_px).any() else np.nan
    return np.where(np.asarray(labels) >= MIN_CAMERA_LABELS, median_px / typical, np.nan)


def read_rejections(paths: list[Path]) -> pd.DataFrame:
    tables = [read_table(p, "rejections").to_pandas() for p in paths if Path(p).is_file()]
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame(columns=["sequence", "stage", "frame", "person", "camera", "file", "reason", "detail"])
    return pd.concat(tables, ignore_index=True)


def run_audit(inputs: list[SequenceInputs], model_path: str | Path, config: dict, out_dir: str | Path,
              shards_dir: str | Path | None = None, compare=None) -> AuditResult:
    """Audit every sequence and write the outputs (module docstring) into ``out_dir``.

    compare: None, or ``compare(flags, out_dir) -> (label_comparison rows, summary)``, which
    compares other people's labels with ours once the flags are known (it writes its own
    files); the report then has its "Other labels" section."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    audit = config["audit"]
    model = load_head_model(model_path)
    samples, cameras = [], []
    with tqdm(total=None, desc="audit cameras", unit="camera", disable=None) as progress:
        for seq in inputs:
            s, c = audit_sequence(seq, model, audit, progress)
            samples.append(s)
            cameras.append(c)
    samples = pd.concat(samples, ignore_index=True)
    cameras = pd.concat(cameras, ignore_index=True)
    flags, checks = run_checks(samples, cameras, audit["checks"])
    samples = mark_flagged(samples, flags)
    cameras = _camera_flags(cameras, flags)
    rejections = read_rejections([p for seq in inputs for p in seq.rejections])
    metrics = _metrics_doc(samples, cameras, checks, rejections, audit, time.perf_counter() - start)
    result = AuditResult(samples, flags, cameras, metrics, rejections)
    write_audit(result, out_dir, shards_dir, audit, compare)
    return result


def _camera_flags(cameras: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    camera_level = flags[flags["reason"].isin([c.name for c in CHECKS if c.camera_level])]
    bad = set(zip(camera_level["sequence"], camera_level["camera"]))
    cameras = cameras.copy()
    cameras["flagged"] = [(s, c) in bad for s, c in zip(cameras["sequence"], cameras["camera"])]
    return cameras


def _metrics_doc(samples, cameras, checks, rejections, audit, seconds) -> dict:
    valid = samples["valid"].to_numpy(bool)
    unc = samples.loc[valid, "uncertainty_deg"].to_numpy(np.float64)
    unc = unc[np.isfinite(unc)]
    return {
        "format": METRICS_FORMAT, "version": METRICS_VERSION,
        "passed": overall_passed(checks), "strict": bool(audit["strict"]),
        "counts": {
            "labels": len(samples), "valid_labels": int(valid.sum()),
            "flagged_labels": int(samples["flagged"].sum()),
            "flagged_valid_labels": int((samples["flagged"] & valid).sum()),
            "sequences": int(samples["sequence"].nunique()), "cameras": len(cameras),
            "people": int(samples[["sequence", "person"]].drop_duplicates().shape[0]),
            "fits": int(samples[["sequence", "frame", "person"]].drop_duplicates().shape[0]),
            "rejections": {str(k): int(v) for k, v in rejections["reason"].value_counts().items()},
        },
        "checks": checks,
        "uncertainty_deg": {q: (float(np.percentile(unc, p)) if len(unc) else None)
                            for q, p in (("median", 50), ("p90", 90), ("p99", 99))},
        "cameras_flagged": sorted(f"{s}/{c}" for s, c in cameras.loc[cameras["flagged"], ["sequence", "camera"]]
                                  .itertuples(index=False)),
        "seconds": round(seconds, 2),
    }


def write_audit(result: AuditResult, out_dir: str | Path, shards_dir: str | Path | None, audit: dict,
                compare=None) -> None:
    """samples/flags/cameras Parquet, metrics JSON, the comparison (``run_audit``) and the
    HTML report, atomically."""
    out_dir = Path(out_dir)
    write_table(result.samples[_schema_columns("audit_samples")], out_dir / "samples.parquet", "audit_samples")
    write_table(result.flags, out_dir / "flags.parquet", "audit_flags")
    write_table(result.cameras[_schema_columns("audit_cameras")], out_dir / "cameras.parquet", "audit_cameras")
    write_json_atomic(out_dir / "metrics.json", result.metrics)
    comparison = compare(result.flags, out_dir) if compare is not None else None
    _write_report(result, out_dir, shards_dir, audit, comparison)


def _write_report(result: AuditResult, out_dir: Path, shards_dir, audit: dict, comparison=None) -> None:
    from annotate.audit import report

    crops = None
    if shards_dir is not None and Path(shards_dir).exists() and audit["contact_sheet_size"] > 0:
        crops = report.CropSource(shards_dir)
    report.write_report(out_dir / "report.html", result.samples, result.flags, result.cameras, result.metrics,
                        result.rejections, crops, contact_sheet_size=audit["contact_sheet_size"], seed=audit["seed"],
                        comparison=comparison)


def _schema_columns(name: str) -> list[str]:
    from annotate.core.schema import load_schema

    return [f.name for f in load_schema(name).arrow]
