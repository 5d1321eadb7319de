"""Robust multi-view triangulation: equality with OpenCV, exactness, outliers, shapes."""
import cv2
import numpy as np
import pytest

from annotate.geometry.triangulation import TriangulationConfig, dlt_triangulate, triangulate_points
from annotate.synth.scene import make_dome_rig


@pytest.fixture(scope="module")
def rig():
    return make_dome_rig(12, rng=np.random.default_rng(3))


def head_points(n, seed=0):
    """(n, 3) points around head height at the dome centre, world cm."""
    rng = np.random.default_rng(seed)
    return np.array([0.0, -150.0, 0.0]) + rng.uniform(-40, 40, (n, 3))


def test_two_view_dlt_equals_cv2_on_clean_pixels(rig):
    X = head_points(200)
    two = rig.subset([0, 5])
    P = np.stack([two.K[i] @ np.hstack([two.R_cam_world[i], two.t_cam_world[i][:, None]]) for i in range(2)])
    cam = two.world_to_camera(X)
    px = (np.einsum("cij,cnj->cni", two.K, cam / cam[..., 2:]))[..., :2]          # pinhole, no distortion
    ours = dlt_triangulate(P, np.swapaxes(px, 0, 1))
    theirs = cv2.triangulatePoints(P[0], P[1], px[0].T.copy(), px[1].T.copy())
    theirs = (theirs[:3] / theirs[3]).T
    assert np.abs(ours - theirs).max() < 1e-6
    assert np.abs(ours - X).max() < 1e-6


def test_unit_weight_dlt_is_cv2s_estimate_on_noisy_points(rig):
    # The same algebraic problem, so the same answer even when the views disagree.
    X = head_points(100, seed=1)
    two = rig.subset([2, 7])
    P = np.concatenate([two.R_cam_world, two.t_cam_world[:, :, None]], axis=2)
    cam = two.world_to_camera(X)
    xy = cam[..., :2] / cam[..., 2:] + np.random.default_rng(2).normal(0, 2e-3, (2, 100, 2))
    ours = dlt_triangulate(P, np.swapaxes(xy, 0, 1))
    theirs = cv2.triangulatePoints(P[0], P[1], xy[0].T.copy(), xy[1].T.copy())
    assert np.abs(ours - (theirs[:3] / theirs[3]).T).max() < 1e-6
    assert np.abs(ours - X).max() > 1e-3                     # the noise did move the points


def test_zero_weight_view_is_ignored(rig):
    X = head_points(20)
    P = np.concatenate([rig.R_cam_world, rig.t_cam_world[:, :, None]], axis=2)[:3]
    cam = rig.subset([0, 1, 2]).world_to_camera(X)
    xy = np.swapaxes(cam[..., :2] / cam[..., 2:], 0, 1).copy()
    xy[:, 2] += 0.05                                           # a wrong third view
    w = np.ones((20, 3))
    w[:, 2] = 0.0
    assert np.abs(dlt_triangulate(P, xy, w) - dlt_triangulate(P[:2], xy[:, :2])).max() < 1e-9


def test_clean_distorted_views_are_exact(rig):
    X = head_points(300).reshape(10, 30, 3)
    px = rig.project_world(X)                                  # (C, 10, 30, 2), lens model included
    tri = triangulate_points(rig, px)
    assert tri.points_world.shape == (10, 30, 3) and tri.inliers.shape == (10, 30, len(rig))
    assert np.abs(tri.points_world - X).max() < 1e-6
    assert np.nanmax(tri.repro_error_px) < 1e-6
    assert tri.inliers.all()


