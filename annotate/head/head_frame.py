"""The canonical head frame of a 70-landmark face: what "zero pose" means.

Definition (fixed; tests lock it in). For a landmark set in any frame:

- Axes: x toward the subject's left ear, y up, z out of the face (forward).
- Orientation ``"whenet"`` (the default): the axes are those of WHENet's published reference
  head (``annotate.head.whenet_reference``) after its similarity fit (Horn/Umeyama,
  unweighted) onto the face's 14 corresponding landmarks (brow ends, eye corners, nostril
  wings, mouth corners, lower-lip centre, chin). Any face shape thus gets WHENet's zero pose:
  the same physical head pose gives the same angles whatever the person's face looks like,
  and the labels mix with WHENet's (and, through WHENet's use of the same Euler convention,
  are comparable with 300W-LP/AFLW2000, whose zero is a 3DMM's frontal pose; the two zeros
  are not tied to each other by any published measurement).
- Orientation ``"eye_mouth"`` (kept for comparison; labels schema 1.x used it): x from the
  right to the left eye centre (means of iBUG 36-41 and 42-47), y from the outer-lip centre
  (48-59) to the eye midpoint with its x component removed, z = x cross y. Zero pitch is then
  where the eye-mouth line is perpendicular to the view, which moves with the face's depth
  profile (lips and chin 1 cm further forward turn it by 8.5 degrees; WHENet's frame, which
  also uses mouth and chin points, by 5.2, moving together with WHENet's own labels).
- Origin: the head centre, ``eye_mid + R @ centre_offset_cm`` with ``eye_mid`` the midpoint
  of the two eye centres and ``centre_offset_cm = (0, -1.5, -8.5)`` by default: on the
  midline, 1.5 cm below and 8.5 cm behind the eye midpoint, near the middle of the skull
  (ear canals lie about 2 cm below and 9 cm behind the eyes in adults). The crop sphere
  ("helmet") of radius ``helmet_radius_cm = 12.5`` around it contains the whole head (chin,
  crown and occiput) of an average adult; both are parameters of ``HeadFrameSpec`` and
  scale with the fitted head scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotate.geometry.procrustes import umeyama
from annotate.head.whenet_reference import WHENET_FACE70, reference_points_cm

RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
OUTER_LIPS = tuple(range(48, 60))
NUM_LANDMARKS = 70

ORIENTATION_WHENET = "whenet"
ORIENTATION_EYE_MOUTH = "eye_mouth"
ORIENTATIONS = (ORIENTATION_WHENET, ORIENTATION_EYE_MOUTH)


@dataclass(frozen=True)
class HeadFrameSpec:
    """Parameters of the canonical head frame (cm, at the model's own scale).

    orientation: which rule fixes the axes (``ORIENTATIONS``).
    """

    centre_offset_cm: tuple[float, float, float] = (0.0, -1.5, -8.5)
    helmet_radius_cm: float = 12.5
    orientation: str = ORIENTATION_WHENET

    def __post_init__(self) -> None:
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"head frame orientation must be one of {ORIENTATIONS}, got {self.orientation!r}")

    def offset(self) -> np.ndarray:
        return np.asarray(self.centre_offset_cm, dtype=np.float64)


def _check(landmarks: np.ndarray, caller: str) -> np.ndarray:
    p = np.asarray(landmarks, dtype=np.float64)
    if p.shape[-2:] != (NUM_LANDMARKS, 3):
        raise ValueError(f"{caller}: landmarks must be (..., 70, 3), got {p.shape}")
    return p


def eye_midpoint(landmarks: np.ndarray) -> np.ndarray:
    """(..., 3) midpoint of the two eye centres of landmark sets (..., 70, 3)."""
    p = _check(landmarks, "eye_midpoint")
    return 0.5 * (p[..., RIGHT_EYE, :].mean(axis=-2) + p[..., LEFT_EYE, :].mean(axis=-2))


def eye_mouth_axes(landmarks: np.ndarray) -> np.ndarray:
    """(..., 3, 3) axes (columns x, y, z) of the eye-mouth rule for (..., 70, 3) landmarks."""
    p = _check(landmarks, "eye_mouth_axes")
    right = p[..., RIGHT_EYE, :].mean(axis=-2)
    left = p[..., LEFT_EYE, :].mean(axis=-2)
    mouth = p[..., OUTER_LIPS, :].mean(axis=-2)
    x = left - right
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    up = 0.5 * (right + left) - mouth
    y = up - np.sum(up * x, axis=-1, keepdims=True) * x
    y = y / np.linalg.norm(y, axis=-1, keepdims=True)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def whenet_axes(landmarks: np.ndarray) -> np.ndarray:
    """(..., 3, 3) axes (columns x, y, z) of WHENet's reference head fitted to (..., 70, 3).

    The 14 correspondences must be finite (a complete face or mean head).
    """
    p = _check(landmarks, "whenet_axes")[..., list(WHENET_FACE70), :]
    if not np.isfinite(p).all():
        raise ValueError("whenet_axes: the 14 WHENet landmarks must all be finite")
    return umeyama(np.broadcast_to(reference_points_cm(), p.shape), p).R


def head_axes(landmarks: np.ndarray, orientation: str = ORIENTATION_WHENET) -> tuple[np.ndarray, np.ndarray]:
    """Canonical axes of landmark sets.

    landmarks: (..., 70, 3). Returns ``R_frame_head`` (..., 3, 3) whose columns are the head
    x, y, z axes expressed in the landmarks' frame, and ``eye_mid`` (..., 3).
    """
    if orientation == ORIENTATION_WHENET:
        R = whenet_axes(landmarks)
    elif orientation == ORIENTATION_EYE_MOUTH:
        R = eye_mouth_axes(landmarks)
    else:
        raise ValueError(f"head frame orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    return R, eye_midpoint(landmarks)


def head_frame_from_landmarks(landmarks: np.ndarray, spec: HeadFrameSpec = HeadFrameSpec()
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Pose of the canonical head frame: ``(R_frame_head (..., 3, 3), origin (..., 3))``.

    ``origin`` is the head centre in the landmarks' frame (at the landmarks' own scale).
    """
    R, eye_mid = head_axes(landmarks, spec.orientation)
    origin = eye_mid + np.einsum("...ij,j->...i", R, spec.offset())
    return R, origin


def canonicalize_landmarks(landmarks: np.ndarray, spec: HeadFrameSpec = HeadFrameSpec()) -> np.ndarray:
    """Express landmark sets (..., 70, 3) in their own canonical head frame."""
    p = np.asarray(landmarks, dtype=np.float64)
    R, origin = head_frame_from_landmarks(p, spec)
    return np.einsum("...ji,...nj->...ni", R, p - origin[..., None, :])
