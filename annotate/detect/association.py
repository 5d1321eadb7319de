"""Which detected face in a view belongs to which person.

Each detection is compared with each person's prior (``annotate.detect.heads``) projected
into the view: its nose tip, eyes and the contour ends by the ears against the prior's
anchors (body nose/eyes/ears, or the previous frame's landmarks at those points). The cost
is the median anchor distance in units of the person's projected head radius, so one
threshold works for near and far cameras. A face showing none of those points (a jaw seen
from behind) is compared by the centroid of its points against the projected head centre,
at half weight: face points lie up to ~0.7 radius from the head centre by construction. The assignment minimises the total cost
(Hungarian), one face per person and one person per face; pairs costlier than
``max_cost`` stay unassigned.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from annotate.detect.base import FaceDetections

RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)
# Cost given to impossible pairs so the assignment never prefers them (any finite number
# well above every real threshold).
NO_MATCH = 1e6


def detection_anchors(points_px: np.ndarray) -> np.ndarray:
    """(D, L, 2) detected points -> (D, 5, 2) nose, left eye, left ear, right eye, right ear.

    Eyes are the pupils when the layout has them (70 points), else the eye-contour means;
    ears are the jaw-contour ends 16 (left) and 0 (right).
    """
    pts = np.asarray(points_px, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        right = np.nanmean(pts[:, RIGHT_EYE], axis=1) if len(pts) else np.zeros((0, 2))
        left = np.nanmean(pts[:, LEFT_EYE], axis=1) if len(pts) else np.zeros((0, 2))
    if pts.shape[1] == 70:
        right = np.where(np.isfinite(pts[:, 68]), pts[:, 68], right)
        left = np.where(np.isfinite(pts[:, 69]), pts[:, 69], left)
    return np.stack([pts[:, 30], left, pts[:, 16], right, pts[:, 0]], axis=1)


CENTROID_WEIGHT = 0.5


def association_cost(points_px: np.ndarray, prior_anchors_px: np.ndarray, centre_px: np.ndarray,
                     radius_px: np.ndarray) -> np.ndarray:
    """(D, P) cost in head radii (module docstring); NO_MATCH where nothing is comparable.

    points_px: (D, L, 2) detections; prior_anchors_px: (P, 5, 2) NaN = unknown;
    centre_px: (P, 2) projected head centres; radius_px (P,).
    """
    d = np.linalg.norm(detection_anchors(points_px)[:, None] - prior_anchors_px[None], axis=-1)  # (D, P, 5)
    centroid = np.nanmean(points_px, axis=1)                                                     # (D, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        anchors = np.nanmedian(d, axis=-1) / radius_px[None]
        centres = CENTROID_WEIGHT * np.linalg.norm(centroid[:, None] - centre_px[None], axis=-1) / radius_px[None]
    cost = np.where(np.isfinite(anchors), anchors, centres)
    return np.where(np.isfinite(cost), cost, NO_MATCH)


def assign(cost: np.ndarray, max_cost: float) -> np.ndarray:
    """(D, P) cost -> (D,) person index per detection, -1 = unassigned (Hungarian, gated)."""
    out = np.full(cost.shape[0], -1, dtype=np.int64)
    if cost.size == 0:
        return out
    rows, cols = linear_sum_assignment(cost)
    ok = cost[rows, cols] <= max_cost
    out[rows[ok]] = cols[ok]
    return out


def associate_view(detections: FaceDetections, prior_anchors_px: np.ndarray, centre_px: np.ndarray,
                   radius_px: np.ndarray, max_cost: float) -> np.ndarray:
    """(D,) person index (into the priors) of each detected face in one view, -1 = none.

    prior_anchors_px (P, 5, 2), centre_px (P, 2), radius_px (P,): the priors in this view.
    """
    if len(detections) == 0 or len(radius_px) == 0:
        return np.full(len(detections), -1, dtype=np.int64)
    import warnings

    with warnings.catch_warnings():
        # All-NaN slices (a face without eyes, a prior without anchors) are expected here.
        warnings.simplefilter("ignore", RuntimeWarning)
        cost = association_cost(detections.points_px, prior_anchors_px, centre_px, radius_px)
    return assign(cost, max_cost)
