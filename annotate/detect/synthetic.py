"""Synthetic 2D detections: the ground truth of a synthetic sequence, projected and spoiled.

For tests and benchmarks of the triangulation path. This is the ONLY place in the
pipeline that reads a synthetic sequence's ground truth (``ground_truth.npz``).

In each view, a person's face is detected when at least ``min_visible_landmarks`` of its
70 points are visible there (the generator's own visibility rule: inside the image and
the lens model, not hidden by any head, computed by ray casting the heads). Then:

- a detected face is missed altogether with probability ``miss_fraction`` (a detector
  that fails in that view);
- each visible point gets Gaussian noise of ``sigma_px`` per axis; hidden points are not
  reported (NaN, confidence 0);
- each reported point is, with probability ``outlier_fraction``, replaced by a gross
  outlier: a uniformly random position inside the face's box (the bounding box of its
  projected points, 20% larger), as a confused detector puts a point somewhere on the face;
- confidences are drawn like detector scores: Beta(8, 3) (mean 0.73) for good points and
  Beta(5, 4) (mean 0.56) for outliers, overlapping so that confidence alone cannot find
  the outliers.

Projection and visibility use the TRUE cameras the videos were rendered with, stored in
``ground_truth.npz`` (``GroundTruth.rig``), looked up by name: the detector stands in for an
image-based one, so a calibration file altered afterwards (the audit's injected extrinsics
faults) must not move its detections. Sequences written before the true cameras were stored
fall back to the stage's rig (the calibration file).

Faces are returned in random order (association must do its job). Noise is drawn from a
generator seeded by (seed, frame, camera), so a view's detections do not depend on the
order in which views are asked for.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotate.detect.base import FaceDetections, ViewInput
from annotate.geometry.cameras import CameraRig

# Frames whose visibility is ray-cast together (bounded memory, few calls), as the generator does.
FRAMES_PER_CAST = 40


@dataclass(frozen=True)
class SyntheticDetectorConfig:
    """sigma_px: noise per axis; miss_fraction: faces missed per view; outlier_fraction:
    gross outliers among reported points; min_visible_landmarks: fewer visible points and
    the face is not detected in that view; seed: the noise stream."""

    sigma_px: float = 2.0
    miss_fraction: float = 0.2
    outlier_fraction: float = 0.1
    min_visible_landmarks: int = 8
    seed: int = 0


class SyntheticDetector:
    """Landmark backend over a synthetic sequence's ground truth (see the module docstring).

    seq_dir: the sequence folder holding ground_truth.npz; rig: the cameras the stage
    uses (the sequence's calibration, possibly a subset of its cameras, same order).
    ``self.rig`` is what the detector projects with: the true cameras of those names from
    the ground truth when it has them, else ``rig`` itself.
    """

    name = "synthetic"
    needs_images = False
    searches_head_boxes = False

    def __init__(self, seq_dir: str | Path, rig: CameraRig, config: SyntheticDetectorConfig = SyntheticDetectorConfig()):
        from annotate.synth.generate import load_ground_truth

        self.config = config
        self.truth = load_ground_truth(seq_dir)
        self.rig = true_cameras(self.truth.rig, rig, seq_dir)
        self._landmarks = self.truth.landmarks_world()                        # (F, P, 70, 3)
        self._frame_index = {int(f): k for k, f in enumerate(self.truth.frames)}
        self._caster = None
        self._visible: dict[int, np.ndarray] = {}

    def with_config(self, config: SyntheticDetectorConfig) -> "SyntheticDetector":
        """The same sequence with other noise settings, sharing the loaded ground truth and
        the ray-cast visibility (the expensive part)."""
        other = object.__new__(SyntheticDetector)
        other.__dict__.update(self.__dict__)
        other.config = config
        return other

    def _visibility(self, k: int) -> np.ndarray:
        """(C, P, 70) bool for frame index k: the generator's rule (``landmark_views``).

        Computed for blocks of FRAMES_PER_CAST frames with each mesh's ray-casting
        structure built once, and the current block kept: the stage asks for every camera
        of a frame, frame after frame.
        """
        block = k // FRAMES_PER_CAST
        if block not in self._visible:
            from annotate.head.raycast import HeadFrameCaster
            from annotate.head.visibility import VISIBLE, HeadPoses, landmark_visibility
            from annotate.synth.generate import truth_frames

            truth = self.truth
            if self._caster is None:
                # The generator's own meshes: the rendered faces, with each frame's expression.
                self._caster = truth_frames(truth)
            source = self._caster
            frames = slice(block * FRAMES_PER_CAST, min(len(truth.frames), (block + 1) * FRAMES_PER_CAST))
            n, P = frames.stop - frames.start, len(truth.scale)
            if source.deformers is None:
                caster, mesh_index = HeadFrameCaster(source.meshes), np.tile(np.arange(P), n)
            else:
                caster = HeadFrameCaster([source.mesh(k0, p) for k0 in range(frames.start, frames.stop)
                                          for p in range(P)])
                mesh_index = np.arange(n * P)
            heads = HeadPoses(truth.R_world_head[frames].reshape(-1, 3, 3), truth.t_world_head[frames].reshape(-1, 3),
                              np.tile(truth.scale, n), np.ones(n * P, bool), np.repeat(np.arange(n), P), mesh_index)
            code = landmark_visibility(self.rig, caster, heads, self._landmarks[frames].reshape(n * P, -1, 3)).code
            self._visible = {block: (code == VISIBLE).reshape(len(self.rig), n, P, -1)}
        return self._visible[block][:, k - block * FRAMES_PER_CAST]

    def detect(self, view: ViewInput) -> FaceDetections:
        k = self._frame_index.get(int(view.frame))
        if k is None:
            return FaceDetections.empty()
        cfg = self.config
        c = int(view.camera)
        visible = self._visibility(k)[c]                                      # (P, 70)
        rng = np.random.default_rng([cfg.seed, int(view.frame), c])
        found = (visible.sum(-1) >= cfg.min_visible_landmarks) & (rng.random(len(visible)) >= cfg.miss_fraction)
        people = rng.permutation(np.flatnonzero(found))
        clean = self.rig.subset([c]).project_world(self._landmarks[k, people])[0]   # (N, 70, 2)
        seen = visible[people]
        points = clean + rng.normal(0.0, cfg.sigma_px, clean.shape)
        boxes = _face_boxes(np.where(seen[..., None], clean, np.nan))
        outlier = seen & (rng.random(seen.shape) < cfg.outlier_fraction)
        lo, hi = boxes[:, None, :2], boxes[:, None, 2:]
        points = np.where(outlier[..., None], lo + rng.random(points.shape) * (hi - lo), points)
        confidence = np.where(outlier, rng.beta(5.0, 4.0, seen.shape), rng.beta(8.0, 3.0, seen.shape))
        return FaceDetections(np.where(seen[..., None], points, np.nan), np.where(seen, confidence, 0.0), boxes)


def true_cameras(truth_rig: CameraRig | None, rig: CameraRig, seq_dir: str | Path = "") -> CameraRig:
    """The cameras of ``rig`` (same names, same order) as ``truth_rig`` has them; ``rig`` when
    ``truth_rig`` is None (ground truth written before it stored the cameras)."""
    if truth_rig is None:
        return rig
    missing = [n for n in rig.names if n not in truth_rig.names]
    if missing:
        raise ValueError(f"{seq_dir}: cameras {missing} are not in the ground truth's cameras "
                         f"{list(truth_rig.names)}")
    return truth_rig.subset([truth_rig.names.index(n) for n in rig.names])


def _face_boxes(points_px: np.ndarray, margin: float = 0.2) -> np.ndarray:
    """(N, L, 2) points (NaN = absent) -> (N, 4) their bounding boxes, ``margin`` larger."""
    if len(points_px) == 0:
        return np.zeros((0, 4))
    lo, hi = np.nanmin(points_px, axis=1), np.nanmax(points_px, axis=1)
    pad = 0.5 * margin * (hi - lo)
    return np.concatenate([lo - pad, hi + pad], axis=1)


def true_people(detector: SyntheticDetector, frame: np.ndarray, camera: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """(N,) ground-truth person id of N detections, for measuring an association.

    frame, camera (N,): the detection's frame number and camera index in the detector's
    rig; points_px (N, 70, 2), NaN = not reported. Each detection belongs to the person
    whose true landmarks, projected into that camera, lie closest (median over the
    reported points): with noise of a few pixels and a minority of outliers this is the
    person the detector drew it from. -1 for frames the sequence lacks.
    """
    out = np.full(len(frame), -1, dtype=np.int64)
    for n, (f, c) in enumerate(zip(np.asarray(frame).tolist(), np.asarray(camera).tolist())):
        k = detector._frame_index.get(int(f))
        if k is None:
            continue
        projected = detector.rig.subset([int(c)]).project_world(detector._landmarks[k])[0]     # (P, 70, 2)
        with np.errstate(invalid="ignore"):
            distance = np.nanmedian(np.linalg.norm(projected - points_px[n][None], axis=-1), axis=1)
        out[n] = int(detector.truth.person_ids[int(np.nanargmin(distance))])
    return out
