"""MediaPipe Face Mesh landmarks, in Panoptic's face70 layout, on the boxes of a face detector.

Fully offline: the landmark model ships in this package (weights/face_landmark.tflite,
Apache-2.0, weights/LICENSE-facemesh.txt) and runs on Google's TFLite runtime
(``ai-edge-litert``). The model places 468 points on a 192 x 192 crop of a face; it was
trained on faces seen from many angles, where dlib's 68-point predictor (trained on
near-frontal faces) spreads or drifts its points on three-quarter, profile and from-above
views (docs/triangulation.md has the comparison on real Panoptic frames).

The crop follows MediaPipe's own face pipeline: a square 1.5 times the detector's box side
about the box centre, turned so that the eyes (MTCNN's keypoints) lie level; without
keypoints (dlib's detectors) it is not turned. The mesh is then run again (``roi_passes``,
3 runs in all by default) on the crop its own points give: the square 1.5 times the longer
side of their bounding box, levelled by the eyes' outer corners, as MediaPipe crops a face
from the previous video frame's mesh. A detector's box is centred and sized by that
detector's convention, not by the one of the crops the mesh was trained on; the mesh's own
crop does not depend on the detector. On the real test frames this gives every
triangulated person all 12 eye points and eye spans of 6.0-6.4 cm, where one run left one
person with 7 eye points (docs/triangulation.md).

Each iBUG point is one mesh vertex (``IBUG_FROM_MESH``): the eye contours are the vertices
every Face Mesh user takes for them; the others were chosen on the mesh's contours (face
oval, brows, nose, lips) as the vertex nearest to dlib's point on near-frontal faces,
mirrored so the table is symmetric (``tests/test_detect_images.py`` checks the agreement on
a frontal photograph). The jaw
points are the mesh's face oval, a fixed 3D contour; iBUG's jaw is the visible outline,
which moves over the face as it turns, so the two agree only on frontal faces.

As in MediaPipe's own pipeline, the eyelids are then refined by the iris model on a crop of
each eye (``refine_eyes``, on by default; ``annotate.detect.iris``), which also gives the
pupils (Panoptic's points 68, 69: the iris centres); the brows stay the mesh's. Without it
the pupils are NaN, as with dlib.

Every point of a face gets the face detector's score as confidence, as with dlib.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotate.detect.base import NUM_FACE70, NUM_IBUG, FaceDetections, ViewInput
from annotate.detect.faces import FaceBoxes, FaceDetector, faces_in_view, scored_by_face
from annotate.detect.iris import ROI_SCALE as EYE_ROI_SCALE, IrisModel, refined_mesh
from annotate.detect.tflite import load_tflite, output_index

MODEL_FILE = Path(__file__).resolve().parent / "weights" / "face_landmark.tflite"
INPUT_PX = 192                     # the model's square input side
NUM_MESH = 468
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263         # mesh vertices: the subject's right, left eye

# iBUG 68 point k = mesh vertex IBUG_FROM_MESH[k] (module docstring): jaw 0-16 (subject's
# right ear -> chin -> left ear), brows 17-26, nose 27-35, eyes 36-47, lips 48-67.
IBUG_FROM_MESH = np.array([
    127, 234, 132, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 361, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 6, 195, 5, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    78, 82, 13, 312, 308, 317, 14, 87,
])


# The alternative first crops of a face (FaceMeshConfig.crop_alternatives): the crop side
# over the detector box's longer side, and the crop centre's shift from the box centre in
# box sides, along x and along y. The mesh lands on different features depending on its
# first crop when a face is seen steeply or the detector's box takes in much hair (on the
# real test frames a face seen from above gets its eyes on the hairline from the box's crop,
# and on its eyes from a crop 0.15 box sides lower and right and 0.6 times the size).
ALTERNATIVE_SCALES = (0.9, 1.1, 1.3, 1.5)
ALTERNATIVE_SHIFTS = (-0.15, 0.0, 0.15)
ALTERNATIVE_PASSES = 2          # mesh runs per alternative crop: on it, then on the mesh's own crop


def alternative_boxes(boxes_px: np.ndarray) -> np.ndarray:
    """(N, K, 4) the boxes whose crops (at roi_scale 1) are a face's alternative first crops:
    K = len(ALTERNATIVE_SCALES) x len(ALTERNATIVE_SHIFTS)^2, scale-major."""
    boxes = np.asarray(boxes_px, dtype=np.float64).reshape(-1, 4)
    side = np.max(boxes[:, 2:] - boxes[:, :2], axis=1)                             # (N,)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    out = []
    for scale in ALTERNATIVE_SCALES:
        for dx in ALTERNATIVE_SHIFTS:
            for dy in ALTERNATIVE_SHIFTS:
                c = centre + np.stack([dx * side, dy * side], axis=1)
                half = (scale * side / 2)[:, None]
                out.append(np.concatenate([c - half, c + half], axis=1))
    return np.stack(out, axis=1)


@dataclass(frozen=True)
class FaceMeshConfig:
    """box_margin: head boxes are searched with this much extra border (fraction of size);
    roi_scale: the crop's side over the face box's longer side; roi_passes: mesh runs per
    face, the first on the detector's box, each later one on the crop the previous mesh
    gives (``crop_from_mesh``); refine_eyes: eyelids and pupils from MediaPipe's iris model
    (annotate.detect.iris) on crops of eye_roi_scale times the eye's corner distance;
    crop_alternatives: also each face's points from the alternative first crops about its
    detector box (``alternative_boxes``; ``FaceDetections.alternatives_px``, for
    ``annotate.geometry.crop_consensus``);
    threads: the runtime's CPU threads."""

    box_margin: float = 0.25
    roi_scale: float = 1.5
    roi_passes: int = 3
    crop_alternatives: bool = True
    refine_eyes: bool = True
    eye_roi_scale: float = EYE_ROI_SCALE
    threads: int = 1

    def __post_init__(self) -> None:
        if (self.roi_scale <= 0 or self.eye_roi_scale <= 0 or self.box_margin < 0 or self.threads < 1
                or self.roi_passes < 1):
            raise ValueError(f"facemesh needs roi_scale > 0, roi_passes >= 1, eye_roi_scale > 0, box_margin >= 0, "
                             f"threads >= 1; got {self}")


