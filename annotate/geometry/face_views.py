"""Which cameras' detections of a face agree with each other: outliers are whole views.

A 2D landmark detector fails a face as a whole: points placed on an ear or the back of a
head, a face seen in profile whose 68 points drift together, another person's face. Such
a view moves every landmark of the face at once, and the per-point RANSAC of
``triangulation.triangulate_points`` cannot see it: with few views, each landmark may pick
a different pair of views and the face comes out as a blend of a good view and a bad one.

``consistent_views`` decides per face, before the per-point triangulation. A set of views
is scored by triangulating every landmark from all of them (no RANSAC) and taking the
median, over the views and landmarks, of the reprojection error in pixels. The face keeps
all its views when they score within ``max_error_px_px``; else the largest subset of two or more views that does (the lowest score
among equals), searched exhaustively up to ``MAX_EXHAUSTIVE_VIEWS`` views and by dropping
the worst view (largest median) one at a time beyond. A face none of whose pairs agree
keeps no view: the caller records why. Faces whose views agree at once cost one linear
triangulation more.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np

from annotate.geometry.cameras import CameraRig
from annotate.geometry.triangulation import TriangulationConfig, triangulate_points

MAX_EXHAUSTIVE_VIEWS = 6          # 57 subsets of >= 2 views; more views: greedy removal
# Every view of the face takes part: thresholds far beyond any image.
_ALL_VIEWS = TriangulationConfig(inlier_threshold_px=1e9, max_repro_error_px=1e9, hypotheses=1, first_round=1)


def view_errors(rig: CameraRig, points_px: np.ndarray, confidence: np.ndarray, use: np.ndarray) -> np.ndarray:
    """(C, M, L) reprojection error, px, of each landmark triangulated from the
    used views of its face (NaN where the view is not used or the point not triangulated).

    points_px: (C, M, L, 2) pixels; confidence: (C, M, L); use: (C, M) bool.
    """
    masked = np.where(use[..., None, None], points_px, np.nan)
    tri = triangulate_points(rig, masked, np.where(use[..., None], confidence, 0.0), _ALL_VIEWS)
    return np.linalg.norm(rig.project_world(tri.points_world) - masked, axis=-1)


def _median(error: np.ndarray, axes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)            # nothing triangulated: NaN
        return np.nanmedian(error, axis=axes)


def score(rig: CameraRig, points_px: np.ndarray, confidence: np.ndarray, use: np.ndarray) -> np.ndarray:
    """(M,) median reprojection error, px, over the used views and landmarks."""
    error = view_errors(rig, points_px, confidence, use)
    return _median(np.moveaxis(error, 0, 1).reshape(error.shape[1], -1), 1)


def _best_subsets(rig, points_px, confidence, seen, faces, max_error_px) -> np.ndarray:
    """(C, len(faces)) views kept: every subset of >= 2 seen views scored in one batch."""
    subsets, owner = [], []
    for j, m in enumerate(faces):
        views = np.flatnonzero(seen[:, m])
        for n in range(2, len(views) + 1):
            subsets += [np.isin(np.arange(len(seen)), s) for s in itertools.combinations(views, n)]
            owner += [j] * (len(list(itertools.combinations(views, n))))
    use = np.stack(subsets, axis=1)                                                  # (C, S)
    owner = np.asarray(owner)
    s = score(rig, points_px[:, faces[owner]], confidence[:, faces[owner]], use)
    keep = np.zeros((len(seen), len(faces)), bool)
    size = use.sum(0)
    for j in range(len(faces)):
        mine = np.flatnonzero((owner == j) & (s <= max_error_px))
        if len(mine):
            best = mine[np.lexsort((s[mine], -size[mine]))[0]]                       # most views, then lowest
            keep[:, j] = use[:, best]
    return keep


def _greedy(rig, points_px, confidence, seen, faces, max_error_px) -> np.ndarray:
    """(C, len(faces)) views kept by dropping the worst view until the rest agree."""
    keep = seen[:, faces].copy()
    todo = np.arange(len(faces))
    while len(todo):
        error = view_errors(rig, points_px[:, faces[todo]], confidence[:, faces[todo]], keep[:, todo])
        total = _median(np.moveaxis(error, 0, 1).reshape(len(todo), -1), 1)
        bad = ~(total <= max_error_px)
        per_view = _median(error, 2)                                                 # (C, T)
        worst = np.argmax(np.where(np.isfinite(per_view), per_view, -np.inf), axis=0)
        two = keep[:, todo].sum(0) <= 2
        keep[:, todo[bad & two]] = False                     # the last two views disagree
        drop = bad & ~two
        keep[worst[drop], todo[drop]] = False
        todo = todo[drop]
    return keep


def consistent_views(rig: CameraRig, points_px: np.ndarray, confidence: np.ndarray, max_error_px: float) -> np.ndarray:
    """(C, M) bool: the views of each face kept (module docstring).

    points_px: (C, M, L, 2) pixels, NaN = not seen; confidence: (C, M, L), <= 0 = not seen;
    max_error_px: the largest median reprojection error of the views kept, px.
    A face seen by fewer than two views keeps what it has (nothing to compare).
    """
    points_px = np.asarray(points_px, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    seen = (np.isfinite(points_px).all(-1) & (confidence > 0)).any(-1)              # (C, M)
    keep = seen.copy()
    several = np.flatnonzero(seen.sum(0) >= 2)
    if not len(several):
        return keep
    agree = score(rig, points_px[:, several], confidence[:, several], seen[:, several]) <= max_error_px
    check = several[~agree]
    few = check[seen[:, check].sum(0) <= MAX_EXHAUSTIVE_VIEWS]
    many = check[seen[:, check].sum(0) > MAX_EXHAUSTIVE_VIEWS]
    if len(few):
        keep[:, few] = _best_subsets(rig, points_px, confidence, seen, few, max_error_px)
    if len(many):
        keep[:, many] = _greedy(rig, points_px, confidence, seen, many, max_error_px)
    return keep
