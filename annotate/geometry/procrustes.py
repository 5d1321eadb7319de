"""Similarity Procrustes (Umeyama), its robust variant, and generalised Procrustes analysis.

All fits are batched over any leading shape ``(...)`` and solve

    target ~= scale * R @ source + t        (least squares, optionally weighted)

with a reflection guard (det R = +1 always). Pure numpy, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Similarity:
    """A batch of similarity transforms ``x -> scale * R @ x + t``.

    R: (..., 3, 3); t: (..., 3); scale: (...,).
    """

    R: np.ndarray
    t: np.ndarray
    scale: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """points (..., N, 3) -> (..., N, 3)."""
        rotated = np.matmul(points, np.swapaxes(self.R, -1, -2))
        return self.scale[..., None, None] * rotated + self.t[..., None, :]


@dataclass(frozen=True)
class RobustFit:
    """Result of ``robust_umeyama``.

    transform: the final Similarity. weights: (..., N) final robust weights in [0, 1]
    (0 = rejected landmark). inliers: (..., N) bool, residual below the cut-off.
    rms_cm: (...,) RMS residual over inliers. sigma_cm: (...,) robust per-axis noise scale.
    valid: (...,) bool, False where fewer than ``min_inliers`` landmarks survived.
    """

    transform: Similarity
    weights: np.ndarray
    inliers: np.ndarray
    residuals: np.ndarray
    rms_cm: np.ndarray
    sigma_cm: np.ndarray
    valid: np.ndarray


def umeyama(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None,
            with_scale: bool = True) -> Similarity:
    """Weighted least-squares similarity from ``source`` to ``target``.

    source, target: (..., N, 3); weights: (..., N) non-negative or None (uniform).
    Degenerate inputs (all weights zero) give NaN transforms; callers check with
    ``np.isfinite``.
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape[-1] != 3 or dst.shape != np.broadcast_shapes(src.shape, dst.shape):
        raise ValueError(f"umeyama: source {src.shape} and target {dst.shape} must be (..., N, 3) alike")
    w = np.ones(dst.shape[:-1]) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), dst.shape[:-1])
    wsum = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        wn = w / wsum[..., None]                                              # (..., N)
        mu_src = np.matmul(wn[..., None, :], src)[..., 0, :]                   # (..., 3)
        mu_dst = np.matmul(wn[..., None, :], dst)[..., 0, :]
        # Uncentred moments (fewer full-size temporaries than centring first):
        # cov = sum w y x^T - mu_y mu_x^T,  var = sum w |x|^2 - |mu_x|^2
        cov = np.matmul(np.swapaxes(dst * wn[..., None], -1, -2), src) - mu_dst[..., :, None] * mu_src[..., None, :]
        var_src = np.matmul(wn[..., None, :], src * src)[..., 0, :].sum(-1) - (mu_src * mu_src).sum(-1)
    bad = ~np.isfinite(cov).all(axis=(-1, -2))
    cov = np.where(bad[..., None, None], np.eye(3), cov)
    U, S, Vt = np.linalg.svd(cov)
    # Reflection guard: flip the weakest axis when the best orthogonal fit is a reflection.
    d = np.sign(np.linalg.det(U) * np.linalg.det(Vt))
    d = np.where(d == 0, 1.0, d)
    D = np.ones(S.shape)
    D[..., 2] = d
    R = (U * D[..., None, :]) @ Vt                                          # U diag(D) Vt
    if with_scale:
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = (S * D).sum(axis=-1) / var_src
    else:
        scale = np.ones(S.shape[:-1])
    t = mu_dst - scale[..., None] * (R @ mu_src[..., None])[..., 0]
    nan = np.where(bad, np.nan, 1.0)
    return Similarity(R * nan[..., None, None], t * nan[..., None], scale * nan)


def _masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median over the last axis of the entries where ``mask`` (lower median; NaN if none).

    Sorting 70 values per row is ~6x faster than ``np.nanmedian`` on (B, 70).
    """
    n = mask.sum(axis=-1)
    ordered = np.sort(np.where(mask, values, np.inf), axis=-1)
    k = np.maximum((n - 1) // 2, 0)
    med = np.take_along_axis(ordered, k[..., None], axis=-1)[..., 0]
    return np.where(n > 0, med, np.nan)


def robust_umeyama(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None,
                   with_scale: bool = True, iterations: int = 8, cutoff_sigmas: float = 4.0,
                   min_sigma_cm: float = 0.05, min_inliers: int = 6) -> RobustFit:
    """Similarity fit that survives gross outlier landmarks (iteratively reweighted).

    Tukey's biweight on the 3D residual norm, with the noise scale re-estimated each
    iteration from the median residual (for isotropic Gaussian noise of per-axis sigma,
    the median 3D residual norm is 1.538 sigma). Landmarks beyond ``cutoff_sigmas`` sigma get
    weight 0. Prior ``weights`` (e.g. detection scores) multiply the robust weights; a
    landmark with a NaN coordinate gets weight 0. Shapes as in ``umeyama``.
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    finite = np.isfinite(dst).all(axis=-1) & np.isfinite(src).all(axis=-1)
    prior = np.ones(finite.shape) if weights is None else np.asarray(weights, dtype=np.float64) * np.ones(finite.shape)
    prior = np.where(finite & (prior > 0), prior, 0.0)
    dst = np.where(finite[..., None], dst, 0.0)
    src = np.where(finite[..., None], src, 0.0)

    robust = np.ones(prior.shape)
    fit = umeyama(src, dst, prior, with_scale)
    for _ in range(iterations):
        residual = np.linalg.norm(fit.apply(src) - dst, axis=-1)               # (..., N)
        sigma = np.maximum(_masked_median(residual, prior > 0) / 1.538, min_sigma_cm)
        c = cutoff_sigmas * sigma[..., None]
        u = np.clip(residual / c, 0.0, 1.0)
        robust = (1.0 - u * u) ** 2
        fit = umeyama(src, dst, prior * robust, with_scale)
    residual = np.linalg.norm(fit.apply(src) - dst, axis=-1)
    inliers = (prior > 0) & (robust > 0) & (residual < cutoff_sigmas * sigma[..., None])
    n_in = inliers.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.where(inliers, residual ** 2, 0.0).sum(axis=-1) / n_in)
    valid = (n_in >= min_inliers) & np.isfinite(fit.R).all(axis=(-1, -2))
    return RobustFit(fit, prior * robust, inliers, residual, rms, sigma, valid)


