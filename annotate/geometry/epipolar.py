"""Epipolar geometry between the cameras of a rig, in ideal (undistorted) normalised coordinates.

For cameras a and b with ``x_cam = R x_world + t``, the relative pose is
``R_ab = R_b R_a^T``, ``t_ab = t_b - R_ab t_a`` and the essential matrix ``E_ab = [t_ab]x R_ab``:
``x_b^T E_ab x_a = 0`` for homogeneous normalised points ``x = (x, y, 1)`` of one world
point. Pixels are undistorted first (``cameras.undistort_pixels``); distances are turned
into pixels of a distortion-free camera by the focal length, as the triangulation's
RANSAC measures (``triangulation.pixel_scale``).
"""
from __future__ import annotations

import numpy as np

from annotate.geometry.cameras import CameraRig


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) vectors -> (..., 3, 3) cross-product matrices: skew(v) @ w == cross(v, w)."""
    v = np.asarray(v, dtype=np.float64)
    z = np.zeros(v.shape[:-1])
    return np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1),
                     np.stack([v[..., 2], z, -v[..., 0]], -1),
                     np.stack([-v[..., 1], v[..., 0], z], -1)], axis=-2)


def essential_matrices(rig: CameraRig) -> np.ndarray:
    """(C, C, 3, 3) E[a, b] with x_b^T E[a, b] x_a = 0 (zero on the diagonal)."""
    R, t = rig.R_cam_world, rig.t_cam_world
    R_ab = np.einsum("bij,akj->abik", R, R)                        # R_b @ R_a^T
    t_ab = t[None, :, :] - np.einsum("abij,aj->abi", R_ab, t)       # t_b - R_ab t_a
    return skew(t_ab) @ R_ab


def symmetric_epipolar_distance(E: np.ndarray, xa: np.ndarray, xb: np.ndarray, scale_a=1.0,
                                scale_b=1.0) -> np.ndarray:
    """Mean of the two point-to-epipolar-line distances (xb to the line of xa in b, xa to the
    line of xb in a), each times its camera's scale (the focal length gives pixels; 1 keeps
    normalised units).

    E: (..., 3, 3) essential matrices; xa, xb: (..., 2) normalised points in a and b;
    scale_a, scale_b: scalars or arrays; all broadcast together. NaN where a point is NaN.
    """
    ha = np.concatenate([xa, np.ones(xa.shape[:-1] + (1,))], axis=-1)
    hb = np.concatenate([xb, np.ones(xb.shape[:-1] + (1,))], axis=-1)
    line_b = np.einsum("...ij,...j->...i", E, ha)                   # epipolar line of xa in b
    line_a = np.einsum("...ji,...j->...i", E, hb)                   # of xb in a
    algebraic = np.abs(np.sum(hb * line_b, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return 0.5 * (scale_b * algebraic / np.linalg.norm(line_b[..., :2], axis=-1)
                      + scale_a * algebraic / np.linalg.norm(line_a[..., :2], axis=-1))
