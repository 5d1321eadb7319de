"""MediaPipe's iris model: each eye's contour and pupil refined on a crop of that eye.

Face Mesh places its eye and brow vertices from a 192 px crop of the whole face, where an
eye is 10-20 px wide; MediaPipe's own pipeline then refines them with a second model that
looks at one eye at a time (weights/iris_landmark.tflite, Apache-2.0, shipped beside the
mesh model). Per eye it returns 71 points (the eyelid contour, four halos around it and the
brow: the mesh vertices ``EYE_MESH``) and 5 iris points (centre first, then four on the
iris edge). The eyelid contour replaces the mesh's (``refined_mesh``); the brow stays the
mesh's.

The crop follows MediaPipe's: a square of ``roi_scale`` (2.3) times the distance between the
eye's two corners (mesh vertices 33, 133 for the subject's right eye; 362, 263 for the
left), about their midpoint, turned so that the corners lie level. The model was trained on
the subject's right eye as seen on the image's left; the left eye's crop is mirrored so that
it looks like one, and its points mirrored back.

Frames: image pixels with integer pixel centres (as everywhere in this package); model
coordinates in the 64 px input's continuous units (0 at its left edge, 64 at its right).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from annotate.detect.tflite import load_tflite, output_index

MODEL_FILE = Path(__file__).resolve().parent / "weights" / "iris_landmark.tflite"
INPUT_PX = 64
NUM_EYE = 71
NUM_LID = 16              # of the 71: the lower lid then the upper lid (the eye's contour)
NUM_IRIS = 5
NUM_MESH = 468

# The mesh vertices the model's 71 points replace, per eye (MediaPipe's table): lower lid
# (corner to corner), upper lid, four halos, the brow. Row 0: the subject's right eye.
EYE_MESH = np.array([
    [33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
     130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
     226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
     35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245, 156,
     70, 63, 105, 66, 107, 55, 193],
    [263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
     359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
     446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
     265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465, 383,
     300, 293, 334, 296, 336, 285, 417],
])
# Per eye: the corners whose line is levelled, left to right on the crop.
EYE_CORNERS_MESH = np.array([[33, 133], [362, 263]])
MIRRORED = np.array([False, True])
ROI_SCALE = 2.3           # MediaPipe's crop side over the corner distance
MIN_EYE_PX = 2.0          # corners closer than this: no crop, the eye keeps its mesh points


def eye_crop_maps(mesh_px: np.ndarray, roi_scale: float) -> np.ndarray:
    """(N, 2, 2, 3) affine maps from model coordinates (continuous, 0..INPUT_PX) to image
    pixels, per face and eye (module docstring); NaN where the eye's corners are missing or
    closer than MIN_EYE_PX.

    mesh_px: (N, 468, 2) Face Mesh vertices in image pixels.
    """
    mesh = np.asarray(mesh_px, dtype=np.float64)
    start, end = mesh[:, EYE_CORNERS_MESH[:, 0]], mesh[:, EYE_CORNERS_MESH[:, 1]]       # (N, 2, 2)
    along = end - start
    length = np.linalg.norm(along, axis=-1)                                               # (N, 2)
    angle = np.arctan2(along[..., 1], along[..., 0])
    c, s = np.cos(angle), np.sin(angle)
    scale = roi_scale * length / INPUT_PX
    flip = np.where(MIRRORED, -1.0, 1.0)                       # mirrored: model x -> -x about the centre
    linear = np.stack([np.stack([c * flip, -s], -1), np.stack([s * flip, c], -1)], axis=-2) * scale[..., None, None]
    centre = (start + end) / 2
    offset = centre - linear @ np.array([INPUT_PX / 2, INPUT_PX / 2])
    maps = np.concatenate([linear, offset[..., None]], axis=-1)
    bad = ~np.isfinite(length) | (length < MIN_EYE_PX)
    return np.where(bad[..., None, None], np.nan, maps)


def to_image(points_model: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """(..., P, 2) model coordinates -> image pixels through (..., 2, 3) maps."""
    return points_model @ np.swapaxes(maps[..., :2], -1, -2) + maps[..., None, :, 2]


class IrisModel:
    """The shipped iris model on the TFLite runtime."""

    def __init__(self, threads: int = 1):
        self._interpreter = load_tflite(MODEL_FILE, (1, INPUT_PX, INPUT_PX, 3), threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._contour = output_index(self._interpreter, NUM_EYE * 3, MODEL_FILE)
        self._iris = output_index(self._interpreter, NUM_IRIS * 3, MODEL_FILE)

    def eyes_in(self, image: np.ndarray, mesh_px: np.ndarray, roi_scale: float = ROI_SCALE
                ) -> tuple[np.ndarray, np.ndarray]:
        """Refined points of both eyes of each face, image pixels.

        image: (H, W, 3) uint8 RGB; mesh_px: (N, 468, 2). Returns the contours (N, 2, 71, 2)
        (the points of ``EYE_MESH``) and the irises (N, 2, 5, 2), centre first; eye 0 is the
        subject's right. NaN for an eye without a crop (``eye_crop_maps``).
        """
        import cv2

        maps = eye_crop_maps(mesh_px, roi_scale)
        contour = np.full(maps.shape[:2] + (NUM_EYE, 2), np.nan)
        iris = np.full(maps.shape[:2] + (NUM_IRIS, 2), np.nan)
        # warpAffine samples the crop's pixel k at its centre, model coordinate k + 0.5.
        half = np.array([0.5, 0.5])
        for face, eye in zip(*np.nonzero(np.isfinite(maps).all(axis=(-1, -2)))):
            A = maps[face, eye]
            sample = np.hstack([A[:, :2], (A[:, :2] @ half + A[:, 2])[:, None]])
            crop = cv2.warpAffine(image, sample, (INPUT_PX, INPUT_PX), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            self._interpreter.set_tensor(self._input, crop[None].astype(np.float32) / 255.0)
            self._interpreter.invoke()
            out = self._interpreter.get_tensor(self._contour).reshape(NUM_EYE, 3)[:, :2].astype(np.float64)
            contour[face, eye] = to_image(out, A)
            out = self._interpreter.get_tensor(self._iris).reshape(NUM_IRIS, 3)[:, :2].astype(np.float64)
            iris[face, eye] = to_image(out, A)
        return contour, iris


def refined_mesh(mesh_px: np.ndarray, contour_px: np.ndarray) -> np.ndarray:
    """(N, 468, 2) the mesh with each eye's eyelid vertices (the first ``NUM_LID`` of
    ``EYE_MESH``) replaced by the refined contour (N, 2, 71, 2) where it is finite.

    The halos and the brow are not taken, though MediaPipe's pipeline takes them: on the
    real test frames the mesh's own brows (re-cropped, ``facemesh.roi_passes``) agree
    between two views to 2.6 px median, the iris model's to 5.5 px (docs/triangulation.md)."""
    mesh = np.array(mesh_px, dtype=np.float64)
    for eye in range(2):
        new = contour_px[:, eye, :NUM_LID]
        keep = np.isfinite(new).all(axis=-1)[..., None]
        lid = EYE_MESH[eye, :NUM_LID]
        mesh[:, lid] = np.where(keep, new, mesh[:, lid])
    return mesh
