"""First-order rotation uncertainty of a head fit, expression modes included.

For M fits, with the fitted shape's points centred on their weighted centroid and turned into
world axes, ``q_i = s R (m_i - m_w)``, a small rotation theta moves point i by
``J_theta,i theta = -[q_i]x theta`` and a mode coefficient c_k by ``J_c,ik = s R B_k,i``. The
weighted least-squares normal matrix of the parameters p = (theta, c) is
``H = sum_i w_i J_i^T J_i`` (plus the fit's prior on c), and for independent isotropic noise
of variance sigma_i^2 per coordinate the covariance is the sandwich
``H^-1 (sum_i w_i^2 sigma_i^2 J_i^T J_i) H^-1``. The rotation block, marginalised over the
mode coefficients (a mode that looks partly like a rotation costs rotation precision), gives
``sqrt(trace Cov_theta)``: the expected size of the rotation error, in degrees.

sigma_i^2 = sigma^2 / r_i for a landmark of rigidity r_i, with sigma^2 from the fit's
rigidity-scaled RMS residual and the fit's degrees of freedom (7 + modes) removed. The
residual also holds whatever the shape does not explain, so the estimate is conservative
there; systematic errors (a subject's rest face, correlated expression errors) are not in it.
"""
from __future__ import annotations

import numpy as np

SIMILARITY_PARAMETERS = 7


def rotation_sigma_deg(shapes_head: np.ndarray, R_world_head: np.ndarray, scale: np.ndarray,
                       weights: np.ndarray, rms_cm: np.ndarray, rigidity: np.ndarray | None = None,
                       modes: np.ndarray | None = None, mode_prior: np.ndarray | None = None) -> np.ndarray:
    """(M,) deg: 1-sigma rotation uncertainty of M fits.

    shapes_head: (70, 3) or (M, 70, 3) the fitted shapes (head frame, cm); R_world_head
    (M, 3, 3); scale (M,); weights (M, 70) final fit weights (0 = unused); rms_cm (M,);
    rigidity (M, 70) or None (all 1); modes (M, K, 70, 3) or None; mode_prior (M, K) the
    fit's ridge on each coefficient (in the units of weights normalised to mean 1), or None.
    NaN where fewer than 4 landmarks are used.
    """
    w = np.nan_to_num(np.asarray(weights, np.float64))
    M = len(w)
    m = np.broadcast_to(np.asarray(shapes_head, np.float64), (M, 70, 3))
    R = np.asarray(R_world_head, np.float64)
    s = np.asarray(scale, np.float64)
    used = (w > 0).sum(axis=1)
    wsum = np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    centroid = (w[..., None] * m).sum(axis=1) / wsum
    q = s[:, None, None] * np.einsum("mij,mlj->mli", R, m - centroid[:, None])      # (M, 70, 3)
    zero = np.zeros(q.shape[:2])
    # -[q]x as (M, 70, 3, 3)
    J_theta = -np.stack([np.stack([zero, -q[..., 2], q[..., 1]], -1),
                         np.stack([q[..., 2], zero, -q[..., 0]], -1),
                         np.stack([-q[..., 1], q[..., 0], zero], -1)], -2)
    K = 0 if modes is None else modes.shape[1]
    if K:
        J_c = s[:, None, None, None] * np.einsum("mij,mklj->mlik", R, modes)           # (M, 70, 3, K)
        J = np.concatenate([J_theta, J_c], axis=-1)
    else:
        J = J_theta
    # Per-face normal matrices as batched products over the 210 coordinates (fast):
    # H = J^T diag(w) J (plus the prior), meat = J^T diag(w^2 / r) J.
    Jf = J.reshape(M, 70 * 3, -1)                                                    # (M, 210, P)
    w3 = np.repeat(w, 3, axis=1)[:, :, None]
    H = np.swapaxes(Jf * w3, 1, 2) @ Jf
    if K and mode_prior is not None:
        mean_w = w.sum(1) / np.maximum(used, 1)
        H[:, 3:, 3:] += (np.asarray(mode_prior, np.float64) * mean_w[:, None])[:, :, None] * np.eye(K)
    r = np.ones(w.shape) if rigidity is None else np.asarray(rigidity, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = np.where(w > 0, w ** 2 / r, 0.0)
    meat = np.swapaxes(Jf * np.repeat(noise, 3, axis=1)[:, :, None], 1, 2) @ Jf
    n_obs = 3 * used
    dof = SIMILARITY_PARAMETERS + K
    sigma2 = np.asarray(rms_cm, np.float64) ** 2 / 3.0 * n_obs / np.maximum(n_obs - dof, 1)
    out = np.full(M, np.nan)
    ok = (used >= 4) & np.isfinite(sigma2) & np.isfinite(H).all(axis=(1, 2))
    if ok.any():
        Hinv = np.linalg.pinv(H[ok])
        cov = sigma2[ok, None, None] * Hinv @ meat[ok] @ Hinv
        out[ok] = np.degrees(np.sqrt(np.clip(np.trace(cov[:, :3, :3], axis1=1, axis2=2), 0.0, None)))
    return out
