"""The one interface of the 2D landmark backends (synthetic, face-alignment FAN, dlib).

A backend turns one camera view of one frame into ``FaceDetections``: N faces, each with
68 (iBUG) or 70 (Panoptic face70: iBUG + right pupil 68 + left pupil 69) points in pixels
and a confidence per point. Which detected face belongs to which person is not the
backend's business: ``annotate.detect.association`` decides that, so backends return faces
in no particular order.

Pixels follow OpenCV: pixel (col, row) has its centre at (u, v) = (col, row); points are
in the distorted image, exactly as detected.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from annotate.head.head_frame import NUM_LANDMARKS

NUM_IBUG = 68
NUM_FACE70 = NUM_LANDMARKS          # Panoptic's face70 (annotate.head.head_frame)


@dataclass(frozen=True)
class FaceDetections:
    """Faces found in one view.

    points_px: (N, L, 2) float64 pixels, L = 68 or 70; NaN = point not found.
    confidence: (N, L) float64 per-point confidence (heatmap peak or similar, ~[0, 1]);
        0 where the point is NaN.
    boxes_px: (N, 4) float64 face boxes (x0, y0, x1, y1) the landmarks were found in.
    alternatives_px: (N, K, L, 2) the same faces' points from K other crops of the image
        (a landmark model's answers under small changes of its crop, for
        ``annotate.geometry.crop_consensus``); None when the backend gives none.
    """

    points_px: np.ndarray
    confidence: np.ndarray
    boxes_px: np.ndarray
    alternatives_px: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.points_px)
        if self.points_px.ndim != 3 or self.points_px.shape[1:] not in ((NUM_IBUG, 2), (NUM_FACE70, 2)):
            raise ValueError(f"points_px must be (N, 68|70, 2), got {self.points_px.shape}")
        if self.confidence.shape != self.points_px.shape[:2] or self.boxes_px.shape != (n, 4):
            raise ValueError(f"confidence must be {self.points_px.shape[:2]} and boxes_px ({n}, 4), got "
                             f"{self.confidence.shape} and {self.boxes_px.shape}")
        alt = self.alternatives_px
        if alt is not None and (alt.ndim != 4 or alt.shape[0] != n or alt.shape[2:] != self.points_px.shape[1:]):
            raise ValueError(f"alternatives_px must be ({n}, K, {self.points_px.shape[1]}, 2), got {alt.shape}")

    def __len__(self) -> int:
        return len(self.points_px)

    @property
    def num_landmarks(self) -> int:
        return self.points_px.shape[1]

    @staticmethod
    def empty(num_landmarks: int = NUM_FACE70) -> "FaceDetections":
        return FaceDetections(np.zeros((0, num_landmarks, 2)), np.zeros((0, num_landmarks)), np.zeros((0, 4)))

    def to_face70(self) -> "FaceDetections":
        """The same faces in the 70-point layout: 68-point faces get NaN pupils (confidence 0).

        Pupils are not invented from the eye contour: Panoptic's pupils are their own
        detections, and a missing point is better than a biased one.
        """
        if self.num_landmarks == NUM_FACE70:
            return self
        n = len(self)
        pts = np.concatenate([self.points_px, np.full((n, 2, 2), np.nan)], axis=1)
        conf = np.concatenate([self.confidence, np.zeros((n, 2))], axis=1)
        alt = self.alternatives_px
        if alt is not None:
            alt = np.concatenate([alt, np.full(alt.shape[:2] + (2, 2), np.nan)], axis=2)
        return FaceDetections(pts, conf, self.boxes_px, alt)


@dataclass(frozen=True)
class ViewInput:
    """What a backend gets for one view.

    frame: HD frame number; camera: index of the camera in the rig (0..C-1).
    image: (H, W, 3) uint8 RGB, or None for backends that do not look at pixels.
    head_boxes_px: (K, 4) x0, y0, x1, y1 boxes where heads are expected (from the body
        skeletons or the previous frame), possibly empty; image-based backends that cannot
        find faces themselves (FAN without a detector) look only there.
    """

    frame: int
    camera: int
    image: np.ndarray | None
    head_boxes_px: np.ndarray


class LandmarkBackend(Protocol):
    """A 2D face landmark detector. ``needs_images``: whether ``ViewInput.image`` is used;
    ``searches_head_boxes``: whether ``ViewInput.head_boxes_px`` only narrow where its face
    detector looks (dlib, Face Mesh), so that searching around tracked faces finds what a
    whole-image search would (FAN takes each box for a face)."""

    name: str
    needs_images: bool
    searches_head_boxes: bool

    def detect(self, view: ViewInput) -> FaceDetections:
        ...