def generalized_procrustes(shapes: np.ndarray, weights: np.ndarray | None = None,
                           iterations: int = 20, tol_cm: float = 1e-4,
                           robust: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean shape of many landmark sets, each aligned by a similarity to the mean.

    shapes: (M, N, 3) landmark sets (NaN = missing landmark); weights: (M, N) or None.
    Returns ``(mean (N, 3), inlier_weights (M, N))``; a landmark never observed in any set is
    NaN in the mean. The mean is centred at its
    centroid, in the input units and at the inputs' median size (median fitted scale 1), in the
    orientation of the first complete set; the caller fixes the canonical frame. With
    ``robust``, each alignment is ``robust_umeyama`` and the mean is a weighted mean with
    the robust weights, so gross outlier landmarks do not pull the model.
    """
    X = np.asarray(shapes, dtype=np.float64)
    if X.ndim != 3 or X.shape[-1] != 3 or len(X) == 0:
        raise ValueError(f"generalized_procrustes: shapes must be (M, N, 3) with M > 0, got {X.shape}")
    finite = np.isfinite(X).all(axis=-1)
    w0 = finite.astype(np.float64) if weights is None else np.where(finite, np.asarray(weights, dtype=np.float64), 0.0)
    observed = w0.sum(axis=0) > 0
    if observed.sum() < 3:
        raise ValueError(f"generalized_procrustes: only {int(observed.sum())} landmarks were ever observed")
    if not observed.all():
        # Landmarks never observed get NaN in the mean; the rest is solved without them.
        sub_mean, sub_w = generalized_procrustes(X[:, observed], w0[:, observed], iterations, tol_cm, robust)
        mean = np.full((X.shape[1], 3), np.nan)
        mean[observed] = sub_mean
        w_fit = np.zeros(w0.shape)
        w_fit[:, observed] = sub_w
        return mean, w_fit
    complete = finite.all(axis=-1)
    ref = int(np.argmax(complete)) if complete.any() else int(np.argmax(finite.sum(axis=-1)))
    X0 = np.where(finite[..., None], X, 0.0)

    def centre_and_size(points, w):
        c = (w[..., None] * points).sum(-2) / w.sum(-1)[..., None]
        pc = points - c[..., None, :]
        size = np.sqrt((w * (pc ** 2).sum(-1)).sum(-1) / w.sum(-1))
        return pc, size

    _, sizes = centre_and_size(X0, w0)
    target_size = float(np.median(sizes[np.isfinite(sizes)]))
    mean, _ = centre_and_size(X0[ref], w0[ref])
    mean = mean * (target_size / np.sqrt((mean ** 2).sum(-1).mean()))
    # Start from per-landmark medians of plain alignments: a gross outlier in the reference
    # set must not become a landmark the robust iterations then reject in every other set.
    for _ in range(2):
        aligned = umeyama(X0, np.broadcast_to(mean, X0.shape), w0).apply(X0)
        med = np.nanmedian(np.where(w0[..., None] > 0, aligned, np.nan), axis=0)
        med = med - med.mean(0)
        mean = med * (target_size / np.sqrt((med ** 2).sum(-1).mean()))
    w_fit = w0
    for _ in range(iterations):
        # Similarity taking each shape onto the current mean.
        if robust:
            fit = robust_umeyama(X0, np.broadcast_to(mean, X0.shape), w0)
            T, w_fit = fit.transform, np.where(fit.valid[:, None], fit.weights, 0.0)
        else:
            T, w_fit = umeyama(X0, np.broadcast_to(mean, X0.shape), w0), w0
        aligned = T.apply(X0)
        aligned = np.where(np.isfinite(aligned), aligned, 0.0)
        # A landmark every fit rejected keeps its previous position.
        wsum = w_fit.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            new = np.where((wsum > 0)[:, None], (w_fit[..., None] * aligned).sum(0) / wsum[:, None], mean)
        new = new - new.mean(0)
        new = new * (target_size / np.sqrt((new ** 2).sum(-1).mean()))
        # Keep the orientation fixed (align the new mean to the old) so iterations converge.
        keep = umeyama(new, mean, with_scale=False)
        new = keep.apply(new)
        change = np.abs(new - mean).max()
        mean = new
        if change < tol_cm:
            break
    # Size: the centroid radii above are inflated by noise and outliers; rescale so that the
    # median fitted scale of the inputs relative to the mean is exactly 1.
    fit = robust_umeyama(np.broadcast_to(mean, X0.shape), X0, w0) if robust else None
    scales = fit.transform.scale[fit.valid] if robust else umeyama(np.broadcast_to(mean, X0.shape), X0, w0).scale
    scales = scales[np.isfinite(scales)]
    if len(scales):
        mean = mean * float(np.median(scales))
    return mean, w_fit
