"""Face detectors: where the faces are in a whole image, before any landmark is placed.

The landmark backends (``annotate.detect.dlib68``, ``annotate.detect.fan``) place 68 points
in a face box; without head priors (no body skeletons) the boxes come from one of these
detectors, run on the whole image (``detect.face_detector``):

- ``mtcnn`` (the default): MTCNN with the weights shipped in this package
  (``annotate.detect.mtcnn``), boxes and five keypoints; finds faces down to ~20 px, three-
  quarter views and some profiles, ~0.7 s of CPU per 1080p image;
- ``dlib_hog``: dlib's HOG frontal face detector (frontal and near-frontal faces only);
- ``dlib_cnn``: dlib's CNN (MMOD) detector from face-recognition-models (~17 s of CPU per
  1080p image at upsample 0, about 4x that at upsample 1).

docs/triangulation.md has the comparison on real Panoptic frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from annotate.detect.base import FaceDetections

FACE_DETECTORS = ("mtcnn", "dlib_hog", "dlib_cnn")
# MTCNN's keypoint order: the eye on the image left (the subject's right eye in a frontal
# face), the other eye, nose tip, mouth corner on the image left, the other mouth corner.
NUM_KEYPOINTS = 5


@dataclass(frozen=True)
class FaceBoxes:
    """N faces found in one image.

    boxes_px: (N, 4) x0, y0, x1, y1 pixels, in the detector's own box convention.
    score: (N,) detector confidence mapped to (0, 1).
    keypoints_px: (N, 5, 2) eyes, nose tip, mouth corners (order above); NaN when the
        detector gives none.
    """

    boxes_px: np.ndarray
    score: np.ndarray
    keypoints_px: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.boxes_px)
        if np.shape(self.boxes_px) != (n, 4) or np.shape(self.score) != (n,) \
                or np.shape(self.keypoints_px) != (n, NUM_KEYPOINTS, 2):
            raise ValueError(f"FaceBoxes needs boxes (N, 4), score (N,), keypoints (N, 5, 2); got "
                             f"{np.shape(self.boxes_px)}, {np.shape(self.score)}, {np.shape(self.keypoints_px)}")

    def __len__(self) -> int:
        return len(self.boxes_px)

    @staticmethod
    def empty() -> "FaceBoxes":
        return FaceBoxes(np.zeros((0, 4)), np.zeros(0), np.zeros((0, NUM_KEYPOINTS, 2)))

    def shifted(self, offset_xy: np.ndarray) -> "FaceBoxes":
        """The same faces with every coordinate moved by offset (x, y): crop -> image."""
        off = np.asarray(offset_xy, dtype=np.float64)
        return FaceBoxes(self.boxes_px + np.tile(off, 2), self.score, self.keypoints_px + off)

    @staticmethod
    def concatenate(parts: list["FaceBoxes"]) -> "FaceBoxes":
        if not parts:
            return FaceBoxes.empty()
        return FaceBoxes(np.concatenate([p.boxes_px for p in parts]), np.concatenate([p.score for p in parts]),
                         np.concatenate([p.keypoints_px for p in parts]))


class FaceDetector(Protocol):
    """Finds faces in an (H, W, 3) uint8 RGB image."""

    name: str

    def detect(self, image: np.ndarray) -> FaceBoxes:
        ...


def make_face_detector(name: str, options: dict | None = None) -> FaceDetector:
    """The face detector ``name`` (one of FACE_DETECTORS) with its options (config section
    ``detect.<name>``)."""
    options = dict(options or {})
    if name == "mtcnn":
        from annotate.detect.mtcnn import MtcnnConfig, MtcnnDetector

        return MtcnnDetector(MtcnnConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}))
    if name in ("dlib_hog", "dlib_cnn"):
        from annotate.detect.dlib_faces import DlibCnnFaces, DlibFaceConfig, DlibHogFaces

        return (DlibHogFaces if name == "dlib_hog" else DlibCnnFaces)(DlibFaceConfig(**options))
    raise ValueError(f"unknown detect.face_detector {name!r} (one of {', '.join(FACE_DETECTORS)})")


def scored_by_face(points_px: np.ndarray, faces: FaceBoxes) -> FaceDetections:
    """``FaceDetections`` of landmarks (N, L, 2) placed in ``faces``, every point scored with
    its face's detector score (landmarkers that give no per-point confidence: dlib, Face
    Mesh), the faces' boxes as the boxes the landmarks were found in."""
    points = np.asarray(points_px, dtype=np.float64)
    confidence = np.repeat(np.asarray(faces.score, dtype=np.float64)[:, None], points.shape[1], axis=1)
    return FaceDetections(points, confidence, np.asarray(faces.boxes_px, dtype=np.float64))


def faces_in_view(detector: FaceDetector, image: np.ndarray, head_boxes_px: np.ndarray,
                  box_margin: float, min_search_px: int = 16) -> FaceBoxes:
    """The detector's faces in an (H, W, 3) uint8 RGB image: inside the head boxes (K, 4)
    grown by ``box_margin`` (fraction of their size) when there are any, else in the whole
    image. Searching head boxes is cheaper than the whole 1080p frame and finds no face of
    the crowd outside a prior; boxes narrower than ``min_search_px`` are skipped."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    boxes = np.asarray(head_boxes_px, dtype=np.float64).reshape(-1, 4)
    boxes = boxes[np.isfinite(boxes).all(axis=1)]
    if len(boxes) == 0:
        return detector.detect(image)
    found = []
    for b in boxes:
        pad = box_margin * (b[2:] - b[:2])
        x0, y0 = np.maximum(np.floor(b[:2] - pad), 0).astype(int)
        x1, y1 = np.minimum(np.ceil(b[2:] + pad), [w, h]).astype(int)
        if x1 - x0 >= min_search_px and y1 - y0 >= min_search_px:
            crop = np.ascontiguousarray(image[y0:y1, x0:x1])
            found.append(detector.detect(crop).shifted(np.array([x0, y0], float)))
    return FaceBoxes.concatenate(found)
