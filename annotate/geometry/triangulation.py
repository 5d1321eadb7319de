"""Robust multi-view triangulation, vectorised over any batch of points.

The batch is typically frames x people x landmarks: observations ``points_px (C, ..., 2)``
(pixels in each of the C cameras of a ``CameraRig``, NaN = not seen) and confidences
``(C, ...)`` give 3D points ``(..., 3)`` in world cm. Pure numpy, no I/O.

Method (``triangulate_points``), per point:

1. Observed pixels are undistorted to ideal normalised coordinates with
   ``cameras.undistort_pixels`` (the project's one inverse lens model).
2. RANSAC over view pairs: random pairs of observing views, each triangulated linearly; a
   view is an inlier of a hypothesis when the point lies in front of it and reprojects
   within ``inlier_threshold_px``; the hypothesis with the largest sum of inlier
   confidences wins. Sampling is adaptive: a first round of ``first_round`` pairs, then
   up to ``hypotheses`` in all for the points whose best consensus is too small to be sure
   (the usual RANSAC bound for ``ransac_confidence``). Points seen twice get the one pair.
3. Confidence-weighted DLT on the winner's inliers, each view's equations scaled by focal
   length over depth so that the algebraic error approximates the reprojection error in
   pixels (over the observation's tolerance, below), homogeneous: the smallest
   eigenvector; the inliers are recomputed from that point (these are the views used)
   and, where they changed, the DLT is solved again.
4. Optional Gauss-Newton refinement of the confidence-weighted reprojection error over the
   views used.
5. The reprojection error in pixels through the full lens model
   (``cameras.project_camera_xyz``), averaged over the views used. Points with fewer than
   ``min_views`` views, or a mean error above ``max_repro_error_px``, are NaN.

Both pixel thresholds can be widened per observation by a ``tolerance`` factor (>= 1): a
detector's errors grow with the size of what it finds (a face 300 px across is placed to
a few px, not a fraction of one), so the caller may scale the thresholds with the object's
size in each view (``face_views.threshold_tolerance``). Inside, an observation's test
error is its pixel error divided by its tolerance, and its weight in the DLT and the
refinement is divided by the tolerance squared (its expected error grows likewise).

Inside, observations are ragged: one entry per (point, view) actually seen, sorted by
point, and per-point sums are ``np.bincount``. Work grows with the observations, not with
points x cameras, which matters when each landmark is seen by a third of 31 cameras.

Reprojection tests inside RANSAC use the ideal (undistorted) image scaled by the focal
length, i.e. pixels of a distortion-free camera: within a few percent of true pixels on
the Panoptic lenses, which is all a threshold needs; the reported error is exact.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from annotate.geometry.cameras import CameraRig, project_camera_xyz, undistort_pixels

# Fixed-point undistortion iterations. On the Panoptic lenses (k1 ~ -0.29) 6 iterations
# agree with 50 to better than 0.003 px even in the image corners (1e-4 px at 8), far
# below any detector's noise, at 30% of the default's cost; undistortion is otherwise a
# large share of the triangulation time.
UNDISTORT_ITERATIONS = 6


@dataclass(frozen=True)
class TriangulationConfig:
    """How points are triangulated (pixels, counts).

    inlier_threshold_px: a view is an inlier when it reprojects within this distance.
    min_views: fewer views used -> not triangulated (NaN).
    hypotheses: at most this many RANSAC view pairs per point; first_round of them for
        every point, the rest only where ``ransac_confidence`` is not yet reached.
    refine / refine_iterations: Gauss-Newton on the reprojection error after the DLT. Off
        by default: the DLT's equations are already weighted like the reprojection error,
        and on the benchmark (benchmarks/bench_triangulation.py) refining changes the 3D
        error by less than 0.01 mm and costs 1.3-1.6x the time.
    max_repro_error_px: a point whose mean reprojection error over its views is larger
        is not triangulated.
    chunk_points: points processed together (bounds the working memory).
    seed: the RANSAC random stream (results are deterministic for a given seed).
    """

    inlier_threshold_px: float = 8.0
    min_views: int = 2
    hypotheses: int = 12
    first_round: int = 5
    ransac_confidence: float = 0.99
    refine: bool = False
    refine_iterations: int = 1
    max_repro_error_px: float = 8.0
    chunk_points: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_views < 2:
            raise ValueError(f"min_views must be >= 2, got {self.min_views}")
        if not 1 <= self.first_round <= self.hypotheses or self.chunk_points < 1:
            raise ValueError("need 1 <= first_round <= hypotheses and chunk_points >= 1")
        if self.inlier_threshold_px <= 0 or self.max_repro_error_px <= 0:
            raise ValueError("pixel thresholds must be positive")
        if not 0 < self.ransac_confidence < 1:
            raise ValueError("ransac_confidence must be in (0, 1)")


@dataclass(frozen=True)
class Triangulation:
    """Result for a batch of points of shape ``(...)`` seen by C cameras.

    points_world: (..., 3) cm, world; NaN where not triangulated.
    repro_error_px: (...,) mean reprojection error over the views used (lens model
        included); NaN where not triangulated.
    inliers: (..., C) bool, the views used (all False where not triangulated).
    confidence: (...,) mean confidence of the views used; 0 where not triangulated.
    """

    points_world: np.ndarray
    repro_error_px: np.ndarray
    inliers: np.ndarray
    confidence: np.ndarray

    @property
    def num_views(self) -> np.ndarray:
        """(...,) int, views used per point (0 = not triangulated)."""
        return self.inliers.sum(axis=-1)

    @property
    def ok(self) -> np.ndarray:
        """(...,) bool, the point was triangulated."""
        return np.isfinite(self.points_world).all(axis=-1)


# ------------------------------------------------------------------------- camera terms

def normalised_projections(rig: CameraRig) -> np.ndarray:
    """(C, 3, 4) ``[R_cam_world | t_cam_world]``: world -> ideal normalised coordinates."""
    return np.concatenate([rig.R_cam_world, rig.t_cam_world[:, :, None]], axis=2)


def pixel_scale(rig: CameraRig) -> np.ndarray:
    """(C,) pixels per normalised unit at the image centre: ``sqrt(fx * fy)``."""
    return np.sqrt(rig.K[:, 0, 0] * rig.K[:, 1, 1])


# ------------------------------------------------------------------ ragged observations

@dataclass(frozen=True)
class Observations:
    """M observations of N points, sorted by point (the ragged layout of this module).

    point: (M,) int64 index of the point, non-decreasing; camera: (M,) int64.
    xy: (2, M) ideal normalised image coordinates (x, y); weight: (M,) > 0.
    P: (3, 4, M) the observing camera's normalised projection ``[R|t]``, planar so that
    each row coefficient is a contiguous (M,) array; scale: (M,) its pixels per unit;
    tolerance: (M,) >= 1, the factor the pixel thresholds are widened by for it.
    equations: (2, 4, M) the DLT equations ``x P3 - P1`` and ``y P3 - P2`` (rows . [X, 1]
    = 0 for an exact point).
    test_rows: (3, 4, M) float32 ``[f (P1 - x P3) / tol, f (P2 - y P3) / tol, P3]``: their
    products with [X, 1] are the reprojection error times depth, in pixels over the
    tolerance, and the depth.
    float32 because the RANSAC tests are memory-bound (7x faster than float64 here) and
    need no more than ~1e-4 px.
    """

    num_points: int
    point: np.ndarray
    camera: np.ndarray
    xy: np.ndarray
    weight: np.ndarray
    P: np.ndarray
    scale: np.ndarray
    tolerance: np.ndarray
    equations: np.ndarray
    test_rows: np.ndarray

    def sum_per_point(self, values: np.ndarray) -> np.ndarray:
        """(M,) -> (N,) sums over each point's observations."""
        return np.bincount(self.point, weights=values, minlength=self.num_points)

    @functools.cached_property
    def _segments(self) -> tuple[np.ndarray, np.ndarray]:
        """Points that have observations, and where each one's run of observations starts."""
        start = np.flatnonzero(np.r_[True, self.point[1:] != self.point[:-1]]) if len(self.point) else np.zeros(0, int)
        return self.point[start], start

    def sum_rows_per_point(self, values: np.ndarray) -> np.ndarray:
        """(K, M) -> (K, N): ``sum_per_point`` of K rows in one pass (``np.add.reduceat``
        over the sorted runs; several times faster than K bincounts)."""
        points, start = self._segments
        out = np.zeros((len(values), self.num_points))
        if len(start):
            out[:, points] = np.add.reduceat(values, start, axis=1)
        return out

    def subset(self, keep: np.ndarray) -> "Observations":
        """The observations where ``keep`` (M,) bool is set (points keep their indices)."""
        return Observations(self.num_points, self.point[keep], self.camera[keep], self.xy[:, keep],
                            self.weight[keep], self.P[:, :, keep], self.scale[keep], self.tolerance[keep],
                            self.equations[:, :, keep], self.test_rows[:, :, keep])


