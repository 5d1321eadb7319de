"""Rotations: the project's one Euler convention, quaternions, the 6D forms, geodesic distance.

Euler convention (docs/conventions.md, as WHENet / 300W-LP / HopeNet)::

    R_cam_head @ diag(1, -1, -1) == Rx(-pitch) @ Ry(yaw) @ Rz(roll)

with right-handed elementary rotations. Frontal face = (0, 0, 0); positive yaw turns the
face toward the image's left; chin up is positive pitch; the subject's left ear down is
positive roll. yaw is in (-pi, pi]; of the two solutions the one with the smaller
``max(|pitch|, |roll|)`` is kept, which for any real head pose (|pitch|, |roll| < 90 deg) is
the one with both below 90 deg.

Yaw is the middle angle, so the decomposition is singular at |yaw| = 90 deg (profile
views): there only ``roll - pitch`` (yaw = +90) or ``roll + pitch`` (yaw = -90) is
determined. ``euler_from_matrix`` computes pitch first and then yaw and roll from the
matrix with pitch removed, so the identity holds to machine precision everywhere; at the
exact singularity pitch is set to 0 and roll carries the in-plane angle. The rotation
matrix (and its quaternion / 6D forms) is always stored beside the angles and is the truth.

All functions take radians and arrays with any leading batch shape ``(...)``.
"""
from __future__ import annotations

import numpy as np

FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def rot_x(angle: np.ndarray) -> np.ndarray:
    """(...,) radians -> (..., 3, 3) right-handed rotation about x."""
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], axis=-1).reshape(a.shape + (3, 3))


def rot_y(angle: np.ndarray) -> np.ndarray:
    """(...,) radians -> (..., 3, 3) right-handed rotation about y."""
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], axis=-1).reshape(a.shape + (3, 3))


def rot_z(angle: np.ndarray) -> np.ndarray:
    """(...,) radians -> (..., 3, 3) right-handed rotation about z."""
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], axis=-1).reshape(a.shape + (3, 3))


