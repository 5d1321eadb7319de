"""Evaluation metrics of head-pose predictions (numpy; angles in degrees in and out).

- Euler MAE: yaw wrapped (``min(|d|, 360 - |d|)``), pitch and roll plain, and their mean
  (the usual AFLW2000/BIWI figure);
- geodesic error: the angle of ``R_pred^T R_true``;
- vector MAE (MAEV, as TriNet / TokenHPE): the angle between matching columns of the two
  matrices, i.e. the head's left (x), up (y) and forward (z) axes, and their mean;
- breakdowns (``breakdown``): DirectMHP's protocols, full range (``all``) and narrow range
  (``narrow``: |yaw| <= 90), the back of the head (``back``: |yaw| > 90), the |yaw| bands
  0-60, 60-120 and 120-180 (``YAW_BANDS_DEG``) and each sequence;
- the constant-prediction baseline: per angle the constant that minimises the training
  labels' MAE (median of pitch and of roll, the wrapped-MAE minimiser of yaw).
"""
from __future__ import annotations

import numpy as np

from annotate.geometry.rotations import geodesic_distance, matrix_from_euler

AXIS_NAMES = ("left", "up", "forward")      # columns x, y, z of R_cam_head


def wrapped_abs_diff_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``min(|a - b|, 360 - |a - b|)`` elementwise, degrees, in [0, 180]."""
    d = np.abs(np.mod(np.asarray(a, np.float64) - np.asarray(b, np.float64), 360.0))
    return np.minimum(d, 360.0 - d)


def euler_errors(pred_deg: np.ndarray, true_deg: np.ndarray) -> np.ndarray:
    """(N, 3) [yaw, pitch, roll] predictions and labels -> (N, 3) absolute errors, yaw wrapped."""
    pred_deg, true_deg = np.asarray(pred_deg, np.float64), np.asarray(true_deg, np.float64)
    return np.stack([wrapped_abs_diff_deg(pred_deg[:, 0], true_deg[:, 0]),
                     np.abs(pred_deg[:, 1] - true_deg[:, 1]),
                     np.abs(pred_deg[:, 2] - true_deg[:, 2])], axis=1)


def vector_errors(R_pred: np.ndarray, R_true: np.ndarray) -> np.ndarray:
    """(N, 3, 3) x 2 -> (N, 3) angles (deg) between matching columns (left, up, forward axes)."""
    cos = np.einsum("nij,nij->nj", R_pred, R_true)
    sin = np.linalg.norm(np.cross(np.swapaxes(R_pred, 1, 2), np.swapaxes(R_true, 1, 2)), axis=-1)
    return np.rad2deg(np.arctan2(sin, cos))


def per_sample_errors(pred_deg: np.ndarray, true_deg: np.ndarray, R_pred: np.ndarray,
                      R_true: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-sample error (degrees): yaw, pitch, roll, mae, geodesic, vec_left/up/forward, maev."""
    e = euler_errors(pred_deg, true_deg)
    v = vector_errors(R_pred, R_true)
    return {"yaw": e[:, 0], "pitch": e[:, 1], "roll": e[:, 2], "mae": e.mean(1),
            "geodesic": np.rad2deg(geodesic_distance(R_pred, R_true)),
            "vec_left": v[:, 0], "vec_up": v[:, 1], "vec_forward": v[:, 2], "maev": v.mean(1)}


def summarise(errors: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict[str, float]:
    """Mean of each per-sample error (over ``mask``), plus the count ``n``; NaN means when empty."""
    n = len(next(iter(errors.values())))
    m = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
    out = {"n": int(m.sum())}
    for k, v in errors.items():
        out[k] = float(v[m].mean()) if m.any() else float("nan")
    return out


# |yaw| bands of the per-band table: [0, 60), [60, 120), [120, 180], degrees.
YAW_BANDS_DEG = ((0.0, 60.0), (60.0, 120.0), (120.0, 180.0))
NARROW_MAX_ABS_YAW_DEG = 90.0       # DirectMHP's narrow range: |yaw| <= 90


def band_name(lo: float, hi: float) -> str:
    return f"yaw {lo:g}-{hi:g}"


def yaw_band_masks(true_deg: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 3) labels -> ``{"yaw 0-60": (N,) bool, ...}``; the last band includes |yaw| = 180."""
    yaw = np.abs(np.asarray(true_deg, np.float64)[:, 0])
    last = len(YAW_BANDS_DEG) - 1
    return {band_name(lo, hi): (yaw >= lo) & ((yaw <= hi) if i == last else (yaw < hi))
            for i, (lo, hi) in enumerate(YAW_BANDS_DEG)}


def breakdown(errors: dict[str, np.ndarray], true_deg: np.ndarray, sequences: np.ndarray | None = None
              ) -> dict[str, dict[str, float]]:
    """Summaries: ``all`` (full range), ``narrow`` (|yaw| <= 90), ``back`` (|yaw| > 90), one per
    |yaw| band (``yaw 0-60``, ...), and ``seq:<name>``."""
    yaw = np.abs(np.asarray(true_deg)[:, 0])
    out = {"all": summarise(errors), "narrow": summarise(errors, yaw <= NARROW_MAX_ABS_YAW_DEG),
           "back": summarise(errors, yaw > NARROW_MAX_ABS_YAW_DEG)}
    out.update({name: summarise(errors, mask) for name, mask in yaw_band_masks(true_deg).items()})
    if sequences is not None:
        seqs = np.asarray(sequences).astype(str)
        for s in sorted(set(seqs)):
            out[f"seq:{s}"] = summarise(errors, seqs == s)
    return out


def constant_baseline_deg(train_euler_deg: np.ndarray, yaw_step_deg: float = 0.5) -> np.ndarray:
    """(3,) the constant [yaw, pitch, roll] with the least training MAE per angle.

    Pitch and roll: the median. Yaw (wrapped): a search over a ``yaw_step_deg`` grid.
    """
    e = np.asarray(train_euler_deg, np.float64)
    grid = np.arange(-180.0 + yaw_step_deg, 180.0 + 1e-9, yaw_step_deg)
    # Chunked so memory stays bounded for large label sets.
    cost = np.zeros(len(grid))
    for start in range(0, len(e), 20000):
        cost += wrapped_abs_diff_deg(grid[:, None], e[None, start:start + 20000, 0]).sum(1)
    return np.array([grid[np.argmin(cost)], np.median(e[:, 1]), np.median(e[:, 2])])


def constant_predictions(constant_deg: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The baseline as predictions: (n, 3) degrees and (n, 3, 3) rotations."""
    euler = np.repeat(np.asarray(constant_deg, np.float64)[None], n, axis=0)
    R = matrix_from_euler(*np.deg2rad(euler).T)
    return euler, R