def seen_views(points: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(C, N) bool: a finite point (C, N, 2) with a finite, positive weight (C, N)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(points[..., 0]) & np.isfinite(points[..., 1]) & (weight > 0)


def gather_observations(P: np.ndarray, scale: np.ndarray, points_norm: np.ndarray,
                        weight: np.ndarray, seen: np.ndarray | None = None,
                        tolerance: np.ndarray | None = None) -> Observations:
    """Dense per-view arrays -> ``Observations`` of the entries actually seen.

    P: (C, 3, 4) normalised projections; scale: (C,) px per unit; points_norm: (C, N, 2)
    ideal normalised points, NaN = unseen; weight: (C, N), <= 0 or NaN = unseen;
    seen: (C, N) bool, ``seen_views(points_norm, weight)`` if the caller has it;
    tolerance: (C, N) >= 1 threshold factors (None = 1).
    """
    w = np.asarray(weight, dtype=np.float64)
    C, N = w.shape
    seen = seen_views(points_norm, w) if seen is None else seen
    flat = np.flatnonzero(seen.T)                        # point-major: sorted by point
    point, camera = flat // C, flat % C
    index = camera * N + point                           # into the (C, N) arrays
    xy = np.take(points_norm.reshape(C * N, 2), index, axis=0).T
    P_planar = np.ascontiguousarray(np.moveaxis(P, 0, -1))[:, :, camera]  # (3, 4, M)
    f = scale[camera]
    tol = np.ones(len(point)) if tolerance is None else np.take(np.asarray(tolerance, dtype=np.float64), index)
    equations = np.stack([xy[0] * P_planar[2] - P_planar[0], xy[1] * P_planar[2] - P_planar[1]])
    test_rows = np.empty((3, 4, len(point)), dtype=np.float32)
    np.multiply(equations, -f / tol, out=test_rows[:2], casting="same_kind")
    test_rows[2] = P_planar[2]
    return Observations(N, point, camera, xy, np.take(w, index), P_planar, f, tol, equations, test_rows)


def undistort_observations(rig: CameraRig, points_px: np.ndarray) -> np.ndarray:
    """points_px (C, N, 2) pixels, NaN = unseen -> (C, N, 2) ideal normalised, NaN kept."""
    px = np.asarray(points_px, dtype=np.float64)
    out = np.full(px.shape, np.nan)
    seen = np.isfinite(px[..., 0]) & np.isfinite(px[..., 1])
    for c in np.flatnonzero(seen.any(axis=1)):
        idx = np.flatnonzero(seen[c])
        out[c, idx] = undistort_pixels(px[c, idx], rig.K[c], rig.dist[c], UNDISTORT_ITERATIONS)
    return out


def _dot(row: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Planar ``row . [X, 1]``: row (4, ...) coefficients, X (3, ...) -> (...)."""
    return row[0] * X[0] + row[1] * X[1] + row[2] * X[2] + row[3]


# ---------------------------------------------------------------------- linear solutions

def _solve_symmetric3(m00, m01, m02, m11, m12, m22, b0, b1, b2) -> np.ndarray:
    """Solve symmetric 3x3 systems given as planar entries (...); returns (3, ...).

    Closed form (adjugate), fully vectorised: no LAPACK call per system. Singular systems
    give inf/NaN, which callers treat as "no solution".
    """
    a00, a01, a02 = m11 * m22 - m12 * m12, m02 * m12 - m01 * m22, m01 * m12 - m02 * m11
    a11, a12, a22 = m00 * m22 - m02 * m02, m01 * m02 - m00 * m12, m00 * m11 - m01 * m01
    det = m00 * a00 + m01 * a01 + m02 * a02
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / det
        return np.stack([(a00 * b0 + a01 * b1 + a02 * b2) * inv,
                         (a01 * b0 + a11 * b1 + a12 * b2) * inv,
                         (a02 * b0 + a12 * b1 + a22 * b2) * inv])


_UPPER = [(i, j) for i in range(4) for j in range(i, 4)]


def _normal_matrix(obs: Observations, weight: np.ndarray) -> np.ndarray:
    """(N, 4, 4) ``sum_views w (r1 r1^T + r2 r2^T)`` over each point's DLT equations."""
    r1, r2 = obs.equations
    wr1, wr2 = r1 * weight, r2 * weight                                      # (4, M) each
    products = np.empty((len(_UPPER), len(weight)))                          # the 10 distinct entries
    for k, (i, j) in enumerate(_UPPER):
        np.multiply(wr1[i], r1[j], out=products[k])
        products[k] += wr2[i] * r2[j]
    upper = obs.sum_rows_per_point(products).T                               # (N, 10)
    normal = np.empty((obs.num_points, 4, 4))
    I, J = np.array(_UPPER).T
    normal[:, I, J] = upper
    normal[:, J, I] = upper
    return normal


def weighted_dlt(obs: Observations, weight: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Homogeneous weighted DLT of each point: (3, N) world, NaN without two weighted views.

    Minimises ``sum w |rows X~|^2 / |X~|^2`` over homogeneous X~ = [X, 1] (up to scale):
    the smallest eigenvector of the weighted normal matrix ``[[A, b], [b^T, c]]``. Solved
    in closed form per point rather than by a LAPACK ``eigh`` per 4x4 matrix (5x faster
    here): the eigenvector with eigenvalue l satisfies ``(A - l I) X = -b``, so starting
    from the inhomogeneous solution (l = 0) we alternate l = Rayleigh quotient of [X, 1]
    and X = -(A - l I)^-1 b (Rayleigh-quotient iteration restricted to X~4 = 1, which
    converges cubically; 3 rounds reach machine precision for any well-posed point).
    weight: (M,) >= 0 per observation.
    """
    n = _normal_matrix(obs, weight)
    a00, a01, a02, a11, a12, a22 = n[:, 0, 0], n[:, 0, 1], n[:, 0, 2], n[:, 1, 1], n[:, 1, 2], n[:, 2, 2]
    b0, b1, b2, c = n[:, 0, 3], n[:, 1, 3], n[:, 2, 3], n[:, 3, 3]
    lam = np.zeros(obs.num_points)
    X = np.zeros((3, obs.num_points))
    # Points without two views have singular systems; they overflow here and are masked below.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(iterations + 1):
            X = _solve_symmetric3(a00 - lam, a01, a02, a11 - lam, a12, a22 - lam, -b0, -b1, -b2)
            x0, x1, x2 = X
            quad = (a00 * x0 * x0 + a11 * x1 * x1 + a22 * x2 * x2
                    + 2.0 * (a01 * x0 * x1 + a02 * x0 * x2 + a12 * x1 * x2 + b0 * x0 + b1 * x1 + b2 * x2) + c)
            lam = quad / (x0 * x0 + x1 * x1 + x2 * x2 + 1.0)
    enough = obs.sum_per_point((weight > 0).astype(np.float64)) >= 2
    return np.where(enough & np.isfinite(X).all(axis=0), X, np.nan)


def dlt_triangulate(P: np.ndarray, points: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted homogeneous DLT, the classic linear triangulation, on dense arrays.

    P: (C, 3, 4) projection matrices (pixel ``K [R|t]`` or normalised ``[R|t]``);
    points: (..., C, 2) image points in the coordinates P maps to, NaN = unseen;
    weights: (..., C) >= 0 (None = 1 for every seen view). With unit weights this is
    ``cv2.triangulatePoints``'s estimate. Returns (..., 3); NaN with fewer than 2 views.
    """
    pts = np.asarray(points, dtype=np.float64)
    batch, C = pts.shape[:-2], pts.shape[-2]
    flat = np.moveaxis(pts.reshape(-1, C, 2), 1, 0)                       # (C, N, 2)
    w = np.ones(flat.shape[:2]) if weights is None else np.moveaxis(
        np.asarray(weights, dtype=np.float64).reshape(-1, C), 1, 0)
    obs = gather_observations(np.asarray(P, dtype=np.float64), np.ones(C), flat, w)
    return weighted_dlt(obs, obs.weight).T.reshape(batch + (3,))


# ------------------------------------------------------------------------------- RANSAC

def sample_view_pairs(obs: Observations, num_pairs: int, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Random pairs of distinct observations of each point: (H, N) indices into obs.

    Points with fewer than two observations get pairs that mean nothing (clipped into
    range); callers ignore them.
    """
    count = np.bincount(obs.point, minlength=obs.num_points)
    start = np.cumsum(count) - count
    i = np.floor(rng.random((num_pairs, obs.num_points)) * count).astype(np.int64)
    j = np.floor(rng.random((num_pairs, obs.num_points)) * (count - 1)).astype(np.int64)
    j += j >= i                                          # distinct from i
    last = max(len(obs.point) - 1, 0)
    return np.clip(start + i, 0, last), np.clip(start + j, 0, last)


def _pair_points(obs: Observations, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Linear two-view points from observation pairs a, b (H, N): (3, H, N) world."""
    r1, r2 = obs.equations
    rows = [np.take(r, idx, axis=-1) for r in (r1, r2) for idx in (a, b)]             # 4 x (4, H, N)

    def s(i, j):
        return rows[0][i] * rows[0][j] + rows[1][i] * rows[1][j] + rows[2][i] * rows[2][j] + rows[3][i] * rows[3][j]

    return _solve_symmetric3(s(0, 0), s(0, 1), s(0, 2), s(1, 1), s(1, 2), s(2, 2), -s(0, 3), -s(1, 3), -s(2, 3))


def _inliers(obs: Observations, X: np.ndarray, threshold_px: float) -> np.ndarray:
    """Views (..., M) where points X (3, ..., N) lie in front and reproject within the threshold.

    Uses ``|f (rows . X)| < threshold * depth``: the ideal-image reprojection error in
    pixels without a division (float32, see ``Observations.test_rows``).
    """
    Xo = np.take(np.asarray(X, dtype=np.float32), obs.point, axis=-1)     # (3, ..., M)
    g1, g2, p3 = obs.test_rows
    depth = _dot(p3, Xo)
    ex, ey = _dot(g1, Xo), _dot(g2, Xo)
    ex *= ex
    ey *= ey
    ex += ey
    limit = depth * depth
    limit *= np.float32(threshold_px * threshold_px)
    return (depth > 0) & (ex < limit)


def _best_hypotheses(obs: Observations, num_pairs: int, threshold_px: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best of ``num_pairs`` pair hypotheses per point: (N,) score, (3, N) point, (M,) inliers."""
    a, b = sample_view_pairs(obs, num_pairs, rng)
    X = _pair_points(obs, a, b)                                          # (3, H, N)
    # Degenerate pairs (parallel rays) give inf/NaN or absurd points: park them at the
    # origin, where they collect no inliers (and stay finite in float32).
    X = np.where(np.isfinite(X) & (np.abs(X) < 1e6), X, 0.0)
    inliers = _inliers(obs, X, threshold_px)                             # (H, M)
    n = obs.num_points
    flat = (np.arange(num_pairs)[:, None] * n + obs.point[None]).ravel()
    score = np.bincount(flat, weights=(inliers * obs.weight).ravel(), minlength=num_pairs * n).reshape(num_pairs, n)
    best = np.argmax(score, axis=0)
    points = np.arange(n)
    return score[best, points], X[:, best, points], inliers[best[obs.point], np.arange(len(obs.point))]


def ransac(obs: Observations, config: TriangulationConfig, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """Best view-pair hypothesis of each point (adaptive): (3, N) its point, (M,) its inliers.

    After the first round, a point needs ``log(1 - p) / log(1 - e^2)`` pairs in all, with
    e its best inlier fraction so far (by weight); those that need more get the rest.
    """
    score, X, inliers = _best_hypotheses(obs, config.first_round, config.inlier_threshold_px, rng)
    extra = config.hypotheses - config.first_round
    total = obs.sum_per_point(obs.weight)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.clip(score / total, 0.0, 1.0 - 1e-12)
        needed = np.log(1.0 - config.ransac_confidence) / np.log(1.0 - fraction ** 2)
    more = needed > config.first_round
    if extra == 0 or not more.any():
        return X, inliers
    keep = more[obs.point]
    sub_score, sub_X, sub_inliers = _best_hypotheses(_compact(obs.subset(keep)), extra,
                                                     config.inlier_threshold_px, rng)
    idx = np.flatnonzero(more)
    better = np.zeros(obs.num_points, bool)
    better[idx] = sub_score > score[idx]
    X[:, idx] = np.where(better[idx], sub_X, X[:, idx])
    sel = np.flatnonzero(keep)
    inliers = inliers.copy()
    inliers[sel] = np.where(better[obs.point[sel]], sub_inliers, inliers[sel])
    return X, inliers


def _compact(obs: Observations) -> Observations:
    """Renumber the points of ``obs`` 0..K-1 in order (drops points without observations)."""
    points, point = np.unique(obs.point, return_inverse=True)
    return Observations(len(points), point, obs.camera, obs.xy, obs.weight, obs.P, obs.scale, obs.tolerance,
                        obs.equations, obs.test_rows)


# --------------------------------------------------------------------- DLT + refinement

def _reprojection_weights(obs: Observations, X: np.ndarray, use: np.ndarray) -> np.ndarray:
    """(M,) DLT weights ``w (f / (depth tol))^2`` on the views in ``use``, 0 elsewhere.

    Dividing a view's DLT equations by the point's depth turns their algebraic error into
    the reprojection error (to first order), and f turns that into pixels, so the DLT
    weighs views as the reprojection error does; an observation whose thresholds are
    widened by its tolerance is expected to err by that much more, so its squared error
    counts 1 / tol^2 as much (its inverse variance). X: (3, N).
    """
    depth = _dot(obs.P[2], np.where(np.isfinite(X), X, 0.0)[:, obs.point])
    with np.errstate(divide="ignore", invalid="ignore"):
        w = obs.weight * (obs.scale / (depth * obs.tolerance)) ** 2
    return np.where(use & (depth > 0) & np.isfinite(w), w, 0.0)


def gauss_newton(obs: Observations, weight: np.ndarray, X: np.ndarray, iterations: int) -> np.ndarray:
    """Refine points X (3, N) minimising ``sum weight (f |ideal projection - xy|)^2``.

    weight: (M,), 0 = unused view; each observation's error counts over its tolerance.
    A step that fails (singular normal equations, e.g. a point with one view) leaves the
    point unchanged.
    """
    w = weight * (obs.scale / obs.tolerance) ** 2
    P = obs.P
    X = X.copy()
    for _ in range(iterations):
        Xo = X[:, obs.point]
        depth = _dot(P[2], Xo)
        inv = np.where(weight > 0, 1.0 / np.where(weight > 0, depth, 1.0), 0.0)
        u, v = _dot(P[0], Xo) * inv, _dot(P[1], Xo) * inv
        ru, rv = u - obs.xy[0], v - obs.xy[1]
        Ju = (P[0, :3] - u * P[2, :3]) * inv                              # (3, M)
        Jv = (P[1, :3] - v * P[2, :3]) * inv
        I, J = np.array([0, 0, 0, 1, 1, 2]), np.array([0, 1, 2, 1, 2, 2])
        terms = np.concatenate([w * (Ju[I] * Ju[J] + Jv[I] * Jv[J]), w * (Ju * ru + Jv * rv)])   # (9, M)
        h00, h01, h02, h11, h12, h22, g0, g1, g2 = obs.sum_rows_per_point(terms)
        step = _solve_symmetric3(h00, h01, h02, h11, h12, h22, -g0, -g1, -g2)
        X = np.where(np.isfinite(step).all(axis=0), X + step, X)
    return X


def reprojection_error_px(rig: CameraRig, obs: Observations, X: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """(M,) pixel distance between the lens-model projection of X (3, N) and the detections.

    points_px: (M, 2) the observed (distorted) pixels of each observation.
    """
    Xo = X[:, obs.point]
    cam = [_dot(obs.P[k], Xo) for k in range(3)]
    # One gather of a (C, 14) table instead of two of K and dist.
    lens = np.concatenate([rig.K.reshape(-1, 9), rig.dist], axis=1)[obs.camera]
    u, v = project_camera_xyz(cam[0], cam[1], cam[2], lens[:, :9].reshape(-1, 3, 3), lens[:, 9:])
    return np.hypot(u - points_px[:, 0], v - points_px[:, 1])


# ------------------------------------------------------------------------------ driver

def _final_views_and_dlt(obs: Observations, X_hyp: np.ndarray, use: np.ndarray, threshold_px: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted DLT on the RANSAC inliers, then the inliers of that point, (3, N) and (M,).

    The DLT is solved again only for the points whose views changed (about one in ten): for
    the others it would repeat the same solve with depth weights that moved by a fraction
    of a percent.
    """
    X = weighted_dlt(obs, _reprojection_weights(obs, X_hyp, use))
    finite = np.isfinite(X).all(axis=0)
    new_use = _inliers(obs, np.where(finite, X, 0.0), threshold_px) & finite[obs.point]
    changed = obs.sum_per_point((new_use != use).astype(np.float64)) > 0
    if changed.any():
        keep = changed[obs.point]
        sub = obs.subset(keep)
        again = weighted_dlt(sub, _reprojection_weights(sub, X, new_use[keep]))
        X[:, changed] = again[:, changed]
    return X, new_use


def _triangulate_chunk(rig: CameraRig, P: np.ndarray, scale: np.ndarray, points_px: np.ndarray,
                       points_norm: np.ndarray, confidence: np.ndarray, tolerance: np.ndarray,
                       config: TriangulationConfig, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """One chunk of N points: points_px and points_norm (C, N, 2), confidence and
    tolerance (C, N).

    Returns points (N, 3), mean error (N,), views used (N, C), mean confidence (N,).
    """
    C, N = confidence.shape
    seen = seen_views(points_norm, confidence)
    # Points seen once cannot be triangulated: leave them out from the start.
    seen &= np.count_nonzero(seen, axis=0) >= 2
    obs = gather_observations(P, scale, points_norm, confidence, seen, tolerance)
    points, error = np.full((N, 3), np.nan), np.full(N, np.nan)
    views, mean_conf = np.zeros((N, C), bool), np.zeros(N)
    if len(obs.point) == 0:
        return points, error, views, mean_conf
    X, use = ransac(obs, config, rng)
    X, use = _final_views_and_dlt(obs, X, use, config.inlier_threshold_px)
    if config.refine:
        X = gauss_newton(obs, np.where(use, obs.weight, 0.0), X, config.refine_iterations)
    finite = np.isfinite(X).all(axis=0)
    use &= finite[obs.point]
    err = reprojection_error_px(rig, obs, np.where(finite, X, 0.0),
                                np.take(points_px.reshape(-1, 2), obs.camera * N + obs.point, axis=0))
    n_used = obs.sum_per_point(use.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_error = obs.sum_per_point(np.where(use, err, 0.0)) / n_used
        mean_tested = obs.sum_per_point(np.where(use, err / obs.tolerance, 0.0)) / n_used
        conf = obs.sum_per_point(np.where(use, obs.weight, 0.0)) / n_used
    good = (n_used >= config.min_views) & (mean_tested <= config.max_repro_error_px) & finite
    use &= good[obs.point]
    views[obs.point[use], obs.camera[use]] = True
    points[good] = X.T[good]
    error[good] = mean_error[good]
    mean_conf[good] = conf[good]
    return points, error, views, mean_conf


def triangulate_points(rig: CameraRig, points_px: np.ndarray, confidence: np.ndarray | None = None,
                       config: TriangulationConfig = TriangulationConfig(),
                       tolerance: np.ndarray | None = None) -> Triangulation:
    """Robust triangulation of a batch of points seen by the cameras of ``rig``.

    points_px: (C, ..., 2) pixels (distorted, as detected), NaN = not seen by that camera.
    confidence: (C, ...) detection confidences (weights; <= 0 or NaN = not seen); None = 1.
    tolerance: >= 1, broadcastable to (C, ...) (for example (C, M, 1) per camera and face),
    the factor each observation's pixel thresholds are widened by (module docstring);
    None = 1 (the thresholds as configured).
    Returns a ``Triangulation`` with batch shape ``(...)`` (see the module docstring).
    """
    px = np.asarray(points_px, dtype=np.float64)
    C = len(rig)
    if px.shape[0] != C or px.shape[-1] != 2:
        raise ValueError(f"points_px must have shape ({C}, ..., 2), got {px.shape}")
    batch = px.shape[1:-1]
    px = px.reshape(C, -1, 2)
    conf = np.ones(px.shape[:2]) if confidence is None else np.asarray(confidence, dtype=np.float64).reshape(C, -1)
    if conf.shape != px.shape[:2]:
        raise ValueError(f"confidence must have shape {(C,) + batch}, got {np.shape(confidence)}")
    try:
        tol = np.ones(px.shape[:2]) if tolerance is None else np.broadcast_to(
            np.asarray(tolerance, dtype=np.float64), (C,) + batch).reshape(C, -1)
    except ValueError:
        raise ValueError(f"tolerance must broadcast to shape {(C,) + batch}, got {np.shape(tolerance)}") from None
    if not (tol >= 1).all():
        raise ValueError("tolerance factors must be >= 1 (they widen the pixel thresholds)")
    P, scale = normalised_projections(rig), pixel_scale(rig)
    norm = undistort_observations(rig, px)
    rng = np.random.default_rng(config.seed)
    n = px.shape[1]
    points, error = np.full((n, 3), np.nan), np.full(n, np.nan)
    inliers, mean_conf = np.zeros((n, C), bool), np.zeros(n)
    for start in range(0, n, config.chunk_points):
        sl = slice(start, start + config.chunk_points)
        points[sl], error[sl], inliers[sl], mean_conf[sl] = _triangulate_chunk(
            rig, P, scale, px[:, sl], norm[:, sl], conf[:, sl], tol[:, sl], config, rng)
    return Triangulation(points.reshape(batch + (3,)), error.reshape(batch), inliers.reshape(batch + (C,)),
                         mean_conf.reshape(batch))
