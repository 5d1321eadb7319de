"""Temporal smoothing of head rotations along each person's track, on SO(3).

Landmark noise is independent from frame to frame while a head turns smoothly, so a local
polynomial fit of the rotation over a short time window removes noise without lagging the
motion: for each face, the rotations of its track's neighbours within ``half_window_s`` are
mapped into the tangent space at the face's own rotation (``log(R_m^T R_j)``), a weighted
polynomial in time (tricube weights) is fitted there, and its value at the face's own time
is mapped back. A quadratic follows constant angular acceleration exactly, so a turning
head keeps its angles. Where the polynomial does not describe the window (its weighted RMS
residual exceeds ``max_residual_deg``: motion too fast or too irregular for the window, or
a bad fit inside it), and where a face has too few neighbours in the window (a track's ends
and gaps, or frames kept far apart by ``frame_step``), the face keeps its raw rotation.
Pure numpy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotate.geometry.rotations import matrix_from_rotvec, rotvec_from_matrix


@dataclass(frozen=True)
class SmoothingConfig:
    """enabled: smooth (else the raw fit is the label). half_window_s: neighbours within this
    time either side count. degree: of the local polynomial (2: constant acceleration).
    fps: frames per second of the frame numbers (Panoptic HD: 29.97). max_residual_deg:
    windows whose weighted RMS residual about the polynomial exceeds this keep the raw fit."""

    enabled: bool = True
    half_window_s: float = 0.15
    degree: int = 2
    fps: float = 29.97
    max_residual_deg: float = 1.5


def smooth_rotations(track: np.ndarray, frame: np.ndarray, R: np.ndarray, ok: np.ndarray,
                     config: SmoothingConfig = SmoothingConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed rotations of N faces.

    track: (N,) int id of each face's track (e.g. one per sequence and person); frame: (N,)
    frame numbers; R: (N, 3, 3) raw rotations; ok: (N,) bool, usable raw fits (others are
    neither smoothed nor used as neighbours). Returns ``(R_smooth (N, 3, 3), smoothed (N,)
    bool, variance_ratio (N,))``; rows not smoothed keep their raw rotation. variance_ratio:
    the smoothed rotation's error variance relative to one raw fit's, for independent
    per-frame errors of equal variance (the local polynomial's intercept variance,
    ``e0^T (A^T W A)^-1 A^T W^2 A (A^T W A)^-1 e0``); 1 where not smoothed.
    """
    track, frame = np.asarray(track), np.asarray(frame, dtype=np.int64)
    R = np.asarray(R, dtype=np.float64)
    out, smoothed, ratio = R.copy(), np.zeros(len(R), bool), np.ones(len(R))
    if not config.enabled or len(R) == 0:
        return out, smoothed, ratio
    h_frames = config.half_window_s * config.fps
    reach = int(np.floor(h_frames))
    if reach < 1:
        return out, smoothed, ratio
    usable = np.flatnonzero(np.asarray(ok, bool) & np.isfinite(R).all(axis=(1, 2)))
    order = usable[np.lexsort((frame[usable], track[usable]))]              # by track, then frame
    n = len(order)
    pos = np.arange(n)
    offsets = np.arange(-reach, reach + 1)
    nb = np.clip(pos[:, None] + offsets, 0, n - 1)                           # (n, W) candidates
    same = (track[order][nb] == track[order][:, None]) & (nb == pos[:, None] + offsets)
    dt = (frame[order][nb] - frame[order][:, None]).astype(np.float64)        # frames
    within = same & (np.abs(dt) <= h_frames)
    w = np.where(within, (1.0 - (np.abs(dt) / (h_frames + 1.0)) ** 3) ** 3, 0.0)
    enough = within.sum(1) >= config.degree + 2
    Rc = R[order]
    delta = rotvec_from_matrix(np.einsum("nji,nwjk->nwik", Rc, Rc[nb]))      # (n, W, 3)
    A = np.stack([(dt / max(h_frames, 1.0)) ** k for k in range(config.degree + 1)], axis=-1)  # (n, W, d+1)
    AtW = np.swapaxes(A * w[..., None], 1, 2)                                 # (n, d+1, W)
    normal = AtW @ A + 1e-9 * np.eye(config.degree + 1)
    coef = np.linalg.solve(normal[enough], (AtW @ delta)[enough])            # (n', d+1, 3)
    # The intercept is a linear combination g^T delta of the window: g = W A (A^T W A)^-1 e0.
    gain = (np.linalg.solve(normal[enough], AtW[enough]))[:, 0, :]           # (n', W)
    misfit = delta[enough] - A[enough] @ coef                               # (n', W, 3)
    wk = w[enough]
    rms = np.sqrt((wk * (misfit ** 2).sum(-1)).sum(1) / np.maximum(wk.sum(1), 1e-12))
    good = np.degrees(rms) <= config.max_residual_deg
    rows = order[enough][good]
    out[rows] = Rc[enough][good] @ matrix_from_rotvec(coef[good, 0])
    smoothed[rows] = True
    ratio[rows] = (gain[good] ** 2).sum(1)
    return out, smoothed, ratio
