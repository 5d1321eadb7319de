"""Evaluation: run a model over a ``RecordSource``, score it, compare with the constant baseline.

``predict`` returns per-sample predictions; ``score`` turns them into the metrics of
``annotate.train.metrics`` (full and narrow range, back, |yaw| bands, per sequence) for the
model and for the constant-prediction baseline side by side; ``write_report`` saves
``metrics.json``, ``report.txt``, ``per_sample.csv`` and the plots; ``format_report`` is
the printed report: the subsets' table, then the per-|yaw|-band table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from annotate.core.atomic import atomic_file, write_json_atomic, write_text_atomic
from annotate.geometry.rotations import euler_from_matrix, matrix_from_euler
from annotate.train import metrics as M
from annotate.train.data import PoseDataset, RecordSource, make_loader, normalize_images
from annotate.train.distributed import autocast_for, resolve_amp, resolve_device


@dataclass
class Predictions:
    """Per-sample arrays (N = samples): degrees for angles, R_cam_head matrices."""

    euler_deg: np.ndarray          # (N, 3) predicted [yaw, pitch, roll]
    R: np.ndarray                  # (N, 3, 3) predicted
    true_euler_deg: np.ndarray     # (N, 3)
    true_R: np.ndarray             # (N, 3, 3)
    sequence: np.ndarray           # (N,) str
    sample_id: np.ndarray          # (N,) str
    landmarks: np.ndarray | None = None         # (N, 70, 2) predicted, input-image fractions
    true_landmarks: np.ndarray | None = None    # (N, 70, 2), NaN unknown
    visibility_prob: np.ndarray | None = None   # (N, 70)
    true_visible: np.ndarray | None = None      # (N, 70) 1 / 0 / NaN


def complete_pose(decoded: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(euler_deg (N, 3), R (N, 3, 3)) from whichever of the two a head predicts."""
    if "R" in decoded:
        R = decoded["R"].astype(np.float64)
        return np.rad2deg(euler_from_matrix(R)), R
    euler = decoded["euler_deg"].astype(np.float64)
    euler[:, 0] = np.mod(euler[:, 0] + 180.0, 360.0) - 180.0
    return euler, matrix_from_euler(*np.deg2rad(euler).T)


@torch.no_grad()
def predict(model, loader, device: torch.device, amp: str = "off", channels_last: bool = False) -> Predictions:
    """Run ``model`` (a PoseNet, possibly wrapped) over ``loader`` in eval mode."""
    from annotate.train.checkpoint import unwrap_model

    net = unwrap_model(model)
    was_training = model.training
    model.eval()
    chunks: dict[str, list] = {}
    try:
        for batch in loader:
            images = normalize_images(batch["image"].to(device, non_blocking=True), channels_last)
            with autocast_for(device, amp):
                out = model(images)
            decoded = {k: v.float().cpu().numpy() for k, v in net.decode(out).items()}
            for k, v in decoded.items():
                chunks.setdefault(k, []).append(v)
            for k in ("euler_deg", "R", "landmarks", "visible"):
                chunks.setdefault("true_" + k, []).append(batch[k].numpy())
            chunks.setdefault("sequence", []).append(np.asarray(batch["sequence"], dtype=object))
            chunks.setdefault("sample_id", []).append(np.asarray(batch["sample_id"], dtype=object))
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("evaluation set is empty")
    cat = {k: np.concatenate(v) for k, v in chunks.items()}
    euler, R = complete_pose(cat)
    return Predictions(euler_deg=euler, R=R, true_euler_deg=cat["true_euler_deg"].astype(np.float64),
                       true_R=cat["true_R"].astype(np.float64), sequence=cat["sequence"].astype(str),
                       sample_id=cat["sample_id"].astype(str), landmarks=cat.get("landmarks"),
                       true_landmarks=cat["true_landmarks"] if "landmarks" in cat else None,
                       visibility_prob=cat.get("visibility_prob"),
                       true_visible=cat["true_visible"] if "visibility_prob" in cat else None)


def landmark_scores(pred: Predictions) -> dict[str, float]:
    """Landmark error (mean Euclidean distance, fraction of the crop side) and visibility accuracy."""
    out = {}
    if pred.landmarks is not None:
        d = np.linalg.norm(pred.landmarks - pred.true_landmarks, axis=-1)
        out["landmark_error"] = float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")
    if pred.visibility_prob is not None:
        known = np.isfinite(pred.true_visible)
        hit = (pred.visibility_prob >= 0.5) == (pred.true_visible == 1.0)
        out["visibility_accuracy"] = float(hit[known].mean()) if known.any() else float("nan")
    return out


def score(pred: Predictions, baseline_deg: np.ndarray | None) -> dict:
    """``{"model": breakdown, "baseline": breakdown | None, "baseline_deg": [...], ...}``."""
    errs = M.per_sample_errors(pred.euler_deg, pred.true_euler_deg, pred.R, pred.true_R)
    report = {"model": M.breakdown(errs, pred.true_euler_deg, pred.sequence), "baseline": None,
              "baseline_deg": None, **landmark_scores(pred)}
    if baseline_deg is not None:
        b_euler, b_R = M.constant_predictions(baseline_deg, len(pred.euler_deg))
        b_errs = M.per_sample_errors(b_euler, pred.true_euler_deg, b_R, pred.true_R)
        report["baseline"] = M.breakdown(b_errs, pred.true_euler_deg, pred.sequence)
        report["baseline_deg"] = [float(v) for v in baseline_deg]
    return report


_COLUMNS = ("n", "yaw", "pitch", "roll", "mae", "geodesic", "maev")


