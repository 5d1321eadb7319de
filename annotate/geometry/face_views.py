"""Which cameras' detections of a face agree with each other: outliers are whole views.

A 2D landmark detector fails a face as a whole: points placed on an ear or the back of a
head, a face seen in profile whose 68 points drift together, another person's face. Such
a view moves every landmark of the face at once, and with two to a few views the
per-point RANSAC of ``triangulation.triangulate_points`` cannot outvote it: each landmark
may pick a different pair of views and the face comes out as a blend of a good view and a
bad one. With many views RANSAC's majority does the job, so only faces seen by at most
``MAX_VIEWS_CHECKED`` views are checked.

``consistent_views`` decides per face, before the triangulation proper. A set of views is
scored by triangulating every landmark from them with the same robust triangulation (so a
single wrong point does not count against its view) and taking, for each view of the set,
the median over landmarks of its reprojection error, px (measured in every view of the
set, also where RANSAC left the view out). The set agrees when every view's median is
within ``max_error_px``. A face keeps all its views when they agree, else the largest
subset of two or more views that agrees (the lowest worst median among equals); a face no
pair of whose views agrees keeps none, and the caller records why.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np

from annotate.geometry.cameras import CameraRig
from annotate.geometry.triangulation import TriangulationConfig, seen_views, triangulate_points

MAX_VIEWS_CHECKED = 6          # 57 subsets of >= 2 views; faces seen by more: RANSAC's majority


def view_median_errors_px(rig: CameraRig, points_px: np.ndarray, confidence: np.ndarray, use: np.ndarray,
                          config: TriangulationConfig = TriangulationConfig()) -> np.ndarray:
    """(C, M) median over landmarks of each used view's reprojection error, px, the
    landmarks triangulated from the used views of their face; a landmark seen by two used
    views and not triangulated counts as infinite (NaN where the view is not used or saw
    no landmark seen elsewhere).

    points_px: (C, M, L, 2) pixels; confidence: (C, M, L); use: (C, M) bool.
    """
    masked = np.where(use[..., None, None], points_px, np.nan)
    tri = triangulate_points(rig, masked, np.where(use[..., None], confidence, 0.0), config)
    error = np.linalg.norm(rig.project_world(tri.points_world) - masked, axis=-1)
    # A landmark two used views saw that could not be triangulated (views too far apart for
    # triangulate.max_repro_error_px) counts as a disagreement in each view that saw it.
    seen = np.isfinite(masked).all(-1)                                               # (C, M, L)
    failed = seen & (seen.sum(0) >= 2) & ~np.isfinite(tri.points_world).all(-1)
    error = np.where(failed, np.inf, error)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)            # views without a point: NaN
        return np.nanmedian(error, axis=-1)


def worst_view_error_px(rig: CameraRig, points_px: np.ndarray, confidence: np.ndarray, use: np.ndarray,
                        config: TriangulationConfig = TriangulationConfig()) -> np.ndarray:
    """(M,) the largest per-view median error of each face's used views, px (inf where a
    used view has no triangulated landmark)."""
    median = view_median_errors_px(rig, points_px, confidence, use, config)
    # A used view with no triangulated landmark disagrees; views not used do not count.
    return np.where(use, np.where(np.isnan(median), np.inf, median), -np.inf).max(axis=0)


def _best_subsets(rig, points_px, confidence, seen, faces, max_error_px, config) -> np.ndarray:
    """(C, len(faces)) views kept: every subset of >= 2 seen views scored in one batch."""
    subsets, owner = [], []
    for j, m in enumerate(faces):
        views = np.flatnonzero(seen[:, m])
        for n in range(2, len(views) + 1):
            for subset in itertools.combinations(views, n):
                subsets.append(np.isin(np.arange(len(seen)), subset))
                owner.append(j)
    use = np.stack(subsets, axis=1)                                                  # (C, S)
    owner = np.asarray(owner)
    worst = worst_view_error_px(rig, points_px[:, faces[owner]], confidence[:, faces[owner]], use, config)
    keep = np.zeros((len(seen), len(faces)), bool)
    size = use.sum(0)
    for j in range(len(faces)):
        mine = np.flatnonzero((owner == j) & (worst <= max_error_px))
        if len(mine):
            best = mine[np.lexsort((worst[mine], -size[mine]))[0]]                   # most views, then lowest
            keep[:, j] = use[:, best]
    return keep


def consistent_views(rig: CameraRig, points_px: np.ndarray, confidence: np.ndarray, max_error_px: float,
                     config: TriangulationConfig = TriangulationConfig()) -> np.ndarray:
    """(C, M) bool: the views of each face kept (module docstring).

    points_px: (C, M, L, 2) pixels, NaN = not seen; confidence: (C, M, L), <= 0 = not seen;
    max_error_px: the largest per-view median reprojection error of the views kept, px;
    config: the triangulation that scores them (the caller's own). Faces seen by fewer
    than two or more than MAX_VIEWS_CHECKED views keep what they have.
    """
    points_px = np.asarray(points_px, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    seen = seen_views(points_px, confidence).any(-1)                                 # (C, M)
    keep = seen.copy()
    count = seen.sum(0)
    checked = np.flatnonzero((count >= 2) & (count <= MAX_VIEWS_CHECKED))
    if not len(checked):
        return keep
    agree = worst_view_error_px(rig, points_px[:, checked], confidence[:, checked], seen[:, checked],
                                config) <= max_error_px
    faces = checked[~agree]
    if len(faces):
        keep[:, faces] = _best_subsets(rig, points_px, confidence, seen, faces, max_error_px, config)
    return keep
