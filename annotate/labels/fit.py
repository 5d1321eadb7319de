"""Similarity fit of a head shape to each person's 3D landmarks per frame.

The fit gives ``world_from_head``: ``x_world = scale * R_world_head @ x_head + t_world_head``,
where ``t_world_head`` is the head centre in world cm (the model's origin) and ``scale`` the
person's size relative to the mean head.

With deformation modes (a subject's expression modes, ``annotate.labels.subjects``) the fit
is joint: ``x = scale * R @ (shape + sum_k c_k B_k) + t``. A jaw that opens then moves the
coefficients, not the skull. It alternates a robust similarity fit of the deformed shape
with the coefficients' regularised least squares on the head-frame residual (a Gaussian
prior of each mode's variance, so a weakly observed mode stays near zero).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from annotate.geometry.procrustes import Similarity, robust_umeyama, umeyama
from annotate.head.head_model import HeadModel
from annotate.labels.uncertainty import rotation_sigma_deg

# Landmark subsets (indices into the 70-point Panoptic face layout).
LANDMARK_SETS: dict[str, tuple[int, ...]] = {
    "all": tuple(range(70)),
    # Without the jaw contour 0-16, whose 3D reconstruction is the least stable.
    "inner": tuple(range(17, 70)),
    # WHENet's published recipe: brow ends, eye corners, nose wings, mouth corners,
    # lower-lip centre and chin.
    "whenet14": (17, 21, 22, 26, 36, 39, 42, 45, 31, 35, 48, 54, 57, 8),
    # Points the face's muscles barely move: contour by the ears, nose, eye corners.
    "rigid": (0, 1, 2, 14, 15, 16) + tuple(range(27, 36)) + (36, 39, 42, 45),
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
    deformation_rounds: int = 3
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
    of rigidity r is taken to have 1/r times their noise variance); deformation (M, K) the
    fitted mode coefficients (K = 0 without modes); rotation_sigma_deg (M,) the fit's
    first-order 1-sigma rotation uncertainty (``annotate.labels.uncertainty``).
    """

    R_world_head: np.ndarray
    t_world_head: np.ndarray
    scale: np.ndarray
    rms_cm: np.ndarray
    landmarks_used: np.ndarray
    landmark_weight: np.ndarray
    status: np.ndarray
    landmark_rigidity: np.ndarray | None = None
    deformation: np.ndarray | None = None
    rotation_sigma_deg: np.ndarray | None = None

    @property
    def ok(self) -> np.ndarray:
        return self.status == STATUS_OK

    def take(self, rows) -> "HeadFits":
        """The fits of the given rows (an index array or a slice)."""
        return HeadFits(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[rows]
                           for f in dataclasses.fields(self)})

    @staticmethod
    def concat(parts: "list[HeadFits]") -> "HeadFits":
        """One HeadFits of all rows of ``parts``, in order."""
        names = [f.name for f in dataclasses.fields(HeadFits)]
        return HeadFits(**{n: None if getattr(parts[0], n) is None else np.concatenate([getattr(p, n) for p in parts])
                           for n in names})