def crop_to_image(boxes_px: np.ndarray, keypoints_px: np.ndarray, roi_scale: float) -> np.ndarray:
    """(N, 2, 3) affine maps from model-input pixels (0..INPUT_PX) to image pixels, one per
    face: the square of side roi_scale x the box's longer side about its centre, turned so
    the eyes (keypoints 0 and 1; NaN = not turned) lie level.

    boxes_px: (N, 4) x0, y0, x1, y1; keypoints_px: (N, 5, 2) (annotate.detect.faces order).
    """
    boxes = np.asarray(boxes_px, dtype=np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = roi_scale * np.max(boxes[:, 2:] - boxes[:, :2], axis=1)
    eyes = np.asarray(keypoints_px, dtype=np.float64)[:, 1] - np.asarray(keypoints_px, dtype=np.float64)[:, 0]
    angle = np.where(np.isfinite(eyes).all(axis=1), np.arctan2(eyes[:, 1], eyes[:, 0]), 0.0)
    c, s = np.cos(angle), np.sin(angle)
    linear = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], axis=1) * (side / INPUT_PX)[:, None, None]
    offset = centre - linear @ np.array([INPUT_PX / 2, INPUT_PX / 2])
    return np.concatenate([linear, offset[:, :, None]], axis=2)


def crop_from_mesh(mesh_px: np.ndarray, roi_scale: float) -> np.ndarray:
    """(N, 2, 3) the model-input -> image maps of the crops meshes give (MediaPipe's crop
    from a previous mesh): the square of side roi_scale x the longer side of the bounding
    box of each mesh's vertices, about its centre, turned so the eyes' outer corners
    (vertices 33, the subject's right, and 263) lie level. mesh_px: (N, 468, 2) pixels."""
    mesh = np.asarray(mesh_px, dtype=np.float64)
    boxes = np.concatenate([mesh.min(axis=1), mesh.max(axis=1)], axis=1)
    keypoints = np.full((len(mesh), 5, 2), np.nan)
    keypoints[:, 0], keypoints[:, 1] = mesh[:, RIGHT_EYE_OUTER], mesh[:, LEFT_EYE_OUTER]
    return crop_to_image(boxes, keypoints, roi_scale)


def load_interpreter(threads: int = 1):
    """The TFLite interpreter on the shipped model, tensors allocated."""
    return load_tflite(MODEL_FILE, (1, INPUT_PX, INPUT_PX, 3), threads)


