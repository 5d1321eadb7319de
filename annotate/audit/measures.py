"""What the audit measures about each label and each head fit. Pure computation.

Every function takes arrays and returns arrays; NaN means "could not be measured" (no
detection in that view, no neighbour in the track, no body), never 0. The checks
(``annotate.audit.checks``) threshold these numbers.

Frames and units: world cm, image px (distorted, OpenCV pixel centres), degrees, seconds.
"""
from __future__ import annotations

import numpy as np

from annotate.geometry.rotations import geodesic_distance

# Body joints (Panoptic COCO-19) that sit on the face, and the face70 landmark each sits on:
# nose <- nose tip, eyes <- pupils, ears <- the contour ends by the ears.
BODY_FACE_JOINTS = np.array([1, 15, 17, 16, 18])          # nose, l_eye, r_eye, l_ear, r_ear
FACE_LANDMARK_OF_JOINT = np.array([30, 69, 68, 16, 0])
MIN_BODY_JOINT_CONFIDENCE = 0.1
MIN_POINTS_FOR_REPROJECTION = 5
# Parameters of a similarity fit (rotation 3, translation 3, scale 1): degrees of freedom.
SIMILARITY_PARAMETERS = 7


def reprojection_px(fitted_px: np.ndarray, detected_px: np.ndarray,
                    min_points: int = MIN_POINTS_FOR_REPROJECTION) -> np.ndarray:
    """Median distance (N,) px between the fitted model's projected landmarks and a view's
    detections, over the points finite in both; NaN with fewer than ``min_points``.

    fitted_px, detected_px: (N, L, 2). The median makes a few detector outliers harmless,
    while a miscalibrated camera or a wrong fit moves every point.
    """
    d = np.linalg.norm(np.asarray(fitted_px, np.float64) - np.asarray(detected_px, np.float64), axis=-1)
    enough = np.isfinite(d).sum(axis=-1) >= min_points
    out = np.full(len(d), np.nan)
    if enough.any():
        out[enough] = np.nanmedian(d[enough], axis=-1)
    return out


def box_side_px(box: np.ndarray) -> np.ndarray:
    """(N,) the longer side of boxes (N, 4) = (x0, y0, x1, y1) px."""
    box = np.asarray(box, np.float64)
    return np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])


