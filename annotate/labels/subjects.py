"""Each subject's own head shape and how rigid each of their landmarks is, from the data.

Real faces move: jaw, lips, brows and lids shift by up to 1.5-2 cm against the skull while
people talk, smile, raise brows and blink, and a fit that treats every landmark alike
follows the mouth. After a first fit of the mean head to every face, the residual of each
landmark, expressed in the head frame, splits into

- a constant part per subject: where that person's face differs from the mean head. Its
  robust centre (per-coordinate median over the subject's faces) added to the mean head is
  the subject's own shape, re-expressed in its own canonical frame (WHENet's zero for that
  face, as WHENet's per-face fit defines it);
- a spread about that centre: sensor noise, which is the same for every landmark, plus
  non-rigid motion, which is not. The spread of each landmark against the subject's most
  rigid ones gives an inverse-variance weight: a lip corner that wanders 3 times as far as
  the eye corners counts 1/9 as much.

The second fit uses the subject's shape and these weights. Subjects with fewer than
``min_faces`` faces use the mean shape and the weights learnt over all subjects. Pure
numpy, no I/O.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from annotate.geometry.head_frame import canonicalize_landmarks
from annotate.labels.fit import HeadFits
from annotate.labels.head_model import HeadModel


@dataclass(frozen=True)
class SubjectConfig:
    """How subjects are learnt.

    enabled: learn shapes and weights (else every face uses the mean head, unweighted).
    min_faces: fewer faces of a subject -> the mean shape and the pooled weights.
    rigid_quantile: the spread of a subject's most rigid landmarks, as this quantile of the
    per-landmark spreads, is the reference (weight 1). min_weight: floor of the weights.
    max_faces: faces per subject kept for the statistics (evenly spaced), bounding memory.
    """

    enabled: bool = True
    min_faces: int = 30
    rigid_quantile: float = 0.2
    min_weight: float = 0.02
    max_faces: int = 2000


@dataclass(frozen=True)
class SubjectModels:
    """Per-subject shapes and weights for P subjects.

    persons: (P,) int ids; shapes_head: (P, 70, 3) cm, each subject's shape in its own
    canonical head frame (mean-model scale); weights: (P, 70) rigidity weights in
    [min_weight, 1]; spread_cm: (P, 70) median residual distance from the subject's shape;
    faces: (P,) faces the statistics used; own_shape: (P,) bool, False where the subject had
    too few faces and uses the mean shape. pooled_weights: (70,) for unknown subjects.
    """

    persons: np.ndarray
    shapes_head: np.ndarray
    weights: np.ndarray
    spread_cm: np.ndarray
    faces: np.ndarray
    own_shape: np.ndarray
    pooled_weights: np.ndarray
    mean_shape: np.ndarray

    def for_faces(self, persons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(shapes_head (M, 70, 3), weights (M, 70))`` for faces of the given person ids."""
        persons = np.asarray(persons)
        pos = {int(p): i for i, p in enumerate(self.persons)}
        index = np.array([pos.get(int(p), -1) for p in persons], dtype=np.int64)
        known = index >= 0
        shapes = np.where(known[:, None, None], self.shapes_head[np.maximum(index, 0)], self.mean_shape)
        weights = np.where(known[:, None], self.weights[np.maximum(index, 0)], self.pooled_weights)
        return shapes, weights

    def to_json(self) -> dict:
        return {
            "meaning": "per-subject head shapes (own canonical frame, cm) and landmark rigidity "
                       "weights learnt from the residuals of a first fit (annotate.labels.subjects)",
            "subjects": [
                {"person": int(p), "faces": int(n), "own_shape": bool(o),
                 "weights": np.round(w, 4).tolist(), "spread_cm": np.round(s, 4).tolist(),
                 "landmarks_head": np.round(x, 5).tolist()}
                for p, n, o, w, s, x in zip(self.persons, self.faces, self.own_shape, self.weights,
                                            self.spread_cm, self.shapes_head)],
            "pooled_weights": np.round(self.pooled_weights, 4).tolist(),
        }


def head_frame_residuals(shape_head: np.ndarray, landmarks_world: np.ndarray, fits: HeadFits) -> np.ndarray:
    """(M, 70, 3) residuals of M faces in their fitted head frames, at model scale.

    ``R^T (x - t) / s - shape``; NaN where the fit failed, the landmark is missing or the
    robust fit rejected it (weight 0).
    """
    X = np.asarray(landmarks_world, dtype=np.float64)
    local = np.einsum("mji,mnj->mni", fits.R_world_head, X - fits.t_world_head[:, None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        local = local / fits.scale[:, None, None]
    used = fits.ok[:, None] & (fits.landmark_weight > 0) & np.isfinite(local).all(-1)
    return np.where(used[..., None], local - shape_head, np.nan)


def _weights(spread: np.ndarray, config: SubjectConfig) -> np.ndarray:
    """(..., 70) inverse-variance weights relative to the most rigid landmarks' spread."""
    ref = np.nanquantile(spread, config.rigid_quantile, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = (ref / spread) ** 2
    return np.clip(np.where(np.isfinite(w), w, config.min_weight), config.min_weight, 1.0)


def _centre_and_spread(residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-landmark robust centre (70, 3) and spread (70,) of residuals (M, 70, 3)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # 'All-NaN slice': never seen
        centre = np.nanmedian(residuals, axis=0)
        spread = np.nanmedian(np.linalg.norm(residuals - centre, axis=-1), axis=0)
    return np.where(np.isfinite(centre), centre, 0.0), spread


def learn_subjects(model: HeadModel, residuals: np.ndarray, persons: np.ndarray,
                   config: SubjectConfig = SubjectConfig()) -> SubjectModels:
    """Subject shapes and rigidity weights from first-fit residuals.

    residuals: (M, 70, 3) ``head_frame_residuals`` of M faces; persons: (M,) their ids.
    """
    persons = np.asarray(persons)
    ids = np.unique(persons)
    _, pooled_spread = _centre_and_spread(residuals)
    pooled = _weights(pooled_spread, config)
    shapes, weights, spreads, counts, own = [], [], [], [], []
    for p in ids:
        r = residuals[persons == p]
        n = int(np.isfinite(r).all(-1).any(-1).sum())
        if n >= config.min_faces:
            centre, spread = _centre_and_spread(r)
            shape = canonicalize_landmarks(model.landmarks_head + centre, model.spec)
            w = _weights(spread, config)
        else:
            shape, spread, w = model.landmarks_head, pooled_spread, pooled
        shapes.append(shape)
        weights.append(w)
        spreads.append(spread)
        counts.append(n)
        own.append(n >= config.min_faces)
    return SubjectModels(ids, np.asarray(shapes), np.asarray(weights), np.asarray(spreads),
                         np.asarray(counts), np.asarray(own), pooled, model.landmarks_head)