def matrix_from_euler(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Euler angles (radians, (...,) each) -> R_cam_head (..., 3, 3)."""
    return rot_x(-np.asarray(pitch)) @ rot_y(yaw) @ rot_z(roll) @ FLIP_YZ


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Wrap to (-pi, pi]."""
    w = np.mod(angle + np.pi, 2.0 * np.pi) - np.pi
    return np.where(w == -np.pi, np.pi, w)


def _solve_given_pitch(M: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Given a = -pitch, solve Ry(yaw) Rz(roll) = Rx(-a) M exactly (well conditioned)."""
    N = np.swapaxes(rot_x(a), -1, -2) @ M
    yaw = np.arctan2(N[..., 0, 2], N[..., 2, 2])
    roll = np.arctan2(N[..., 1, 0], N[..., 1, 1])
    return yaw, roll


def euler_from_matrix(R_cam_head: np.ndarray, singular_eps: float = 1e-12) -> np.ndarray:
    """R_cam_head (..., 3, 3) -> (..., 3) ``[yaw, pitch, roll]`` in radians.

    Returns the solution described in the module docstring; yaw in (-pi, pi].
    """
    M = np.asarray(R_cam_head, dtype=np.float64) @ FLIP_YZ
    # M[1,2] = -sin(a) cos(yaw), M[2,2] = cos(a) cos(yaw), a = -pitch
    s, c = -M[..., 1, 2], M[..., 2, 2]
    singular = np.hypot(s, c) < singular_eps
    a1 = np.where(singular, 0.0, np.arctan2(s, c))
    a2 = _wrap(a1 + np.pi)
    yaw1, roll1 = _solve_given_pitch(M, a1)
    yaw2, roll2 = _solve_given_pitch(M, a2)
    cost1 = np.maximum(np.abs(a1), np.abs(roll1))
    cost2 = np.maximum(np.abs(a2), np.abs(roll2))
    # At the singularity both candidates are equally valid: keep pitch = 0.
    take2 = (cost2 < cost1 - 1e-12) & ~singular
    a = np.where(take2, a2, a1)
    yaw = _wrap(np.where(take2, yaw2, yaw1))
    roll = np.where(take2, roll2, roll1)
    return np.stack([yaw, -a, roll], axis=-1)


def geodesic_distance(R1: np.ndarray, R2: np.ndarray) -> np.ndarray:
    """Angle (radians, (...,)) of ``R1^T R2`` for rotation stacks (..., 3, 3)."""
    d = np.einsum("...ji,...jk->...ik", R1, R2)
    # atan2 of |skew part| and (trace - 1) is accurate near 0 and pi, unlike arccos.
    w = np.stack([d[..., 2, 1] - d[..., 1, 2], d[..., 0, 2] - d[..., 2, 0], d[..., 1, 0] - d[..., 0, 1]], -1)
    sin2 = np.linalg.norm(w, axis=-1)
    cos2 = np.trace(d, axis1=-2, axis2=-1) - 1.0
    return np.arctan2(sin2, cos2)


def quaternion_from_matrix(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) unit quaternion ``[w, x, y, z]`` with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    # Four candidate formulas; use the one with the largest divisor for stability.
    cand = np.stack([
        np.stack([1 + m00 + m11 + m22, R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1),
        np.stack([R[..., 2, 1] - R[..., 1, 2], 1 + m00 - m11 - m22, R[..., 0, 1] + R[..., 1, 0], R[..., 0, 2] + R[..., 2, 0]], -1),
        np.stack([R[..., 0, 2] - R[..., 2, 0], R[..., 0, 1] + R[..., 1, 0], 1 - m00 + m11 - m22, R[..., 1, 2] + R[..., 2, 1]], -1),
        np.stack([R[..., 1, 0] - R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1], 1 - m00 - m11 + m22], -1),
    ], axis=-2)                                                   # (..., 4 candidates, 4)
    diag = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = np.argmax(diag, axis=-1)
    q = np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def matrix_from_quaternion(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternion ``[w, x, y, z]`` (normalised here) -> (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = (q[..., i] for i in range(4))
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1).reshape(q.shape[:-1] + (3, 3))


def sixd_from_matrix(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): the first two columns ``[r00, r10, r20, r01, r11, r21]``.

    The continuous 6D representation of Zhou et al. 2019 of the matrix given. Of
    ``R_cam_head`` this is the ``rot6d`` column; it is not 6DRepNet's target, which is the
    6D form of another matrix (``sixd_6drepnet_from_matrix``).
    """
    R = np.asarray(R, dtype=np.float64)
    return np.concatenate([R[..., :, 0], R[..., :, 1]], axis=-1)


def sixd_6drepnet_from_matrix(R_cam_head: np.ndarray) -> np.ndarray:
    """R_cam_head (..., 3, 3) -> (..., 6): 6DRepNet's training target for the same head.

    6DRepNet builds its target matrix as ``get_R(pitch, yaw, roll) = Rz(roll) Ry(yaw)
    Rx(pitch)`` from 300W-LP-convention angles (this project's), which equals
    ``R_cam_head.T @ diag(1, -1, -1)`` (conjugating ``Rx(-pitch) Ry(yaw) Rz(roll)`` by
    ``diag(1, -1, -1)`` flips the y and z angles, and the transpose reverses the order).
    Its 6D form is the first two columns of that matrix, i.e. the first row of
    ``R_cam_head`` and the negated second row:
    ``[r00, r01, r02, -r10, -r11, -r12]``. Exact for every rotation, whatever the angles.
    """
    R = np.asarray(R_cam_head, dtype=np.float64)
    return np.concatenate([R[..., 0, :], -R[..., 1, :]], axis=-1)


def matrix_from_sixd(six: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two columns."""
    six = np.asarray(six, dtype=np.float64)
    a, b = six[..., :3], six[..., 3:]
    c0 = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b - np.sum(c0 * b, axis=-1, keepdims=True) * c0
    c1 = b / np.linalg.norm(b, axis=-1, keepdims=True)
    c2 = np.cross(c0, c1)
    return np.stack([c0, c1, c2], axis=-1)


def matrix_from_rotvec(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle (radians) -> (..., 3, 3), Rodrigues."""
    v = np.asarray(rotvec, dtype=np.float64)
    theta = np.linalg.norm(v, axis=-1)
    half = 0.5 * theta
    # sin(theta/2)/theta -> 1/2 as theta -> 0
    scale = np.where(theta > 1e-12, np.sin(half) / np.where(theta > 1e-12, theta, 1.0), 0.5)
    q = np.concatenate([np.cos(half)[..., None], v * scale[..., None]], axis=-1)
    return matrix_from_quaternion(q)


def rotvec_from_matrix(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) axis-angle (radians), angle in [0, pi]."""
    q = quaternion_from_matrix(R)
    s = np.linalg.norm(q[..., 1:], axis=-1)
    angle = 2.0 * np.arctan2(s, q[..., 0])
    scale = np.where(s > 1e-12, angle / np.where(s > 1e-12, s, 1.0), 2.0)
    return q[..., 1:] * scale[..., None]


def is_rotation(R: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """(..., 3, 3) -> (...,) bool: orthonormal with determinant +1."""
    R = np.asarray(R, dtype=np.float64)
    err = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-1, -2))
    return (err < tol) & (np.abs(np.linalg.det(R) - 1.0) < tol)
