"""dlib's 68-point shape predictor (iBUG layout) with its HOG frontal face detector.

Fully offline: ``dlib-bin`` is the library, ``face-recognition-models`` ships the
predictor file. The HOG detector finds frontal and near-frontal faces only; given head
boxes it searches only there (cheaper than the whole 1080p frame, and no face of the
crowd outside a prior), else the whole image. dlib gives no per-point confidence: every
point of a face gets the detector's score mapped to (0, 1) by a logistic, so better
detections weigh more in the triangulation.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotate.detect.base import FaceDetections, ViewInput

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


@dataclass(frozen=True)
class DlibConfig:
    """upsample: HOG pyramid upsampling (1 finds faces down to ~40 px, at 4x the cost);
    box_margin: head boxes are searched with this much extra border (fraction of size);
    min_score: detections below this HOG score are dropped."""

    upsample: int = 1
    box_margin: float = 0.25
    min_score: float = 0.0


def predictor_path() -> Path:
    """The 68-point model shipped by face-recognition-models.

    Found through the package's location, without importing it: its ``__init__`` needs
    ``pkg_resources``, which recent setuptools no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the dlib backend needs the face-recognition-models package "
                                "(pip install face-recognition-models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / PREDICTOR_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall face-recognition-models")
    return path


class DlibDetector:
    """Landmark backend: dlib HOG face detector + 68-point shape predictor."""

    name = "dlib"
    needs_images = True

    def __init__(self, config: DlibConfig = DlibConfig()):
        import dlib

        self.config = config
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path()))

    def _faces_in(self, image: np.ndarray, offset: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """(points (68, 2), score, box) of the faces in image, shifted by offset (x, y)."""
        rects, scores, _ = self._detector.run(image, self.config.upsample, self.config.min_score)
        out = []
        for rect, score in zip(rects, scores):
            shape = self._predictor(image, rect)
            pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64) + offset
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64)
            out.append((pts, float(score), box + np.tile(offset, 2)))
        return out

    def detect(self, view: ViewInput) -> FaceDetections:
        if view.image is None:
            raise ValueError("the dlib backend needs the view's image")
        image = np.ascontiguousarray(view.image, dtype=np.uint8)
        h, w = image.shape[:2]
        boxes = np.asarray(view.head_boxes_px, dtype=np.float64).reshape(-1, 4)
        boxes = boxes[np.isfinite(boxes).all(axis=1)]
        found = []
        if len(boxes) == 0:
            found = self._faces_in(image, np.zeros(2))
        for b in boxes:
            pad = self.config.box_margin * (b[2:] - b[:2])
            x0, y0 = np.maximum(np.floor(b[:2] - pad), 0).astype(int)
            x1, y1 = np.minimum(np.ceil(b[2:] + pad), [w, h]).astype(int)
            if x1 - x0 >= 16 and y1 - y0 >= 16:
                found += self._faces_in(np.ascontiguousarray(image[y0:y1, x0:x1]), np.array([x0, y0], float))
        if not found:
            return FaceDetections.empty(68)
        points = np.stack([f[0] for f in found])
        conf = np.repeat(1.0 / (1.0 + np.exp(-np.array([f[1] for f in found])))[:, None], 68, axis=1)
        return FaceDetections(points, conf, np.stack([f[2] for f in found]))