class FaceMeshDetector:
    """Landmark backend: a face detector + MediaPipe Face Mesh, points in the iBUG layout."""

    name = "facemesh"
    needs_images = True
    searches_head_boxes = True

    def __init__(self, config: FaceMeshConfig = FaceMeshConfig(), face_detector: FaceDetector | None = None):
        from annotate.detect.faces import make_face_detector

        self.config = config
        self.face_detector = face_detector if face_detector is not None else make_face_detector("mtcnn")
        self._interpreter = load_interpreter(config.threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        # the landmark tensor (1404 = 468 x 3 values); the other is the face-presence logit
        self._points = output_index(self._interpreter, NUM_MESH * 3, MODEL_FILE)
        self._iris = IrisModel(config.threads) if config.refine_eyes else None

    def find_faces(self, view: ViewInput) -> FaceBoxes:
        return faces_in_view(self.face_detector, view.image, view.head_boxes_px, self.config.box_margin)

    def mesh_in(self, image: np.ndarray, faces: FaceBoxes) -> np.ndarray:
        """(N, 468, 2) mesh vertices in image pixels, one mesh per face: ``roi_passes`` runs,
        the first on the detector's box, each later one on the crop of the previous mesh."""
        first = crop_to_image(faces.boxes_px, faces.keypoints_px, self.config.roi_scale)
        return self.mesh_recropped(image, first, self.config.roi_passes)

    def mesh_recropped(self, image: np.ndarray, first_maps: np.ndarray, passes: int) -> np.ndarray:
        """(N, 468, 2) meshes from ``passes`` runs: the first on the (N, 2, 3) crops
        ``first_maps``, each later one on the crop the previous mesh gives (``crop_from_mesh``)."""
        mesh = self.mesh_on_crops(image, first_maps)
        for _ in range(passes - 1):
            mesh = self.mesh_on_crops(image, crop_from_mesh(mesh, self.config.roi_scale))
        return mesh

    def mesh_on_crops(self, image: np.ndarray, maps: np.ndarray) -> np.ndarray:
        """(N, 468, 2) the model's vertices in image pixels on the crops of the (N, 2, 3)
        model-input -> image maps."""
        import cv2

        out = np.empty((len(maps), NUM_MESH, 2))
        for k, A in enumerate(maps):
            # The model's input: RGB in [0, 1], sampled from the image through the affine map.
            crop = cv2.warpAffine(image, A, (INPUT_PX, INPUT_PX), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)
            self._interpreter.set_tensor(self._input, (crop[None].astype(np.float32) / 255.0))
            self._interpreter.invoke()
            xy = self._interpreter.get_tensor(self._points).reshape(NUM_MESH, 3)[:, :2].astype(np.float64)
            out[k] = xy @ A[:, :2].T + A[:, 2]
        return out

    def alternative_meshes(self, image: np.ndarray, faces: FaceBoxes) -> np.ndarray:
        """(N, K, 468, 2) each face's mesh from each of its alternative first crops
        (``alternative_boxes``, turned like the detector's), run once more on its own crop."""
        n = len(faces)
        boxes = alternative_boxes(faces.boxes_px)                                      # (N, K, 4)
        k = boxes.shape[1]
        keypoints = np.repeat(np.asarray(faces.keypoints_px, dtype=np.float64), k, axis=0)
        mesh = self.mesh_recropped(image, crop_to_image(boxes.reshape(-1, 4), keypoints, 1.0), ALTERNATIVE_PASSES)
        return mesh.reshape(n, k, NUM_MESH, 2)

    def points_from_meshes(self, image: np.ndarray, mesh: np.ndarray) -> np.ndarray:
        """(N, L, 2) the iBUG points of (N, 468, 2) meshes, with the iris model's eyelids and
        pupils when refine_eyes (L = 70), else L = 68."""
        if self._iris is None:
            return mesh[:, IBUG_FROM_MESH]
        contour, iris = self._iris.eyes_in(image, mesh, self.config.eye_roi_scale)
        # Panoptic's pupils: 68 the subject's right (iris eye 0), 69 the left.
        return np.concatenate([refined_mesh(mesh, contour)[:, IBUG_FROM_MESH], iris[:, :, 0]], axis=1)

    def landmarks_in(self, image: np.ndarray, faces: FaceBoxes) -> FaceDetections:
        """Points in each face (module docstring): 70 (iBUG 68 + the pupils) with refine_eyes,
        else 68; with crop_alternatives, also from each alternative crop."""
        if not len(faces):
            return FaceDetections.empty(NUM_FACE70 if self._iris is not None else NUM_IBUG)
        image = np.ascontiguousarray(image, dtype=np.uint8)
        found = scored_by_face(self.points_from_meshes(image, self.mesh_in(image, faces)), faces)
        if not self.config.crop_alternatives:
            return found
        meshes = self.alternative_meshes(image, faces)                                 # (N, K, 468, 2)
        n, k = meshes.shape[:2]
        alternatives = self.points_from_meshes(image, meshes.reshape(n * k, NUM_MESH, 2))
        return FaceDetections(found.points_px, found.confidence, found.boxes_px,
                              alternatives.reshape(n, k, *alternatives.shape[1:]))

    def detect(self, view: ViewInput) -> FaceDetections:
        if view.image is None:
            raise ValueError("the facemesh backend needs the view's image")
        return self.landmarks_in(view.image, self.find_faces(view))
