"""WHENet's own labelling maths, as a reference for tests and benchmarks.

A re-implementation from the facts of WHENet's published preparation code (its numbers and
steps, in this project's own code), used to check that our labels share WHENet's zero pose
and to time our stage against WHENet's per-sample loop. Not used by the pipeline.

Per face (landmarks in world cm, face70 layout, ``averageScore`` per landmark):

1. The 14 correspondences of ``whenet_reference`` whose score exceeds 0.1 take part; with
   fewer than 7 the face is skipped.
2. Horn's closed-form similarity (unweighted, reflection guarded) maps the reference head
   onto those landmarks: ``x_world = s R_world_ref x_ref + t``.
3. Per camera, WHENet forms ``E_real @ [R t] @ inv(E_ref)`` with ``E_ref``'s rotation
   ``diag(1, -1, -1)`` (its translation does not reach the rotation), decomposes the
   rotation part ``M`` as ``M = (Rz(z) Ry(y) Rx(x))^T`` (its ``inverse_rotate_zyx``: two
   solutions), keeps with ``select_euler`` the first solution whose pitch ``x`` and roll
   ``z`` are both within +-90 deg (yaw wrapped to (-180, 180]), none if neither is, and
   reports ``pitch = x``, ``yaw = -y``, ``roll = -z``.

With ``M = R_cam_ref diag(1, -1, -1)`` this is the same convention as
``annotate.geometry.rotations`` applied to ``R_cam_ref``: WHENet's zero pose is the frame
of its reference head.
"""
from __future__ import annotations

import numpy as np

from annotate.geometry.procrustes import umeyama
from annotate.geometry.rotations import FLIP_YZ
from annotate.head.whenet_reference import (WHENET_FACE70, WHENET_MIN_POINTS, WHENET_SCORE_GATE,
                                                reference_points_cm)

_FACE70 = np.asarray(WHENET_FACE70)
_GIMBAL = 0.9999999


def whenet_fit(landmarks_world: np.ndarray, scores: np.ndarray | None = None):
    """WHENet's reference-head fit of M faces.

    landmarks_world: (M, 70, 3) cm, NaN = missing; scores: (M, 70) averageScore or None
    (all pass). Returns ``(ok (M,) bool, R_world_ref (M, 3, 3), t (M, 3) cm, scale (M,))``;
    rows with ``ok`` False have NaN transforms.
    """
    X = np.asarray(landmarks_world, dtype=np.float64)[:, _FACE70]            # (M, 14, 3)
    passed = np.isfinite(X).all(-1)
    if scores is not None:
        passed &= np.asarray(scores, dtype=np.float64)[:, _FACE70] > WHENET_SCORE_GATE
    ok = passed.sum(-1) >= WHENET_MIN_POINTS
    T = umeyama(np.broadcast_to(reference_points_cm(), X.shape), np.where(passed[..., None], X, 0.0),
                passed.astype(np.float64))
    nan = np.where(ok, 1.0, np.nan)
    return ok, T.R * nan[:, None, None], T.t * nan[:, None], T.scale * nan