def test_outliers_are_rejected_and_missing_views_tolerated(rig):
    rng = np.random.default_rng(4)
    X = head_points(2000, seed=5)
    px = rig.project_world(X) + rng.normal(0, 1.0, (len(rig), 2000, 2))
    outlier = rng.random((len(rig), 2000)) < 0.15
    px[outlier] += rng.choice([-1, 1], (outlier.sum(), 2)) * rng.uniform(20, 80, (outlier.sum(), 2))
    missing = rng.random((len(rig), 2000)) < 0.3
    px[missing] = np.nan
    tri = triangulate_points(rig, px, np.ones((len(rig), 2000)))
    error = np.linalg.norm(tri.points_world - X, axis=-1)
    assert tri.ok.mean() > 0.99
    assert np.nanmedian(error) < 0.2 and np.nanpercentile(error, 99) < 1.0
    used_outliers = (tri.inliers & outlier.T).sum() / outlier.sum()
    assert used_outliers < 0.01
    assert not (tri.inliers & missing.T).any()
    assert np.nanmax(tri.repro_error_px) <= TriangulationConfig().max_repro_error_px


def test_a_point_seen_once_is_not_triangulated(rig):
    X = head_points(3)
    px = rig.project_world(X)
    px[1:, 0] = np.nan                                          # point 0: camera 0 only
    tri = triangulate_points(rig, px)
    assert not tri.ok[0] and tri.ok[1:].all()
    assert tri.num_views[0] == 0 and tri.confidence[0] == 0 and np.isnan(tri.repro_error_px[0])


def test_same_seed_same_result(rig):
    rng = np.random.default_rng(6)
    X = head_points(500)
    px = rig.project_world(X) + rng.normal(0, 2.0, (len(rig), 500, 2))
    px[rng.random((len(rig), 500)) < 0.2] += 50.0
    a, b = triangulate_points(rig, px), triangulate_points(rig, px)
    assert np.array_equal(a.points_world, b.points_world, equal_nan=True)
    assert np.array_equal(a.inliers, b.inliers)


def test_shape_errors_are_reported(rig):
    with pytest.raises(ValueError, match="points_px"):
        triangulate_points(rig, np.zeros((len(rig) - 1, 4, 2)))
    with pytest.raises(ValueError, match="min_views"):
        TriangulationConfig(min_views=1)


def test_a_tolerance_widens_the_pixel_thresholds_of_its_observation(rig):
    """A view 40 px off: an outlier at the 8 px thresholds, an inlier when its thresholds
    are widened 8x (a face eight times the reference size); the others are unchanged."""
    X = head_points(50, seed=4)
    px = rig.project_world(X)[:4]                                             # (4, 50, 2)
    px[3] += [40.0 / np.sqrt(2)] * 2
    four = rig.subset([0, 1, 2, 3])
    plain = triangulate_points(four, px)
    assert not plain.inliers[:, 3].any() and plain.inliers[:, :3].mean() > 0.9
    tolerance = np.ones((4, 50))
    tolerance[3] = 8.0
    wide = triangulate_points(four, px, tolerance=tolerance)
    assert wide.inliers[:, 3].mean() > 0.9 and wide.inliers[:, :3].mean() > 0.9
    # Two views up to 12 px apart (up to 6 px each after triangulation): with
    # max_repro_error_px = 4 a tolerance of 2 keeps every point.
    two = rig.subset([0, 3])
    px2 = rig.project_world(X)[[0, 3]]
    px2[1] += [12.0 / np.sqrt(2)] * 2
    strict = TriangulationConfig(max_repro_error_px=4.0, inlier_threshold_px=20.0)
    tight = triangulate_points(two, px2, config=strict).ok
    loose = triangulate_points(two, px2, config=strict, tolerance=np.full((2, 50), 2.0)).ok
    assert loose.all() and tight.sum() <= 25                     # offsets along an epipolar line vanish
    with pytest.raises(ValueError, match=">= 1"):
        triangulate_points(four, px, tolerance=np.full((4, 50), 0.5))
    with pytest.raises(ValueError, match="tolerance must broadcast to shape"):
        triangulate_points(four, px, tolerance=np.ones((4, 49)))
