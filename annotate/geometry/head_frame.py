"""The canonical head frame, defined from the 70 face landmarks.

Definition (fixed; tests lock it in). For a landmark set in any frame:

- ``right_eye`` = mean of iBUG points 36-41 (the subject's right eye), ``left_eye`` = mean of
  42-47; ``eye_mid`` = their midpoint; ``mouth_mid`` = mean of the outer lip contour 48-59.
- x axis: unit vector from ``right_eye`` to ``left_eye`` (toward the subject's left ear).
- y axis: ``eye_mid - mouth_mid`` with its x component removed, normalised (up the face).
- z axis: ``x cross y``, out of the face (forward).
- Zero pitch rule: pitch is zero when the eye-to-mouth line is perpendicular to the
  viewing direction (the face's eyes-mouth plane faces the camera); the rule uses only the
  eyes and the mouth because they are the best-localised landmarks and span the face.
- Origin: the head centre, ``eye_mid + R @ centre_offset_cm`` with
  ``centre_offset_cm = (0, -1.5, -8.5)`` by default: on the midline, 1.5 cm below and 8.5 cm
  behind the eye midpoint, near the middle of the skull (ear canals lie about 2 cm below and
  9 cm behind the eyes in adults). The crop sphere ("helmet") of radius
  ``helmet_radius_cm = 12.5`` around it contains the whole head (chin, crown and occiput) of
  an average adult; both are parameters of ``HeadFrameSpec`` and scale with the fitted head
  scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
OUTER_LIPS = tuple(range(48, 60))
NUM_LANDMARKS = 70


@dataclass(frozen=True)
class HeadFrameSpec:
    """Parameters of the canonical head frame (cm, at the model's own scale)."""

    centre_offset_cm: tuple[float, float, float] = (0.0, -1.5, -8.5)
    helmet_radius_cm: float = 12.5

    def offset(self) -> np.ndarray:
        return np.asarray(self.centre_offset_cm, dtype=np.float64)


def head_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical axes of landmark sets.

    landmarks: (..., 70, 3). Returns ``R_frame_head`` (..., 3, 3) whose columns are the head
    x, y, z axes expressed in the landmarks' frame, and ``eye_mid`` (..., 3).
    """
    p = np.asarray(landmarks, dtype=np.float64)
    if p.shape[-2:] != (NUM_LANDMARKS, 3):
        raise ValueError(f"head_axes: landmarks must be (..., 70, 3), got {p.shape}")
    right = p[..., RIGHT_EYE, :].mean(axis=-2)
    left = p[..., LEFT_EYE, :].mean(axis=-2)
    mouth = p[..., OUTER_LIPS, :].mean(axis=-2)
    eye_mid = 0.5 * (right + left)
    x = left - right
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    up = eye_mid - mouth
    y = up - np.sum(up * x, axis=-1, keepdims=True) * x
    y = y / np.linalg.norm(y, axis=-1, keepdims=True)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1), eye_mid


def head_frame_from_landmarks(landmarks: np.ndarray, spec: HeadFrameSpec = HeadFrameSpec()
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Pose of the canonical head frame: ``(R_frame_head (..., 3, 3), origin (..., 3))``.

    ``origin`` is the head centre in the landmarks' frame (at the landmarks' own scale).
    """
    R, eye_mid = head_axes(landmarks)
    origin = eye_mid + np.einsum("...ij,j->...i", R, spec.offset())
    return R, origin


def canonicalize_landmarks(landmarks: np.ndarray, spec: HeadFrameSpec = HeadFrameSpec()) -> np.ndarray:
    """Express landmark sets (..., 70, 3) in their own canonical head frame."""
    p = np.asarray(landmarks, dtype=np.float64)
    R, origin = head_frame_from_landmarks(p, spec)
    return np.einsum("...ji,...nj->...ni", R, p - origin[..., None, :])
