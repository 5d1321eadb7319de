"""Cameras mounted on their side or upside down: each view is turned upright before detection.

Face detectors and landmark models find upright faces: in three real Panoptic images MTCNN
finds 7 faces scoring 0.9 or more, and none in the same images turned by 90 degrees
(docs/captures.md). Rigs are often built with some
cameras in portrait (to frame standing people) or upside down (hung from a ceiling), so
each camera gets a turn, a multiple of 90 degrees clockwise, that makes its images upright
(``detect.image_rotation``):

- a number (0, 90, 180, 270) for every camera, or a mapping camera name -> number (cameras
  not named: 0);
- ``auto`` (alone or per camera): MTCNN (``annotate.detect.mtcnn``, whatever
  ``detect.face_detector`` is: it is shipped) is run on the camera's first image, shrunk to
  ``PROBE_LONG_SIDE_PX`` (0.8 s of CPU for the four turns of an HD image), at the four
  turns and counts the faces it finds with an O-net probability of at least
  ``min_score`` (``best_turn``): a turn is taken when it has at
  least 2 such faces and more than twice as many as upright; upright when upright has one
  and no turn has that much more. Otherwise (a camera whose first image shows no clear
  face) the next images are probed too, their counts added, up to ``PROBE_IMAGES`` images;
  meanwhile each image is taken at the turn with the most faces so far, and a camera still
  undecided after that stays upright. MTCNN's false faces are the reason for the margins:
  one of the ten upright real test images gives a false face scoring 0.9 at a wrong turn.

Only the detector's input is turned: the points and boxes come back in the camera's own
pixels (``annotate.detect.base``: OpenCV pixel centres), so the calibration, the tables and
everything downstream are those of the untouched images. A turn by a multiple of 90 degrees
moves pixels without resampling them, so a turned view gives exactly the detections of the
upright image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from annotate.core.names import check_camera_mapping
from annotate.detect.base import FaceDetections, LandmarkBackend, ViewInput
from annotate.geometry.image_turns import TURNS_CW_DEG, turn_boxes, turn_image, unturn_points

AUTO = "auto"
PROBE_IMAGES = 5            # images of a camera tried by ``auto`` before it settles upright
PROBE_MIN_SCORE = 0.9       # MTCNN's O-net face probability
# The probe counts faces on the image shrunk to at most this longer side: on the ten real
# HD test images it finds 11 of the 12 faces it finds at full size, in a quarter of the time.
PROBE_LONG_SIDE_PX = 960


def detections_unturned(faces: FaceDetections, degrees_cw: int, size_wh: Sequence[int]) -> FaceDetections:
    """Detections made in the turned image, in the pixels of the original (width, height)."""
    alt = faces.alternatives_px
    return FaceDetections(unturn_points(faces.points_px, degrees_cw, size_wh), faces.confidence,
                          turn_boxes(faces.boxes_px, degrees_cw, size_wh, inverse=True),
                          None if alt is None else unturn_points(alt, degrees_cw, size_wh))


def probe_image(image: np.ndarray, long_side_px: int = PROBE_LONG_SIDE_PX) -> np.ndarray:
    """The image shrunk (area averaging) so its longer side is at most long_side_px."""
    import cv2

    scale = long_side_px / max(image.shape[:2])
    if scale >= 1:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def confident_faces_per_turn(detector, image: np.ndarray, min_score: float) -> list[int]:
    """Faces scoring at least min_score that ``detector`` (an ``annotate.detect.faces``
    FaceDetector) finds in the image turned by each of TURNS_CW_DEG."""
    return [int(np.sum(detector.detect(turn_image(image, t)).score >= min_score)) for t in TURNS_CW_DEG]


def best_turn(counts: Sequence[int]) -> int | None:
    """The turn (degrees clockwise) that per-turn face counts (ordered as TURNS_CW_DEG)
    decide: the turn with the most faces when it has at least 2 and more than twice
    upright's count; else upright when upright has a face; else None (undecided)."""
    counts = list(counts)
    k = int(np.argmax(counts))
    if k and counts[k] >= 2 and counts[k] > 2 * counts[0]:
        return TURNS_CW_DEG[k]
    return 0 if counts[0] >= 1 else None