def inverse_rotate_zyx(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both ``(x, y, z)`` radian solutions (..., 3) of ``M = (Rz(z) Ry(y) Rx(x))^T``.

    M: (..., 3, 3). At gimbal lock (|M[0, 2]| > 0.9999999) both solutions are the one with
    z = 0, as in WHENet's code.
    """
    M = np.asarray(M, dtype=np.float64)
    m02 = np.clip(M[..., 0, 2], -1.0, 1.0)
    y0 = np.arcsin(-m02)
    y1 = np.pi - y0
    with np.errstate(invalid="ignore", divide="ignore"):
        sols = []
        for y in (y0, y1):
            cy = np.cos(y)
            x = np.arctan2(M[..., 1, 2] / cy, M[..., 2, 2] / cy)
            z = np.arctan2(M[..., 0, 1] / cy, M[..., 0, 0] / cy)
            sols.append([x, y, z])
    lock = np.abs(M[..., 0, 2]) > _GIMBAL
    pos = M[..., 0, 2] > 0
    x_lock = np.where(pos, np.arctan2(-M[..., 1, 0], -M[..., 2, 0]), np.arctan2(M[..., 1, 0], M[..., 2, 0]))
    y_lock = np.where(pos, -np.pi / 2, np.pi / 2)
    out = []
    for x, y, z in sols:
        out.append(np.stack([np.where(lock, x_lock, x), np.where(lock, y_lock, y),
                             np.where(lock, 0.0, z)], axis=-1))
    return out[0], out[1]


def select_euler(first_deg: np.ndarray, second_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WHENet's choice between two ``(pitch, yaw, roll)`` degree solutions (..., 3).

    Yaw above 180 is wrapped by -360; the first solution with |pitch| < 90 and |roll| < 90
    wins. Returns ``(status (...,) bool, (pitch, yaw, roll) (..., 3))``, NaN where neither.
    """
    sets = []
    for s in (first_deg, second_deg):
        s = np.array(s, dtype=np.float64)
        s[..., 1] = np.where(s[..., 1] > 180.0, s[..., 1] - 360.0, s[..., 1])
        sets.append(s)
    good = [(np.abs(s[..., 0]) < 90.0) & (np.abs(s[..., 2]) < 90.0) for s in sets]
    chosen = np.where(good[0][..., None], sets[0], sets[1])
    status = good[0] | good[1]
    return status, np.where(status[..., None], chosen, np.nan)


def whenet_euler(R_cam_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WHENet's angles of reference-head rotations in cameras.

    R_cam_ref: (..., 3, 3). Returns ``(status (...,) bool, yaw_pitch_roll_deg (..., 3))``
    in this project's column order (yaw, pitch, roll), NaN where ``select_euler`` fails.
    """
    first, second = inverse_rotate_zyx(np.asarray(R_cam_ref) @ FLIP_YZ)
    status, pyr = select_euler(np.degrees(first), np.degrees(second))
    return status, np.stack([-pyr[..., 1], pyr[..., 0], -pyr[..., 2]], axis=-1)


def whenet_labels(landmarks_world: np.ndarray, scores: np.ndarray | None,
                  R_cam_world: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WHENet's labels of M faces in C cameras.

    landmarks_world (M, 70, 3) cm; scores (M, 70) or None; R_cam_world (C, 3, 3).
    Returns ``(fitted (M,) bool, status (M, C) bool, yaw_pitch_roll_deg (M, C, 3))``.
    """
    ok, R_world_ref, _, _ = whenet_fit(landmarks_world, scores)
    R_cam_ref = np.einsum("cij,mjk->mcik", np.asarray(R_cam_world, dtype=np.float64), R_world_ref)
    status, angles = whenet_euler(R_cam_ref)
    return ok, status & ok[:, None], angles


def whenet_label_one(face70_cm: np.ndarray, scores: np.ndarray, R_cam_world: np.ndarray):
    """One face in one camera, step by step as WHENet's per-sample loop does it.

    face70_cm (70, 3); scores (70,); R_cam_world (3, 3). Returns ``(yaw, pitch, roll)``
    degrees, or None where the face is skipped or ``select_euler`` fails. The benchmark's
    per-sample baseline; ``whenet_labels`` is the batched equivalent (tests compare them).
    """
    keep = [i for i, k in enumerate(WHENET_FACE70) if scores[k] > WHENET_SCORE_GATE]
    if len(keep) < WHENET_MIN_POINTS:
        return None
    model = reference_points_cm()[keep].T                                   # (3, n)
    data = np.asarray(face70_cm, dtype=np.float64)[[WHENET_FACE70[i] for i in keep]].T
    model_c = model - model.mean(1, keepdims=True)
    data_c = data - data.mean(1, keepdims=True)
    U, _, Vh = np.linalg.svd(data_c @ model_c.T)                             # Horn: W^T
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vh) < 0:
        S[2, 2] = -1.0
    R_world_ref = U @ S @ Vh
    compound = np.asarray(R_cam_world) @ R_world_ref @ FLIP_YZ
    first, second = inverse_rotate_zyx(compound)
    status, pyr = select_euler(np.degrees(first), np.degrees(second))
    if not status:
        return None
    return float(-pyr[1]), float(pyr[0]), float(-pyr[2])