def _cell(value: float) -> str:
    return f"{'-':>10}" if np.isnan(value) else f"{value:>10.2f}"


def format_band_table(report: dict) -> list[str]:
    """The per-|yaw|-band lines: n, then MAE and geodesic error of the model and the constant."""
    who = [("model", report["model"])] + ([("constant", report["baseline"])] if report["baseline"] else [])
    lines = [f"per |yaw| band (degrees): MAE and geodesic error",
             f"{'band':<22}{'n':>10}" + "".join(f"{w[:5] + ' ' + m:>16}" for m in ("MAE", "geodesic") for w, _ in who)]
    for lo, hi in M.YAW_BANDS_DEG:
        band = M.band_name(lo, hi)
        cells = "".join(f"{_cell(src[band][m]):>16}" for m in ("mae", "geodesic") for _, src in who)
        lines.append(f"{band:<22}{report['model'][band]['n']:>10d}{cells}")
    return lines


def format_report(report: dict, title: str = "evaluation") -> str:
    """Fixed-width tables, model and baseline side by side (degrees): one line per subset
    (full range ``all``, ``narrow`` |yaw| <= 90, ``back``, sequences), then the |yaw| bands."""
    bands = {M.band_name(lo, hi) for lo, hi in M.YAW_BANDS_DEG}
    lines = [f"{title} (errors in degrees; yaw wrapped; MAE = mean of yaw, pitch, roll)",
             f"{'subset':<22}{'who':<10}" + "".join(f"{c:>10}" for c in _COLUMNS)]
    for subset in report["model"]:
        if subset in bands:
            continue
        for who, src in (("model", report["model"]), ("constant", report["baseline"])):
            if src is None:
                continue
            r = src[subset]
            cells = "".join(f"{r[c]:>10d}" if c == "n" else _cell(r[c]) for c in _COLUMNS)
            lines.append(f"{subset:<22}{who:<10}{cells}")
    lines += format_band_table(report)
    if report.get("baseline_deg"):
        y, p, r = report["baseline_deg"]
        lines.append(f"constant prediction = training-set MAE minimiser: yaw {y:.1f}, pitch {p:.1f}, roll {r:.1f}")
    for k in ("landmark_error", "visibility_accuracy"):
        if k in report:
            lines.append(f"{k}: {report[k]:.4f}")
    return "\n".join(lines)


def write_report(report: dict, pred: Predictions, out_dir: str | Path, title: str = "evaluation") -> Path:
    """metrics.json, per_sample.csv, report.txt and the plots under ``out_dir``."""
    import pandas as pd

    from annotate.train.plots import plot_error_by_yaw, plot_pred_vs_true

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", report)
    write_text_atomic(out / "report.txt", format_report(report, title) + "\n")
    errs = M.per_sample_errors(pred.euler_deg, pred.true_euler_deg, pred.R, pred.true_R)
    table = {"sample_id": pred.sample_id, "sequence": pred.sequence}
    for i, a in enumerate(("yaw", "pitch", "roll")):
        table[f"true_{a}"] = pred.true_euler_deg[:, i]
        table[f"pred_{a}"] = pred.euler_deg[:, i]
    table.update({f"err_{k}": v for k, v in errs.items()})
    with atomic_file(out / "per_sample.csv", suffix=".csv") as tmp:
        pd.DataFrame(table).to_csv(tmp, index=False, float_format="%.4f")
    baseline = None
    if report.get("baseline_deg"):
        b_euler, b_R = M.constant_predictions(np.asarray(report["baseline_deg"]), len(pred.euler_deg))
        baseline = M.per_sample_errors(b_euler, pred.true_euler_deg, b_R, pred.true_R)
    with atomic_file(out / "error_by_yaw.png", suffix=".png") as tmp:
        plot_error_by_yaw(errs, pred.true_euler_deg[:, 0], tmp, baseline=baseline, title=title)
    with atomic_file(out / "pred_vs_true.png", suffix=".png") as tmp:
        plot_pred_vs_true(pred.euler_deg, pred.true_euler_deg, tmp, title=title)
    return out


def evaluation_loader(source: RecordSource, image_size: int, crop_fraction: float, batch_size: int,
                      num_workers: int):
    """The deterministic (unaugmented) loader of an evaluation set."""
    return make_loader(PoseDataset(source, image_size, crop_fraction), batch_size, num_workers=num_workers)


def evaluate_checkpoint(checkpoint: str | Path, source: RecordSource, out_dir: str | Path,
                        batch_size: int = 64, num_workers: int = 2, device: str = "auto",
                        title: str = "evaluation") -> dict:
    """Load a training checkpoint, evaluate it on ``source``, write and return the report.

    The baseline is the constant stored in the checkpoint (from the training labels).
    """
    from annotate.train.checkpoint import load_checkpoint
    from annotate.train.models import build_model

    state = load_checkpoint(checkpoint)
    cfg = state["config"]
    dev = resolve_device(device)
    model = build_model(cfg["model"])
    model.load_state_dict(state["model"])
    model.to(dev)
    loader = evaluation_loader(source, cfg["data"]["image_size"], cfg["data"]["crop_fraction"], batch_size,
                               num_workers)
    pred = predict(model, loader, dev, resolve_amp(cfg["engine"]["amp"], dev))
    baseline = state.get("baseline_deg")
    report = score(pred, None if baseline is None else np.asarray(baseline))
    report["checkpoint"] = str(checkpoint)
    report["step"] = int(state["step"])
    write_report(report, pred, out_dir, title)
    return report