def leading_turn(counts: Sequence[int]) -> int:
    """The turn with the most faces so far (upright on a tie): an undecided camera's turn."""
    return TURNS_CW_DEG[int(np.argmax(counts))]


def parse_rotation_setting(setting, camera_names: Sequence[str]) -> list:
    """The per-camera settings (degrees or ``auto``) of ``detect.image_rotation``: one
    value for every camera, or a mapping name -> value (others: 0). Unknown names and values
    raise ValueError naming them."""
    def check(value, where: str):
        if value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value in TURNS_CW_DEG):
            return value
        raise ValueError(f"detect.image_rotation{where} must be 'auto' or one of {TURNS_CW_DEG} (degrees clockwise "
                         f"that turn the camera's images upright), got {value!r}")

    if isinstance(setting, Mapping):
        setting = check_camera_mapping(setting, camera_names, "detect.image_rotation")
        return [check(setting.get(name, 0), f"[{name!r}]") for name in camera_names]
    return [check(setting, "")] * len(camera_names)


@dataclass
class CameraTurns:
    """Each camera's turn: fixed, or found by the probe (module docstring) on its first images.

    settings: (C,) degrees or ``auto``; detector: the probe's face detector (None: MTCNN,
    made on first use); degrees: the decided turns (auto cameras: once decided); probes:
    camera -> the per-turn confident-face counts, summed over the images probed; probed:
    camera -> images probed."""

    settings: list
    detector: object = None
    min_score: float = PROBE_MIN_SCORE
    degrees: dict = field(init=False)
    probes: dict = field(init=False, default_factory=dict)
    probed: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.degrees = {c: s for c, s in enumerate(self.settings) if s != AUTO}

    def turn(self, camera: int, image: np.ndarray | None) -> int:
        """The camera's turn, probing ``image`` while it is undecided."""
        if camera in self.degrees:
            return self.degrees[camera]
        if image is None:
            return 0
        if self.detector is None:
            from annotate.detect.faces import make_face_detector

            self.detector = make_face_detector("mtcnn")
        counts = confident_faces_per_turn(self.detector, probe_image(image), self.min_score)
        total = [a + b for a, b in zip(self.probes.get(camera, [0] * len(TURNS_CW_DEG)), counts)]
        self.probes[camera] = total
        self.probed[camera] = self.probed.get(camera, 0) + 1
        found = best_turn(total)
        if found is not None:
            self.degrees[camera] = found
            return found
        if self.probed[camera] >= PROBE_IMAGES:
            self.degrees[camera] = 0
        return leading_turn(total)


class UprightBackend:
    """A landmark backend that sees every view turned upright (``CameraTurns``); its faces
    come back in the views' own pixels."""

    def __init__(self, backend: LandmarkBackend, turns: CameraTurns):
        self.backend, self.turns = backend, turns
        self.name = backend.name
        self.needs_images = backend.needs_images
        self.searches_head_boxes = getattr(backend, "searches_head_boxes", False)
        self.face_detector = getattr(backend, "face_detector", None)

    def detect(self, view: ViewInput) -> FaceDetections:
        degrees = self.turns.turn(view.camera, view.image)
        if degrees == 0 or view.image is None:
            return self.backend.detect(view)
        h, w = view.image.shape[:2]
        turned = ViewInput(view.frame, view.camera, turn_image(view.image, degrees),
                           turn_boxes(view.head_boxes_px, degrees, (w, h)))
        return detections_unturned(self.backend.detect(turned), degrees, (w, h))

    def turn_summary(self, camera_names: Sequence[str]) -> dict:
        """{camera: degrees} of the cameras with a decided turn; the probes' face counts per
        turn (TURNS_CW_DEG order) and images probed, per probed camera."""
        return {"degrees_cw": {camera_names[c]: d for c, d in sorted(self.turns.degrees.items())},
                "probe_faces": {camera_names[c]: n for c, n in sorted(self.turns.probes.items())},
                "probe_images": {camera_names[c]: n for c, n in sorted(self.turns.probed.items())}}