def fit_heads(model: HeadModel, landmarks_world: np.ndarray, scores: np.ndarray | None = None,
              config: FitConfig = FitConfig(), shapes_head: np.ndarray | None = None,
              landmark_weights: np.ndarray | None = None, modes: np.ndarray | None = None,
              mode_variance: np.ndarray | None = None, noise_variance: np.ndarray | None = None) -> HeadFits:
    """Fit the model (or per-face shapes, optionally deforming) to M landmark sets.

    landmarks_world: (M, 70, 3) cm, NaN = missing; scores: (M, 70) in [0, 1] or None.
    shapes_head: (M, 70, 3) the head shape to fit for each face (a subject's own shape, see
    ``annotate.labels.subjects``), default the model's mean shape for all.
    landmark_weights: (M, 70) extra prior weights (e.g. rigidity), multiplied with the scores.
    modes: (M, K, 70, 3) deformation modes in the head frame (cm per unit coefficient), with
    mode_variance (M, K) each coefficient's prior variance (0 = unused mode) and
    noise_variance (M,) the landmarks' noise variance per coordinate (cm^2): a joint fit of
    ``config.deformation_rounds`` rounds. The fitted coefficients are ``HeadFits.deformation``.
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
    K = 0 if modes is None else modes.shape[1]
    deform = np.zeros((M, K))
    ridge = _mode_ridge(mode_variance, noise_variance) if K else None
    # Only faces whose subject has modes are refitted; the others keep the rigid fit.
    deforming = np.zeros(M, bool) if not K or not config.deformation_rounds else \
        (np.asarray(mode_variance) > 0).any(axis=1)
    # Faces without modes: a rigid robust fit. Faces with modes: a shorter one (the
    # deformation rounds go on reweighting), then the rounds.
    T = Similarity(np.full((M, 3, 3), np.nan), np.full((M, 3), np.nan), np.full(M, np.nan))
    weight, residual, counted = np.zeros((M, 70)), np.full((M, 70), np.nan), np.zeros((M, 70), bool)
    for rows, iterations in ((~deforming, config.iterations),
                             (deforming, max(WARM_ITERATIONS, config.iterations - WARM_ITERATIONS))):
        if not rows.any():
            continue
        Tr, wr, rr, cr = _similarity(src[rows], X[rows], prior[rows], usable[rows], config, iterations=iterations)
        if rows is deforming:
            for _ in range(config.deformation_rounds):
                deform[rows] = _mode_coefficients(Tr, X[rows], src[rows], wr, modes[rows], ridge[rows])
                shaped = src[rows] + np.einsum("mk,mkli->mli", deform[rows], modes[rows])
                # Warm start: the landmarks the last fit rejected start rejected, so two
                # reweighting iterations a round suffice.
                Tr, wr, rr, cr = _similarity(shaped, X[rows], np.where(wr > 0, prior[rows], 0.0), usable[rows],
                                             config, iterations=WARM_ITERATIONS)
        T.R[rows], T.t[rows], T.scale[rows] = Tr.R, Tr.t, Tr.scale
        weight[rows], residual[rows], counted[rows] = wr, rr, cr
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
    shaped = src + np.einsum("mk,mkli->mli", deform, modes) if K else src
    sigma = rotation_sigma_deg(shaped, T.R, T.scale, weight, rms, rigidity, modes if K else None, ridge)
    return HeadFits(T.R, T.t, T.scale, rms, used.astype(np.int16), weight, status, rigidity, deform, sigma)


WARM_ITERATIONS = 2


def _similarity(src: np.ndarray, X: np.ndarray, prior: np.ndarray, usable: np.ndarray, config: FitConfig,
                iterations: int | None = None):
    """One similarity fit: (transform, final weights, residuals (M, 70), landmarks counted)."""
    if config.robust:
        rf = robust_umeyama(src, X, prior, iterations=config.iterations if iterations is None else iterations,
                            min_inliers=config.min_landmarks)
        return rf.transform, rf.weights, rf.residuals, rf.inliers
    T = umeyama(src, np.where(usable[..., None], X, 0.0), prior)
    return T, prior, np.linalg.norm(T.apply(src) - X, axis=-1), usable


def _mode_ridge(mode_variance: np.ndarray, noise_variance: np.ndarray) -> np.ndarray:
    """(M, K) the coefficients' prior: noise variance / mode variance (huge for unused modes)."""
    var = np.asarray(mode_variance, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, np.asarray(noise_variance, dtype=np.float64)[:, None] / var, 1e12)


def _mode_coefficients(T, X: np.ndarray, shape: np.ndarray, weight: np.ndarray, modes: np.ndarray,
                       ridge: np.ndarray) -> np.ndarray:
    """(M, K) MAP coefficients of the modes explaining the head-frame residual of ``T``.

    Weighted least squares ``(B^T W B + ridge) c = B^T W r`` per face (``_mode_ridge``), with
    W the fit's landmark weights normalised to mean 1 over the used landmarks; modes of
    variance 0 get c = 0.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        local = np.einsum("mji,mnj->mni", T.R, X - T.t[:, None, :]) / T.scale[:, None, None]
        r = np.where(np.isfinite(local), local - shape, 0.0)
        w = np.nan_to_num(weight)
        used = np.maximum((w > 0).sum(-1, keepdims=True), 1)
        w = w * used / np.maximum(w.sum(-1, keepdims=True), 1e-12)
    M, K = modes.shape[:2]
    B = modes.reshape(M, K, -1)                                          # (M, K, 210)
    Bw = B * np.repeat(w, 3, axis=1)[:, None, :]
    A = Bw @ np.swapaxes(B, 1, 2) + ridge[:, :, None] * np.eye(K)
    b = Bw @ r.reshape(M, -1, 1)                                         # (M, K, 1)
    c = np.linalg.solve(A, b)[..., 0]
    return np.where(np.isfinite(c), c, 0.0)
