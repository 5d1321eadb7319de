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
within ``max_error_px`` times the view's tolerance. A face keeps all its views when they
agree, else the largest subset of two or more views that agrees (the lowest worst median
among equals); a face no pair of whose views agrees keeps none, and the caller records why.

Tolerances (``threshold_tolerance``): a landmark detector's errors grow with the face it
is given (its output is a fixed-size crop scaled back to the image), so pixel thresholds
set for the faces of 1080p cameras would reject every face of a 4K camera or of a rig that
films faces close up. The thresholds hold up to a face size (``threshold_face_px``, the
longer side of the bounding box of the face's landmarks in that view) and grow in
proportion above it.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np

from annotate.geometry.cameras import CameraRig
from annotate.geometry.triangulation import TriangulationConfig, seen_views, triangulate_points

MAX_VIEWS_CHECKED = 6          # 57 subsets of >= 2 views; faces seen by more: RANSAC's majority


def face_size_px(points_px: np.ndarray) -> np.ndarray:
    """(C, M) the longer side of the bounding box of each face's finite landmarks in each
    view, px; NaN where the view saw none. points_px: (C, M, L, 2), NaN = not seen."""
    points = np.asarray(points_px, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)            # views without a point: NaN
        extent = np.nanmax(points, axis=-2) - np.nanmin(points, axis=-2)            # (C, M, 2)
    return extent.max(axis=-1)


def threshold_tolerance(points_px: np.ndarray, threshold_face_px: float | None) -> np.ndarray:
    """(C, M) >= 1: the factor each view's pixel thresholds are widened by for a face,
    ``max(1, face size / threshold_face_px)`` (``face_size_px``); 1 where the view saw
    nothing or threshold_face_px is None (thresholds fixed in px)."""
    if threshold_face_px is None:
        return np.ones(np.shape(points_px)[:2])
    if not threshold_face_px > 0:
        raise ValueError(f"threshold_face_px must be > 0 or None, got {threshold_face_px}")
    return np.maximum(np.nan_to_num(face_size_px(points_px) / threshold_face_px, nan=1.0), 1.0)


def view_median_errors_px(rig: CameraRig, points_px: np.ndarray, confidence: np.ndarray, use: np.ndarray,
                          config: TriangulationConfig = TriangulationConfig(),
                          tolerance: np.ndarray | None = None) -> np.ndarray:
    """(C, M) median over landmarks of each used view's reprojection error, px, the
    landmarks triangulated from the used views of their face; a landmark seen by two used
    views and not triangulated counts as infinite (NaN where the view is not used or saw
    no landmark seen elsewhere).

    points_px: (C, M, L, 2) pixels; confidence: (C, M, L); use: (C, M) bool; tolerance:
    (C, M) >= 1 threshold factors of the triangulation (None = 1).
    """
    masked = np.where(use[..., None, None], points_px, np.nan)
    tri = triangulate_points(rig, masked, np.where(use[..., None], confidence, 0.0), config,
                             None if tolerance is None else np.asarray(tolerance)[..., None])
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
                        config: TriangulationConfig = TriangulationConfig(),
                        tolerance: np.ndarray | None = None) -> np.ndarray:
    """(M,) the largest per-view median error of each face's used views, px, each divided
    by its view's tolerance (C, M) when given (inf where a used view has no triangulated
    landmark)."""
    median = view_median_errors_px(rig, points_px, confidence, use, config, tolerance)
    if tolerance is not None:
        median = median / tolerance
    # A used view with no triangulated landmark disagrees; views not used do not count.
    return np.where(use, np.where(np.isnan(median), np.inf, median), -np.inf).max(axis=0)


def _best_subsets(rig, points_px, confidence, seen, faces, max_error_px, config, tolerance) -> np.ndarray:
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
    worst = worst_view_error_px(rig, points_px[:, faces[owner]], confidence[:, faces[owner]], use, config,
                                tolerance[:, faces[owner]])
    keep = np.zeros((len(seen), len(faces)), bool)
    size = use.sum(0)
    for j in range(len(faces)):
        mine = np.flatnonzero((owner == j) & (worst <= max_error_px))
        if len(mine):
            best = mine[np.lexsort((worst[mine], -size[mine]))[0]]                   # most views, then lowest
            keep[:, j] = use[:, best]
    return keep


def consistent_views(rig: CameraRig, points_px: np.ndarray, confidence: np.ndarray, max_error_px: float,
                     config: TriangulationConfig = TriangulationConfig(),
                     tolerance: np.ndarray | None = None) -> np.ndarray:
    """(C, M) bool: the views of each face kept (module docstring).

    points_px: (C, M, L, 2) pixels, NaN = not seen; confidence: (C, M, L), <= 0 = not seen;
    max_error_px: the largest per-view median reprojection error of the views kept, px;
    config: the triangulation that scores them (the caller's own); tolerance: (C, M) >= 1,
    each view's factor on max_error_px and on the triangulation's thresholds
    (``threshold_tolerance``; None = 1). Faces seen by fewer than two or more than
    MAX_VIEWS_CHECKED views keep what they have.
    """
    points_px = np.asarray(points_px, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    tolerance = np.ones(points_px.shape[:2]) if tolerance is None else np.asarray(tolerance, dtype=np.float64)
    seen = seen_views(points_px, confidence).any(-1)                                 # (C, M)
    keep = seen.copy()
    count = seen.sum(0)
    checked = np.flatnonzero((count >= 2) & (count <= MAX_VIEWS_CHECKED))
    if not len(checked):
        return keep
    agree = worst_view_error_px(rig, points_px[:, checked], confidence[:, checked], seen[:, checked],
                                config, tolerance[:, checked]) <= max_error_px
    faces = checked[~agree]
    if len(faces):
        keep[:, faces] = _best_subsets(rig, points_px, confidence, seen, faces, max_error_px, config, tolerance)
    return keep
