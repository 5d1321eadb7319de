"""The mean head model: a 70-landmark template in the canonical head frame.

Built by generalised Procrustes analysis over the sequence's own published (or
triangulated) faces, then expressed in the canonical head frame of
``annotate.head.head_frame``; or loaded from a saved artefact so that several
sequences share one model.

Format 2 (``head_model.json`` version 2.x) uses WHENet's zero pose and stores, for the
converter of older labels, where its head frame lies in the eye-mouth frame that format 1
used (``eye_mouth_from_head``: a fixed rotation and origin shift of this model).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from annotate.core.atomic import write_text_atomic
from annotate.head.head_frame import (
    NUM_LANDMARKS,
    ORIENTATION_EYE_MOUTH,
    HeadFrameSpec,
    canonicalize_landmarks,
    head_frame_from_landmarks,
)
from annotate.geometry.procrustes import generalized_procrustes, umeyama

MODEL_FORMAT = "annotate.head_model"
MODEL_VERSION = "2.0.0"


@dataclass(frozen=True)
class HeadModel:
    """landmarks_head: (70, 3) cm in the canonical head frame (origin = head centre).

    spec: the head-frame parameters the model was canonicalised with (its helmet radius
    is the crop sphere at scale 1). faces_used: number of landmark sets averaged.
    """

    landmarks_head: np.ndarray
    spec: HeadFrameSpec = field(default_factory=HeadFrameSpec)
    faces_used: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        if np.shape(self.landmarks_head) != (NUM_LANDMARKS, 3):
            raise ValueError(f"HeadModel.landmarks_head must be (70, 3), got {np.shape(self.landmarks_head)}")
        if not np.isfinite(self.landmarks_head).all():
            raise ValueError("HeadModel.landmarks_head has non-finite values")

    def eye_mouth_from_head(self) -> tuple[np.ndarray, np.ndarray]:
        """Where this model's head frame lies in the eye-mouth frame of the same landmarks.

        Returns ``(R_eyemouth_head (3, 3), origin_eyemouth_cm (3,))``: a point x in this
        model's head frame is ``R @ x + origin`` in the eye-mouth frame (model scale). Labels
        made in the eye-mouth frame (labels 1.x) convert with ``R_cam_head_new = R_cam_head_old
        @ R`` and ``centre_new = centre_old + head_scale * R_cam_head_old @ origin``.
        """
        old = HeadFrameSpec(self.spec.centre_offset_cm, self.spec.helmet_radius_cm, ORIENTATION_EYE_MOUTH)
        A, o = head_frame_from_landmarks(self.landmarks_head, old)
        return A.T, A.T @ (-o)

    def to_json(self) -> dict:
        R_old, origin_old = self.eye_mouth_from_head()
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "units": "cm",
            "frame": "canonical head frame: x to the subject's left ear, y up, z out of the face, origin at the head centre",
            "landmark_order": "Panoptic face70: iBUG 68 + right pupil (68) + left pupil (69)",
            "spec": asdict(self.spec),
            "faces_used": self.faces_used,
            "source": self.source,
            "landmarks_head": np.round(self.landmarks_head, 5).tolist(),
            "eye_mouth_from_head": {
                "meaning": "x_eye_mouth = R @ x_head + origin_cm: this head frame in the eye-mouth "
                           "frame that labels 1.x used (annotate convert-labels applies it)",
                "R": np.round(R_old, 12).tolist(), "origin_cm": np.round(origin_old, 9).tolist()},
        }

    @classmethod
    def from_json(cls, doc: dict, path: str = "<dict>") -> HeadModel:
        if doc.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path}: not a head model file (format={doc.get('format')!r})")
        major = int(str(doc.get("version", "0")).split(".")[0])
        if major == 1:
            return upgrade_model_v1(doc, path)
        if major != int(MODEL_VERSION.split(".")[0]):
            raise ValueError(f"{path}: head model version {doc.get('version')} is not readable by {MODEL_VERSION}")
        spec = HeadFrameSpec(centre_offset_cm=tuple(doc["spec"]["centre_offset_cm"]),
                             helmet_radius_cm=float(doc["spec"]["helmet_radius_cm"]),
                             orientation=str(doc["spec"].get("orientation", "whenet")))
        return cls(np.asarray(doc["landmarks_head"], dtype=np.float64), spec,
                   int(doc.get("faces_used", 0)), str(doc.get("source", "")))


def upgrade_model_v1(doc: dict, path: str = "<dict>") -> HeadModel:
    """A format-1 model (eye-mouth head frame) re-expressed in WHENet's frame.

    The landmarks are the same shape; only the frame they are written in changes, so
    ``eye_mouth_from_head`` of the result is exactly the transform between the two
    versions' labels.
    """
    try:
        landmarks = np.asarray(doc["landmarks_head"], dtype=np.float64)
        spec = HeadFrameSpec(centre_offset_cm=tuple(doc["spec"]["centre_offset_cm"]),
                             helmet_radius_cm=float(doc["spec"]["helmet_radius_cm"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: head model version 1 is incomplete: {err}") from err
    return HeadModel(canonicalize_landmarks(landmarks, spec), spec, int(doc.get("faces_used", 0)),
                     f"{doc.get('source', '')}; upgraded from head model {doc.get('version')} (eye-mouth frame)")


def save_head_model(model: HeadModel, path: str | Path) -> Path:
    """Write the model as JSON atomically."""
    return write_text_atomic(path, json.dumps(model.to_json(), indent=1))


def load_head_model(path: str | Path) -> HeadModel:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read head model: {err}") from err
    return HeadModel.from_json(doc, str(path))


def build_head_model(landmarks: np.ndarray, scores: np.ndarray | None = None,
                     spec: HeadFrameSpec = HeadFrameSpec(), source: str = "") -> HeadModel:
    """Mean head from many landmark sets by robust generalised Procrustes analysis.

    landmarks: (M, 70, 3) in any frame (cm), NaN = missing; scores: (M, 70) weights or None.
    The result keeps the inputs' mean metric size, so fitted scales are near 1.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_LANDMARKS, 3):
        raise ValueError(f"build_head_model: landmarks must be (M, 70, 3), got {landmarks.shape}")
    if len(landmarks) < 3:
        raise ValueError(f"build_head_model: need at least 3 faces to build a mean head, got {len(landmarks)} "
                         f"(when the ingest rejected the others, its rejections.parquet names the reason and the file)")
    mean, _ = generalized_procrustes(landmarks, scores, robust=True)
    missing = ~np.isfinite(mean).all(axis=-1)
    if missing.any():
        mean = fill_from_reference(mean, missing)
        source = f"{source}; landmarks {np.flatnonzero(missing).tolist()} never observed, taken from the reference face"
    return HeadModel(canonicalize_landmarks(mean, spec), spec, len(landmarks), source)


def fill_from_reference(mean: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Complete a mean shape (70, 3) whose ``missing`` (70,) landmarks were never observed.

    The built-in reference adult face (the one the synthetic generator uses) is aligned to
    the observed landmarks by a similarity fit and lends its positions for the missing
    ones, so the model stays a full 70-point head; the fits never use those points anyway,
    since the data has no observation of them.
    """
    from annotate.head.face_model import base_face_landmarks

    reference = base_face_landmarks()
    T = umeyama(reference[~missing], mean[~missing])
    filled = mean.copy()
    filled[missing] = T.apply(reference[missing])
    return filled


def subsample_indices(num_rows: int, max_faces: int) -> np.ndarray:
    """Evenly spaced row indices (at most ``max_faces``) so GPA cost stays bounded."""
    if num_rows <= max_faces:
        return np.arange(num_rows)
    return np.unique(np.linspace(0, num_rows - 1, max_faces).round().astype(int))
