"""Where each person's head is, before any face is detected: priors for boxes and association.

A prior comes from the body skeleton (hdPose3d: nose, eyes and ears) or, when the body is
missing, from the person's face landmarks of the previous frame. It gives a head centre and
a radius in world cm, and the world points to compare detections with.

COCO-19 face joints (annotate.panoptic.bodies.JOINT_NAMES): 1 nose, 15 left eye, 16 left
ear, 17 right eye, 18 right ear. Their face70 counterparts: nose tip 30, left pupil 69,
contour end 16 (by the left ear), right pupil 68, contour end 0 (by the right ear).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from annotate.geometry.cameras import CameraRig, project_camera_xyz
from annotate.head.per_view import sphere_outline_xyz

FACE_JOINTS = (1, 15, 16, 17, 18)               # nose, l_eye, l_ear, r_eye, r_ear (COCO-19)
FACE_JOINT_LANDMARKS = (30, 69, 16, 68, 0)      # the face70 points they sit on
# Radius of the sphere that holds the head around the prior's centre, cm. The crop sphere
# of the head model is 12.5 cm; a little more covers the prior's own error.
HEAD_RADIUS_CM = 13.0


@dataclass(frozen=True)
class HeadPriors:
    """P people's heads in one frame.

    person: (P,) Panoptic person ids. centre_world: (P, 3) cm; radius_cm: (P,).
    anchors_world: (P, 5, 3) cm, the face points to match detections against, in the
    order of FACE_JOINTS; NaN where unknown. anchor_landmarks: (5,) their face70 indices.
    """

    person: np.ndarray
    centre_world: np.ndarray
    radius_cm: np.ndarray
    anchors_world: np.ndarray

    def __len__(self) -> int:
        return len(self.person)


def priors_from_bodies(person: np.ndarray, joints_world: np.ndarray, confidence: np.ndarray) -> HeadPriors:
    """Priors from body skeletons: person (P,), joints_world (P, 19, 3) cm, confidence (P, 19).

    The head centre is the ear midpoint when both ears are valid (the ear canals lie within
    ~1 cm of the head model's centre); else the mean of the valid face joints, with a 1.5x
    radius for the unknown offset. People without any valid face joint get NaN (no prior).
    """
    joints = np.asarray(joints_world, dtype=np.float64)[:, FACE_JOINTS]
    valid = np.isfinite(joints).all(-1) & (np.asarray(confidence)[:, FACE_JOINTS] >= 0)
    anchors = np.where(valid[..., None], joints, np.nan)
    ears = valid[:, 2] & valid[:, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)                       # people without face joints
        mean = np.nanmean(np.where(valid[..., None], joints, np.nan), axis=1)
    centre = np.where(ears[:, None], 0.5 * (joints[:, 2] + joints[:, 4]), mean)
    radius = np.where(ears, HEAD_RADIUS_CM, 1.5 * HEAD_RADIUS_CM)
    return HeadPriors(np.asarray(person, dtype=np.int64), centre, radius, anchors)


def priors_from_landmarks(person: np.ndarray, landmarks_world: np.ndarray) -> HeadPriors:
    """Priors from face landmarks (P, 70, 3) cm (e.g. the previous frame's triangulation).

    The centre is the landmarks' centroid pushed 6 cm behind the face (the face is the
    front of a head whose centre lies ~8.5 cm behind the eyes); where the face direction
    cannot be formed the centroid is used with a larger radius.
    """
    lm = np.asarray(landmarks_world, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)                       # faces without eyes or mouth
        centroid = np.nanmean(lm, axis=1)
        eyes_r, eyes_l = np.nanmean(lm[:, 36:42], axis=1), np.nanmean(lm[:, 42:48], axis=1)
        mouth = np.nanmean(lm[:, 48:60], axis=1)
    across, up = eyes_l - eyes_r, 0.5 * (eyes_l + eyes_r) - mouth
    forward = np.cross(across, up)
    norm = np.linalg.norm(forward, axis=-1, keepdims=True)
    ok = np.isfinite(norm[:, 0]) & (norm[:, 0] > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.where(ok[:, None], centroid - 6.0 * forward / norm, centroid)
    radius = np.where(ok, HEAD_RADIUS_CM, 1.5 * HEAD_RADIUS_CM)
    anchors = lm[:, list(FACE_JOINT_LANDMARKS)]
    return HeadPriors(np.asarray(person, dtype=np.int64), centre, radius, anchors)


def stack_priors(*priors: HeadPriors) -> HeadPriors:
    """One HeadPriors from several (people concatenated in order)."""
    return HeadPriors(np.concatenate([p.person for p in priors]),
                      np.concatenate([p.centre_world for p in priors]),
                      np.concatenate([p.radius_cm for p in priors]),
                      np.concatenate([p.anchors_world for p in priors]))


def head_boxes_px(rig: CameraRig, priors: HeadPriors, num_points: int = 16) -> np.ndarray:
    """(C, P, 4) x0, y0, x1, y1 pixel boxes of each prior's head sphere in each camera.

    The sphere's exact outline (tangent circle) through the lens model, as the label stage
    boxes heads; NaN where the sphere is (partly) behind the camera or has no prior.
    """
    centre_cam = rig.world_to_camera(priors.centre_world)                      # (C, P, 3)
    radius = np.broadcast_to(priors.radius_cm, centre_cam.shape[:-1])
    ox, oy, oz = sphere_outline_xyz(centre_cam, radius, num_points)          # (C, P, K)
    u, v = project_camera_xyz(ox, oy, oz, rig.K[:, None, None], rig.dist[:, None, None])
    box = np.stack([u.min(-1), v.min(-1), u.max(-1), v.max(-1)], axis=-1)
    behind = ~(oz > 0).all(-1)
    return np.where(behind[..., None], np.nan, box)


def project_priors(rig: CameraRig, priors: HeadPriors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Priors in every camera: anchors (C, P, 5, 2) px, head centre (C, P, 2) px, head radius (C, P) px.

    The radius in pixels is the sphere radius over its depth times the focal length: the
    scale that association costs are measured in.
    """
    anchors_px = rig.project_world(priors.anchors_world)                       # (C, P, 5, 2)
    centre_px = rig.project_world(priors.centre_world)                         # (C, P, 2)
    depth = rig.world_to_camera(priors.centre_world)[..., 2]                   # (C, P)
    focal = np.sqrt(rig.K[:, 0, 0] * rig.K[:, 1, 1])[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        radius_px = np.where(depth > 0, focal * priors.radius_cm[None] / depth, np.nan)
    return anchors_px, centre_px, radius_px