def track_order(sequence: np.ndarray, person: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """(M,) indices sorting fits into tracks: by sequence, person, then frame."""
    return np.lexsort((frame, person, sequence))


def _track_speeds(sequence: np.ndarray, person: np.ndarray, frame: np.ndarray, fps: float, steps: int,
                  max_gap, distance, both_sides: bool = False) -> np.ndarray:
    """Speeds between each fit and the fits 1..``steps`` rows before it in its track.

    Rows are put into tracks (``track_order``); the pair (row i - k, row i) counts when both
    are of the same sequence and person and at most ``max_gap(k)`` frames apart. distance:
    ``(i, j) -> (N,)`` for index arrays into the inputs; speed = distance x fps / frames.
    Returns (M, steps) in input order, column k-1 = to the k-th previous fit (NaN where
    there is none); with ``both_sides``, (M, 2 steps): then columns steps..2 steps-1 hold
    the same pairs seen from the earlier fit (to the k-th next fit), computed once.
    """
    order = track_order(sequence, person, frame)
    s, p, f = sequence[order], person[order], frame[order]
    M = len(f)
    speeds = np.full((M, 2 * steps if both_sides else steps), np.nan)
    for k in range(1, min(steps, M - 1) + 1):
        gap = f[k:] - f[:-k]
        ok = (s[k:] == s[:-k]) & (p[k:] == p[:-k]) & (gap > 0) & (gap <= max_gap(k))
        v = np.where(ok, distance(order[:-k], order[k:]) * fps / np.maximum(gap, 1), np.nan)
        speeds[k:, k - 1] = v
        if both_sides:
            speeds[:-k, steps + k - 1] = v
    out = np.empty_like(speeds)
    out[order] = speeds
    return out


def _reduce_rows(values: np.ndarray, reduce) -> np.ndarray:
    """(M,) ``reduce(values[rows], axis=1)`` over the rows with a finite value, else NaN."""
    out = np.full(len(values), np.nan)
    have = np.isfinite(values).any(axis=1)
    out[have] = reduce(values[have], axis=1)
    return out


def head_jump_speed(sequence: np.ndarray, person: np.ndarray, frame: np.ndarray, centre_world: np.ndarray,
                    fps: float, max_gap: int = 3, lookback: int = 2) -> np.ndarray:
    """(M,) cm/s: the smallest head-centre speed from any of the track's previous
    ``lookback`` fits (each at most ``max_gap`` frames per step back) to this one.

    Inputs (M,) in any order, centre (M, 3) cm. A jump that stays (an identity switch) is
    fast from every earlier fit; the fit after a single wrong one is slow from the fit
    before that, so it is not taken for a jump. NaN for a track's first fit.
    """
    c = np.asarray(centre_world, np.float64)
    speeds = _track_speeds(sequence, person, frame, fps, lookback, lambda k: k * max_gap,
                           lambda i, j: np.linalg.norm(c[j] - c[i], axis=-1))
    return _reduce_rows(speeds, np.nanmin)


def neighbour_angular_speed(sequence: np.ndarray, person: np.ndarray, frame: np.ndarray, R_world_head: np.ndarray,
                            fps: float, neighbours: int = 3, max_gap: int = 3) -> np.ndarray:
    """(M,) deg/s: the median, over up to ``neighbours`` fits either side in the same track
    (at most ``max_gap`` frames away), of the angular speed between this fit and that one.

    Inputs (M,) in any order, R (M, 3, 3). A single wrong fit (a mirrored face flips the
    head) is far from ALL its neighbours, so its median is large; its clean neighbours keep
    a small median because most of THEIR neighbours are clean. NaN for a fit alone in its
    window.
    """
    R = np.asarray(R_world_head, np.float64)
    speeds = _track_speeds(sequence, person, frame, fps, neighbours, lambda k: max_gap,
                           lambda i, j: np.degrees(geodesic_distance(R[i], R[j])), both_sides=True)
    return _reduce_rows(speeds, np.nanmedian)


def body_head_distance_cm(model_landmarks_world: np.ndarray, joints_world: np.ndarray,
                          joint_confidence: np.ndarray) -> np.ndarray:
    """(M,) cm: median distance between the body's face joints (nose, eyes, ears) and the
    fitted head model's landmarks they sit on, over the joints the body has.

    model_landmarks_world: (M, 70, 3); joints_world: (M, 19, 3); joint_confidence: (M, 19).
    NaN where the body has none of those joints (or no body: pass NaN joints).
    """
    joints = np.asarray(joints_world, np.float64)[:, BODY_FACE_JOINTS]
    conf = np.asarray(joint_confidence, np.float64)[:, BODY_FACE_JOINTS]
    model = np.asarray(model_landmarks_world, np.float64)[:, FACE_LANDMARK_OF_JOINT]
    d = np.linalg.norm(joints - model, axis=-1)
    d[~(conf >= MIN_BODY_JOINT_CONFIDENCE)] = np.nan
    out = np.full(len(d), np.nan)
    have = np.isfinite(d).any(axis=1)
    out[have] = np.nanmedian(d[have], axis=1)
    return out


def match_detections(label_frame: np.ndarray, fitted_px: np.ndarray, box_side: np.ndarray,
                     detection_frame: np.ndarray, detected_px: np.ndarray, max_sides: float = 1.0,
                     label_person: np.ndarray | None = None, detection_person: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Pair one camera's labels with its detections, frame by frame, by least reprojection.

    The audit does its own matching instead of trusting the detection stage's person ids:
    a miscalibrated camera's faces miss their projected head priors and stay unassigned
    there, yet they are exactly what the per-camera check must see. With person ids given
    (detection_person -1 = claimed by nobody), a detection the stage gave to someone else
    is not a candidate: where a head's own face was missed, a neighbour's is not taken for it.

    label_frame (N,), fitted_px (N, L, 2), box_side (N,) px; detection_frame (K,),
    detected_px (K, L, 2). Returns (N,) the matched detection's index (-1 = none) and (N,)
    its reprojection (median px, ``reprojection_px``; NaN = none). A pair costing more than
    ``max_sides`` box sides is not a match (another face, or no face of this label).
    """
    from scipy.optimize import linear_sum_assignment

    index = np.full(len(label_frame), -1, dtype=np.int64)
    cost_out = np.full(len(label_frame), np.nan)
    for f in np.intersect1d(label_frame, detection_frame):
        rows, dets = np.flatnonzero(label_frame == f), np.flatnonzero(detection_frame == f)
        cost = np.stack([reprojection_px(fitted_px[rows], np.broadcast_to(detected_px[d], fitted_px[rows].shape))
                         for d in dets], axis=1)                                # (rows, dets)
        allowed = np.isfinite(cost) & (cost <= max_sides * box_side[rows, None])
        if label_person is not None and detection_person is not None:
            owner = detection_person[dets][None, :]
            allowed &= (owner == -1) | (owner == label_person[rows, None])
        if not allowed.any():
            continue
        r, c = linear_sum_assignment(np.where(allowed, cost, 1e12))
        ok = allowed[r, c]
        index[rows[r[ok]]] = dets[c[ok]]
        cost_out[rows[r[ok]]] = cost[r[ok], c[ok]]
    return index, cost_out
