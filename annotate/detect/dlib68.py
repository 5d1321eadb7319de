"""dlib's 68-point shape predictor (iBUG layout) on the boxes of a face detector.

Fully offline: ``dlib-bin`` is the library, ``face-recognition-models`` ships the
predictor file. The faces come from ``detect.face_detector`` (``annotate.detect.faces``:
MTCNN by default, or dlib's HOG or CNN detector); given head boxes it searches only there
(cheaper than the whole 1080p frame, and no face of the crowd outside a prior), else the
whole image. dlib gives no per-point confidence: every point of a face gets the face
detector's score in (0, 1), so better detections weigh more in the triangulation.

The predictor was trained on dlib's HOG boxes. A box of another detector is turned into
such a box: with keypoints (MTCNN), a square centred 0.4 of the way from the eye midpoint
to the mouth midpoint, 2.3 times their distance wide (the relation of HOG boxes to
MTCNN's keypoints, measured on the faces both detectors find in the real Panoptic test
frames and the astronaut photograph), kept within 0.8-1.2 of the detector's own box side
(foreshortened faces seen from above); without keypoints, the detector's box as it is.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotate.detect.base import NUM_IBUG, FaceDetections, ViewInput
from annotate.detect.faces import FaceBoxes, FaceDetector, faces_in_view, scored_by_face

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
# HOG box from MTCNN keypoints (module docstring): centre along eyes -> mouth, side / distance.
BOX_CENTRE_ALONG_EYES_TO_MOUTH, BOX_SIDE_PER_EYE_MOUTH = 0.4, 2.3
BOX_SIDE_RANGE = (0.8, 1.2)


@dataclass(frozen=True)
class DlibConfig:
    """box_margin: head boxes are searched with this much extra border (fraction of size)."""

    box_margin: float = 0.25


def model_path(file_name: str = PREDICTOR_FILE) -> Path:
    """A dlib model file shipped by face-recognition-models.

    Found through the package's location, without importing it: its ``__init__`` needs
    ``pkg_resources``, which recent setuptools no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the dlib models come with the face-recognition-models package "
                                "(pip install face-recognition-models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / file_name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall face-recognition-models")
    return path


def predictor_boxes(faces: FaceBoxes) -> np.ndarray:
    """(N, 4) boxes in the predictor's (HOG) convention for the faces (module docstring)."""
    boxes = np.asarray(faces.boxes_px, dtype=np.float64)
    if not len(boxes):
        return boxes.reshape(0, 4)
    kp = faces.keypoints_px
    return boxes_from_eyes_and_mouth(kp[:, :2].mean(axis=1), kp[:, 3:].mean(axis=1), boxes)


def boxes_from_eyes_and_mouth(eyes: np.ndarray, mouth: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, 4) HOG-convention boxes from the eye and mouth midpoints (N, 2) (module
    docstring); ``boxes`` (N, 4) where those are NaN, and the side range's reference."""
    own_side = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1))
    side = np.clip(BOX_SIDE_PER_EYE_MOUTH * np.linalg.norm(mouth - eyes, axis=1),
                   BOX_SIDE_RANGE[0] * own_side, BOX_SIDE_RANGE[1] * own_side)
    centre = eyes + BOX_CENTRE_ALONG_EYES_TO_MOUTH * (mouth - eyes)
    from_keypoints = np.concatenate([centre - side[:, None] / 2, centre + side[:, None] / 2], axis=1)
    return np.where(np.isfinite(from_keypoints).all(axis=1, keepdims=True), from_keypoints, boxes)


class DlibDetector:
    """Landmark backend: a face detector + dlib's 68-point shape predictor."""

    name = "dlib"
    needs_images = True
    searches_head_boxes = True

    def __init__(self, config: DlibConfig = DlibConfig(), face_detector: FaceDetector | None = None):
        import dlib

        from annotate.detect.faces import make_face_detector

        self.config = config
        self.face_detector = face_detector if face_detector is not None else make_face_detector("mtcnn")
        self._predictor = dlib.shape_predictor(str(model_path()))

    def find_faces(self, view: ViewInput) -> FaceBoxes:
        """The face detector's faces in the view: inside its head boxes (with margin) when it
        has any, else in the whole image."""
        return faces_in_view(self.face_detector, view.image, view.head_boxes_px, self.config.box_margin)

    def landmarks_in(self, image: np.ndarray, faces: FaceBoxes) -> FaceDetections:
        """68 points in each face (the predictor on the face's HOG-convention box)."""
        import dlib

        if not len(faces):
            return FaceDetections.empty(NUM_IBUG)
        image = np.ascontiguousarray(image, dtype=np.uint8)
        points = np.empty((len(faces), NUM_IBUG, 2))
        for k, (x0, y0, x1, y1) in enumerate(predictor_boxes(faces)):
            shape = self._predictor(image, dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)),
                                                          int(round(y1))))
            points[k] = [(p.x, p.y) for p in shape.parts()]
        return scored_by_face(points, faces)

    def detect(self, view: ViewInput) -> FaceDetections:
        if view.image is None:
            raise ValueError("the dlib backend needs the view's image")
        return self.landmarks_in(view.image, self.find_faces(view))
