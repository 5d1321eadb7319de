"""Which of a face's alternative landmark sets to triangulate: the consensus of two views.

A landmark model run on a crop of a face answers differently for different crops when the
face is seen steeply or in profile: the points can settle on the wrong features (the eyes
on the hairline) and stay there, self-consistent, whatever the model's own face score
says. Given each view's landmarks from K crops of the face (``FaceDetections.
alternatives_px``), for every two views a and b:

1. every combination (i, j) of a's and b's alternatives is triangulated (two-view DLT,
   per landmark) and kept when at least ``min_inlier_fraction`` of the landmarks both
   views have reproject within ``inlier_px`` (times each view's threshold tolerance);
2. the kept combinations' 3D faces are compared (median distance over ``CLUSTER_POINTS``);
   a combination's support is how many kept combinations lie within ``cluster_cm`` of it.

The pair of views whose best-supported combination has the most support wins, if that
support is at least ``min_support`` of all Ka x Kb combinations: of the combinations within
``cluster_cm`` of it, the one with the most agreeing landmarks (then the smallest median
error) gives the two alternatives taken. Every other view keeps its own points (the view
consistency check that follows keeps or leaves it out), as do both views of a pair whose
face is smaller than ``min_face_px`` in either.

Why support rather than the best agreement: two views constrain a point only across its
epipolar line, so among K x K combinations some pair of wrong answers always agrees well
(on the real test frames the best-agreeing pair of one face has a 3.8 cm eye span, the
right answer 6.0 cm). Right answers are many: the crops that see the face well agree on
one 3D face (on the real test frames 190-700 of 1296 combinations for the faces
triangulated right), while wrong ones scatter (at most 25 for a profile against a frontal
face).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np

from annotate.geometry.cameras import CameraRig, undistort_pixels
from annotate.geometry.triangulation import dlt_triangulate, normalised_projections

# The landmarks 3D faces are compared on: chin, nose bridge and tip, eye corners, mouth
# corners (iBUG numbering), points every crop of a visible face places.
CLUSTER_POINTS = (8, 27, 30, 33, 36, 39, 42, 45, 48, 54)


@dataclass(frozen=True)
class ConsensusConfig:
    """inlier_px: a landmark agrees when both views reproject within this (times their
    tolerance); min_inlier_fraction: of the landmarks both views have; cluster_cm: two 3D
    faces are the same within this median distance; min_support: the winning combination's
    support over all combinations; max_kept: combinations compared at most (those with
    the most agreeing landmarks); min_face_px: views whose face (the longer side of its
    landmarks' bounding box) is smaller take no part, since inlier_px is then too wide a
    tolerance to tell crops apart; max_views: at most this many views of a face take part,
    those whose faces are largest (the pairs grow with the square of the views, at about
    0.3 s of CPU each: 10 pairs for 5 views, 105 for 15 of a 31-camera dome)."""

    inlier_px: float = 4.0
    min_inlier_fraction: float = 0.5
    cluster_cm: float = 1.0
    min_support: float = 0.05
    max_kept: int = 600
    min_face_px: float = 40.0
    max_views: int = 5

    def __post_init__(self) -> None:
        if not (self.inlier_px > 0 and 0 < self.min_inlier_fraction <= 1 and self.cluster_cm > 0
                and 0 <= self.min_support <= 1 and self.max_kept >= 1 and self.min_face_px >= 0
                and self.max_views >= 2):
            raise ValueError(f"crop consensus needs inlier_px > 0, 0 < min_inlier_fraction <= 1, cluster_cm > 0, "
                             f"0 <= min_support <= 1, max_kept >= 1, min_face_px >= 0, max_views >= 2; got {self}")


@dataclass(frozen=True)
class Consensus:
    """choice: (C,) the alternative taken per view, -1 = the view keeps its points; pair:
    the two views that decided (None when no pair had enough support); support: the
    winning combination's support; combinations: Ka x Kb of that pair."""

    choice: np.ndarray
    pair: tuple[int, int] | None
    support: int
    combinations: int


@dataclass(frozen=True)
class _PairResult:
    support: int              # the winning combination's support
    i: int                    # the alternatives taken in views a and b
    j: int
    combinations: int         # Ka x Kb


def _pair(rig: CameraRig, a: int, b: int, alt_a: np.ndarray, alt_b: np.ndarray, tol_a: float, tol_b: float,
          config: ConsensusConfig) -> _PairResult | None:
    """The best-supported combination of views a and b's alternatives (Ka, L, 2), (Kb, L, 2)."""
    ka, kb, n = len(alt_a), len(alt_b), alt_a.shape[1]
    pair = rig.subset([a, b])
    norm_a = undistort_pixels(alt_a.reshape(-1, 2), rig.K[a], rig.dist[a]).reshape(ka, n, 2)
    norm_b = undistort_pixels(alt_b.reshape(-1, 2), rig.K[b], rig.dist[b]).reshape(kb, n, 2)
    both = np.stack(np.broadcast_arrays(norm_a[:, None], norm_b[None]), axis=-2)           # (Ka, Kb, L, 2, 2)
    X = dlt_triangulate(normalised_projections(pair), both)                               # (Ka, Kb, L, 3)
    projected = pair.project_world(X)                                                    # (2, Ka, Kb, L, 2)
    err_a = np.linalg.norm(projected[0] - alt_a[:, None], axis=-1)
    err_b = np.linalg.norm(projected[1] - alt_b[None], axis=-1)
    seen = np.isfinite(alt_a).all(-1)[:, None] & np.isfinite(alt_b).all(-1)[None]          # (Ka, Kb, L)
    agree = (err_a <= config.inlier_px * tol_a) & (err_b <= config.inlier_px * tol_b)   # (Ka, Kb, L)
    count = agree.sum(-1)
    kept = np.flatnonzero(count.ravel() >= config.min_inlier_fraction * np.maximum(seen.sum(-1).ravel(), 1))
    if not len(kept):
        return None
    kept = kept[np.argsort(-count.ravel()[kept], kind="stable")[:config.max_kept]]
    faces = X.reshape(ka * kb, n, 3)[kept]
    key = faces[:, list(CLUSTER_POINTS)]                                                 # (Q, P, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)             # faces with no key point in common: NaN
        distance = np.nanmedian(np.linalg.norm(key[:, None] - key[None], axis=-1), axis=-1)   # (Q, Q)
        worst = np.fmax(err_a, err_b).reshape(ka * kb, n)[kept]
        median = np.nanmedian(worst, axis=1)
    near = np.nan_to_num(distance, nan=np.inf) <= config.cluster_cm
    support = near.sum(axis=1)
    centre = int(np.argmax(support))
    # The cluster's member whose landmarks agree best: most agreeing, then smallest median error.
    members = np.flatnonzero(near[centre])
    best = members[np.lexsort((median[members], -count.ravel()[kept][members]))[0]]
    i, j = divmod(int(kept[best]), kb)
    return _PairResult(int(support[centre]), i, j, ka * kb)


def choose_alternatives(rig: CameraRig, alternatives: Sequence[np.ndarray | None], tolerance: np.ndarray,
                        config: ConsensusConfig = ConsensusConfig()) -> Consensus:
    """Which alternative each of one face's C views takes (module docstring): the winning
    pair's two views, the others -1.

    alternatives: per view (K, L, 2) pixels, or None (the view did not see the face or has
    no alternatives); tolerance: (C,) >= 1 each view's factor on inlier_px.
    """
    C = len(rig)
    views = [c for c in range(C) if alternatives[c] is not None and len(alternatives[c])]
    choice = np.full(C, -1, dtype=np.int64)
    best: tuple[int, int, _PairResult] | None = None
    for a, b in combinations(views, 2):
        found = _pair(rig, a, b, np.asarray(alternatives[a], float), np.asarray(alternatives[b], float),
                      float(tolerance[a]), float(tolerance[b]), config)
        if found is not None and (best is None or found.support > best[2].support):
            best = (a, b, found)
    if best is None or best[2].support < config.min_support * best[2].combinations:
        return Consensus(choice, None, 0 if best is None else best[2].support,
                         0 if best is None else best[2].combinations)
    a, b, found = best
    choice[a], choice[b] = found.i, found.j
    return Consensus(choice, (a, b), found.support, found.combinations)
