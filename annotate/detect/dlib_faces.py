"""dlib's two face detectors as ``annotate.detect.faces`` detectors: HOG and CNN (MMOD).

Both ship offline: HOG inside dlib, the CNN's ``mmod_human_face_detector.dat`` in
face-recognition-models (found through the package's location, as the 68-point predictor,
``annotate.detect.dlib68.model_path``). HOG finds frontal and near-frontal faces; the CNN
also finds turned faces but costs ~17 s of CPU per 1080p image at upsample 0 (about 4x
more per upsampling step). Neither gives keypoints. Scores are mapped to (0, 1) by a
logistic (HOG's SVM margin, the CNN's detection confidence).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotate.detect.faces import NUM_KEYPOINTS, FaceBoxes

CNN_MODEL_FILE = "mmod_human_face_detector.dat"


@dataclass(frozen=True)
class DlibFaceConfig:
    """upsample: pyramid upsampling (each step finds 2x smaller faces at ~4x the cost; HOG's
    smallest face is ~80 px at 0, ~40 px at 1); min_score: detections scoring less (HOG
    margin, CNN confidence) are dropped."""

    upsample: int = 1
    min_score: float = 0.0


def _face_boxes(lefts, tops, rights, bottoms, scores) -> FaceBoxes:
    n = len(scores)
    boxes = np.stack([lefts, tops, rights, bottoms], axis=1).astype(np.float64).reshape(n, 4)
    score = 1.0 / (1.0 + np.exp(-np.asarray(scores, dtype=np.float64)))
    return FaceBoxes(boxes, score, np.full((n, NUM_KEYPOINTS, 2), np.nan))


class DlibHogFaces:
    """dlib's HOG frontal face detector."""

    name = "dlib_hog"

    def __init__(self, config: DlibFaceConfig = DlibFaceConfig()):
        import dlib

        self.config = config
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> FaceBoxes:
        rects, scores, _ = self._detector.run(np.ascontiguousarray(image, dtype=np.uint8), self.config.upsample,
                                              self.config.min_score)
        return _face_boxes([r.left() for r in rects], [r.top() for r in rects], [r.right() for r in rects],
                           [r.bottom() for r in rects], list(scores))


class DlibCnnFaces:
    """dlib's CNN (MMOD) face detector."""

    name = "dlib_cnn"

    def __init__(self, config: DlibFaceConfig = DlibFaceConfig()):
        import dlib

        from annotate.detect.dlib68 import model_path

        self.config = config
        self._detector = dlib.cnn_face_detection_model_v1(str(model_path(CNN_MODEL_FILE)))

    def detect(self, image: np.ndarray) -> FaceBoxes:
        found = [d for d in self._detector(np.ascontiguousarray(image, dtype=np.uint8), self.config.upsample)
                 if d.confidence >= self.config.min_score]
        return _face_boxes([d.rect.left() for d in found], [d.rect.top() for d in found],
                           [d.rect.right() for d in found], [d.rect.bottom() for d in found],
                           [d.confidence for d in found])
