"""Rigid (similarity) fit of the mean head model to each person's 3D landmarks per frame.

The fit gives ``world_from_head``: ``x_world = scale * R_world_head @ x_head + t_world_head``,
where ``t_world_head`` is the head centre in world cm (the model's origin) and ``scale`` the
person's size relative to the mean head.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotate.geometry.procrustes import robust_umeyama, umeyama
from annotate.labels.head_model import HeadModel

# Landmark subsets (indices into the 70-point Panoptic face layout).
LANDMARK_SETS: dict[str, tuple[int, ...]] = {
    "all": tuple(range(70)),
    # Without the jaw contour 0-16, whose 3D reconstruction is the least stable.
    "inner": tuple(range(17, 70)),
    # WHENet's published recipe: brow ends, eye corners, nose wings, mouth corners,
    # lower-lip centre and chin.
    "whenet14": (17, 21, 22, 26, 36, 39, 42, 45, 31, 35, 48, 54, 57, 8),
}

STATUS_OK = "ok"
STATUS_TOO_FEW = "too_few_landmarks"
STATUS_FAILED = "fit_failed"
STATUS_SCALE = "scale_out_of_range"
STATUS_RESIDUAL = "residual_too_high"


@dataclass(frozen=True)
class FitConfig:
    """How faces are fitted.

    landmarks: a key of LANDMARK_SETS. robust: iteratively reweighted fit (else plain
    least squares). use_scores: weight landmarks by their published scores.
    min_landmarks: fewer usable landmarks -> ``too_few_landmarks``.
    scale_range: allowed head scale relative to the mean head.
    max_rms_cm: RMS inlier residual above it -> ``residual_too_high``.
    """

    landmarks: str = "all"
    robust: bool = True
    use_scores: bool = True
    iterations: int = 6
    min_landmarks: int = 8
    scale_range: tuple[float, float] = (0.75, 1.33)
    max_rms_cm: float = 1.5

    def __post_init__(self) -> None:
        if self.landmarks not in LANDMARK_SETS:
            raise ValueError(f"fit.landmarks must be one of {sorted(LANDMARK_SETS)}, got {self.landmarks!r}")


@dataclass(frozen=True)
class HeadFits:
    """Per-face fits for M faces.

    R_world_head (M,3,3); t_world_head (M,3) head centre, world cm; scale (M,);
    rms_cm (M,) inlier RMS residual, each landmark's squared residual scaled by its rigidity
    (so it measures the noise of the most rigid landmarks: equal to the plain RMS without
    rigidity weights); landmarks_used (M,) int; landmark_weight (M,70) final weight of each
    landmark (0 = unused/rejected); status (M,) str; landmark_rigidity (M,70) the rigidity
    weights the fit was given (1 = as rigid as the subject's most rigid landmarks; a landmark
    of rigidity r is taken to have 1/r times their noise variance).
    """

    R_world_head: np.ndarray
    t_world_head: np.ndarray
    scale: np.ndarray
    rms_cm: np.ndarray
    landmarks_used: np.ndarray
    landmark_weight: np.ndarray
    status: np.ndarray
    landmark_rigidity: np.ndarray | None = None

    @property
    def ok(self) -> np.ndarray:
        return self.status == STATUS_OK


def fit_heads(model: HeadModel, landmarks_world: np.ndarray, scores: np.ndarray | None = None,
              config: FitConfig = FitConfig(), shapes_head: np.ndarray | None = None,
              landmark_weights: np.ndarray | None = None) -> HeadFits:
    """Fit the model to M landmark sets.

    landmarks_world: (M, 70, 3) cm, NaN = missing; scores: (M, 70) in [0, 1] or None.
    shapes_head: (M, 70, 3) the head shape to fit for each face (a subject's own shape, see
    ``annotate.labels.subjects``), default the model's mean shape for all.
    landmark_weights: (M, 70) extra prior weights (e.g. rigidity), multiplied with the scores.
    """
    X = np.asarray(landmarks_world, dtype=np.float64)
    M = len(X)
    subset = np.asarray(LANDMARK_SETS[config.landmarks])
    prior = np.ones((M, 70)) if scores is None or not config.use_scores else np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    rigidity = np.ones((M, 70)) if landmark_weights is None else np.asarray(landmark_weights, dtype=np.float64)
    prior = prior * rigidity
    usable = np.zeros((M, 70), bool)
    usable[:, subset] = True
    usable &= np.isfinite(X).all(axis=-1) & (prior > 0)
    prior = np.where(usable, prior, 0.0)
    src = np.broadcast_to(model.landmarks_head if shapes_head is None else shapes_head, X.shape)
    if config.robust:
        rf = robust_umeyama(src, X, prior, iterations=config.iterations, min_inliers=config.min_landmarks)
        T, weight, residual, counted = rf.transform, rf.weights, rf.residuals, rf.inliers
    else:
        T = umeyama(src, np.where(usable[..., None], X, 0.0), prior)
        residual = np.linalg.norm(T.apply(src) - X, axis=-1)
        weight, counted = prior, usable
    used = counted.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.where(counted, rigidity * residual ** 2, 0.0).sum(-1) / used)
    status = np.full(M, STATUS_OK, dtype=object)
    finite = np.isfinite(T.R).all(axis=(-1, -2)) & np.isfinite(T.t).all(-1) & np.isfinite(T.scale)
    status[rms > config.max_rms_cm] = STATUS_RESIDUAL
    status[(T.scale < config.scale_range[0]) | (T.scale > config.scale_range[1])] = STATUS_SCALE
    status[~finite] = STATUS_FAILED
    status[used < config.min_landmarks] = STATUS_TOO_FEW
    status[usable.sum(-1) < config.min_landmarks] = STATUS_TOO_FEW
    return HeadFits(T.R, T.t, T.scale, rms, used.astype(np.int16), weight, status, rigidity)
