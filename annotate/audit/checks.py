"""The audit's checks: thresholds over the measured samples -> flags and pass/fail.

Each check reads one column of the audit samples table (or of the cameras table, for the
camera-level checks, which flag every label of a bad camera) and flags the labels beyond
its threshold (``audit.checks.<name>.threshold`` in the config). A check fails when the
flagged fraction of the labels it could measure exceeds ``max_flagged_fraction``; a check
with nothing to measure (no detections, no bodies, no triangulated faces, no video) is
"not run" (passed = None) and never fails the audit.

Reason codes (the flags table's ``reason``) are the check names below.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KEYS = ["sequence", "frame", "person", "camera"]


class AuditFailed(RuntimeError):
    """A strict audit (``--strict`` / ``audit.strict``) had a failed check."""


@dataclass(frozen=True)
class Check:
    """name: reason code; column: the samples (or cameras) column it thresholds; above:
    flag values above the threshold (False: below); unit and description for the report;
    camera_level: the column lives in the cameras table."""

    name: str
    column: str
    unit: str
    description: str
    above: bool = True
    camera_level: bool = False


CHECKS: tuple[Check, ...] = (
    Check("fit_rejected", "fit_rejected", "", "the label stage rejected the head fit (too few landmarks, residual, scale)"),
    Check("fit_residual", "fit_rms_cm", "cm", "RMS 3D residual of the head fit"),
    Check("fit_landmarks", "fit_landmarks_used", "landmarks", "landmarks kept by the robust fit", above=False),
    Check("reprojection", "reprojection_rel", "box sides",
          "median distance between the fitted head's landmarks projected into the view and the 2D detections there"),
    Check("camera_reprojection", "reprojection_ratio", "x rig median",
          "a camera's median reprojection over the median camera's: a miscalibrated camera (flags all its labels)",
          camera_level=True),
    Check("angular_speed", "angular_speed_deg_s", "deg/s",
          "median rotation speed to the fits within 3 frames of the same person (a spike = one wrong fit)"),
    Check("identity_jump", "head_speed_cm_s", "cm/s",
          "head-centre speed from the same person id's previous two fits (the smaller: a jump that stays)"),
    Check("body_mismatch", "body_distance_cm", "cm", "fitted face to the same person id's body face joints"),
    Check("crosscheck", "crosscheck_cm", "cm", "published vs triangulated 3D landmarks, median distance"),
    Check("uncertainty", "uncertainty_deg", "deg", "1-sigma rotation uncertainty of the head fit"),
    Check("video_sync", "sync_flag_value", "score",
          "camera video out of step with the labels: the best lag is not 0 and its error is below this share "
          "of lag 0's (flags all its labels)", above=False, camera_level=True),
)
CHECK_BY_NAME = {c.name: c for c in CHECKS}


def camera_flag_values(cameras: pd.DataFrame) -> pd.DataFrame:
    """Add ``sync_flag_value``: the lag score where the best lag is not 0, 1 where it is 0
    (in step), NaN where sync was not measured."""
    cameras = cameras.copy()
    lag = cameras["sync_lag_frames"]
    measured = lag.notna() & np.isfinite(cameras["sync_score"].astype(float))
    cameras["sync_flag_value"] = np.where(measured, np.where(lag.fillna(0) != 0, cameras["sync_score"], 1.0), np.nan)
    return cameras


def _beyond(values: np.ndarray, threshold: float, above: bool) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return values > threshold if above else values < threshold


def run_checks(samples: pd.DataFrame, cameras: pd.DataFrame, settings: dict) -> tuple[pd.DataFrame, dict]:
    """Flags (one row per label and reason, schema audit_flags) and per-check metrics.

    samples: the audit samples table (one row per label); cameras: the audit cameras
    table; settings: ``config["audit"]["checks"]``. Metrics per check: passed (None = not
    run), measured, flagged, flagged_fraction, threshold, max_flagged_fraction, unit,
    description, median, p99 of the measured values.
    """
    cameras = camera_flag_values(cameras)
    flags, metrics = [], {}
    for check in CHECKS:
        setting = settings[check.name]
        threshold, max_fraction = float(setting["threshold"]), float(setting["max_flagged_fraction"])
        if check.camera_level:
            per_camera = cameras.set_index(["sequence", "camera"])[check.column]
            values = samples.join(per_camera, on=["sequence", "camera"])[check.column].to_numpy(np.float64)
        else:
            values = samples[check.column].to_numpy(np.float64)
        measured = np.isfinite(values)
        hit = measured & _beyond(values, threshold, check.above)
        metrics[check.name] = _metrics(check, values[measured], int(hit.sum()), threshold, max_fraction)
        if hit.any():
            rows = samples.loc[hit, KEYS].copy()
            rows["reason"] = check.name
            rows["value"] = values[hit]
            rows["threshold"] = threshold
            relation = ">" if check.above else "<"
            rows["detail"] = [f"{check.column} {v:.4g} {relation} {threshold:g} {check.unit}".rstrip() for v in values[hit]]
            flags.append(rows)
    columns = KEYS + ["reason", "value", "threshold", "detail"]
    table = pd.concat(flags, ignore_index=True) if flags else pd.DataFrame(columns=columns)
    return table[columns], metrics


def _metrics(check: Check, values: np.ndarray, flagged: int, threshold: float, max_fraction: float) -> dict:
    n = len(values)
    fraction = flagged / n if n else 0.0
    return {
        "passed": None if n == 0 else bool(fraction <= max_fraction),
        "measured": n, "flagged": flagged, "flagged_fraction": fraction,
        "threshold": threshold, "max_flagged_fraction": max_fraction,
        "unit": check.unit, "description": check.description, "column": check.column,
        "median": float(np.median(values)) if n else None,
        "p99": float(np.percentile(values, 99)) if n else None,
    }


def mark_flagged(samples: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """samples with ``flagged`` and ``reasons`` (sorted, comma-separated reason codes)."""
    samples = samples.drop(columns=["flagged", "reasons"], errors="ignore")
    if len(flags):
        reasons = flags.groupby(KEYS, observed=True)["reason"].agg(lambda r: ",".join(sorted(set(r))))
        samples = samples.join(reasons.rename("reasons"), on=KEYS)
        samples["reasons"] = samples["reasons"].fillna("")
    else:
        samples = samples.assign(reasons="")
    samples["flagged"] = samples["reasons"] != ""
    return samples


def overall_passed(metrics: dict) -> bool:
    """Every check that ran passed."""
    return all(m["passed"] is not False for m in metrics.values())


def audit_summary(metrics: dict) -> str:
    """A plain-text table of the checks, for logs and the terminal."""
    lines = [(f"audit: {'PASSED' if metrics['passed'] else 'FAILED'} - {metrics['counts']['labels']} labels, "
              f"{metrics['counts']['flagged_labels']} flagged"),
             f"{'check':<20} {'result':<8} {'measured':>9} {'flagged':>8} {'fraction':>9} {'threshold':>10}  unit"]
    for name, m in metrics["checks"].items():
        result = "not run" if m["passed"] is None else ("pass" if m["passed"] else "FAIL")
        lines.append(f"{name:<20} {result:<8} {m['measured']:>9} {m['flagged']:>8} {m['flagged_fraction']:>9.4f} "
                     f"{m['threshold']:>10g}  {m['unit']}")
    return "\n".join(lines)


def check_gate(metrics_path) -> str:
    """Raise ``AuditFailed`` naming the failed checks of a metrics JSON; else its summary."""
    import json
    from pathlib import Path

    metrics = json.loads(Path(metrics_path).read_text())
    failed = [k for k, m in metrics["checks"].items() if m["passed"] is False]
    if failed:
        raise AuditFailed(f"{metrics_path}: audit failed checks: {', '.join(failed)}\n{audit_summary(metrics)}")
    return audit_summary(metrics)
