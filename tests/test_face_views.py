"""Views of a face that disagree with the rest are left out as a whole (geometry.face_views)."""
import numpy as np
import pytest

from annotate.geometry.face_views import MAX_VIEWS_CHECKED, consistent_views, worst_view_error_px
from annotate.head.face_model import base_face_landmarks
from annotate.synth.scene import make_dome_rig


@pytest.fixture(scope="module")
def rig():
    return make_dome_rig(12, rng=np.random.default_rng(3))


def observed(rig, faces: int = 3, sigma_px: float = 0.7, seed: int = 0):
    """(C, M, 68, 2) pixels of M faces near the dome's centre, with noise; (C, M, 68) confidence."""
    rng = np.random.default_rng(seed)
    face = base_face_landmarks()[:68]
    face = face - face.mean(0)
    points = np.stack([face + rng.normal(0, 30, 3) + [0, -150, 0] for _ in range(faces)])   # (M, 68, 3) cm
    px = rig.project_world(points) + rng.normal(0, sigma_px, (len(rig), faces, 68, 2))
    return px, np.ones(px.shape[:3])


def only(px, conf, views):
    """The faces seen by ``views`` only."""
    mask = np.isin(np.arange(len(px)), views)
    return np.where(mask[:, None, None, None], px, np.nan), np.where(mask[:, None, None], conf, 0.0)


def test_views_that_agree_are_all_kept(rig):
    px, conf = only(*observed(rig), [0, 3, 5, 8])
    keep = consistent_views(rig, px, conf, 4.0)
    assert (keep[[0, 3, 5, 8]]).all() and keep.sum() == 12
    assert (worst_view_error_px(rig, px, conf, keep) < 1.5).all()


def test_a_view_whose_face_is_shifted_is_left_out(rig):
    """A face detected 15 px away in one of four views (another face, an ear): that view
    alone goes (exhaustive search); the other faces keep every view."""
    views = [0, 3, 5, 8]
    px, conf = only(*observed(rig), views)
    px[views[1], 1] += [15.0, -9.0]
    keep = consistent_views(rig, px, conf, 4.0)
    assert not keep[views[1], 1] and keep[views, 1].sum() == len(views) - 1
    assert keep[views][:, [0, 2]].all()


def test_faces_seen_by_many_views_are_left_to_ransac(rig):
    """Beyond MAX_VIEWS_CHECKED views RANSAC's majority outvotes a wrong view: nothing is
    dropped here, and the triangulation leaves that view out point by point."""
    from annotate.geometry.triangulation import triangulate_points

    views = list(range(MAX_VIEWS_CHECKED + 3))
    px, conf = only(*observed(rig), views)
    px[2, 0] += [15.0, -9.0]
    keep = consistent_views(rig, px, conf, 4.0)
    assert keep[views].all()
    tri = triangulate_points(rig, px, conf)
    assert not tri.inliers[0, :, 2].any() and tri.inliers[1, :, 2].all()


def test_a_face_whose_two_views_disagree_keeps_none(rig):
    px, conf = only(*observed(rig), [2, 7])
    px[7, 0] += [0.0, 20.0]
    keep = consistent_views(rig, px, conf, 4.0)
    assert not keep[:, 0].any() and keep[[2, 7], 1].all()


def test_a_face_seen_once_keeps_its_view(rig):
    px, conf = only(*observed(rig), [4])
    assert consistent_views(rig, px, conf, 4.0)[4].all()


def test_tolerance_grows_with_the_face_above_the_reference_size():
    from annotate.geometry.face_views import face_size_px, threshold_tolerance

    px = np.full((3, 2, 68, 2), np.nan)
    px[0, 0] = np.random.default_rng(0).uniform([100, 200], [160, 300], (68, 2))      # ~60 x ~100 px
    px[1, 0] = px[0, 0] * 3                                                            # ~300 px
    size = face_size_px(px)
    assert size[0, 0] == pytest.approx(np.ptp(px[0, 0, :, 1])) and np.isnan(size[2]).all()
    tol = threshold_tolerance(px, 120.0)
    assert tol[0, 0] == 1.0 and tol[1, 0] == pytest.approx(size[1, 0] / 120.0) and (tol[2] == 1.0).all()
    assert (threshold_tolerance(px, None) == 1.0).all()


def test_view_agreement_scales_with_the_image(rig):
    """The same faces filmed at three times the resolution (K scaled, detector errors 3x
    larger in px): fixed pixel thresholds drop views kept at the original resolution;
    thresholds that grow with the face (every face here above the reference size) keep
    exactly the same views."""
    import dataclasses

    from annotate.geometry.face_views import face_size_px, threshold_tolerance

    views = [0, 3, 5, 8]
    px, conf = only(*observed(rig, sigma_px=2.0, seed=5), views)
    px[views[1], 1] += [15.0, -9.0]                                        # a wrong view, as above
    reference = 0.9 * np.nanmin(face_size_px(px))
    big = dataclasses.replace(rig, K=np.diag([3.0, 3.0, 1.0]) @ rig.K)
    px3 = 3.0 * px
    small = consistent_views(rig, px, conf, 4.0, tolerance=threshold_tolerance(px, reference))
    fixed = consistent_views(big, px3, conf, 4.0)
    grown = consistent_views(big, px3, conf, 4.0, tolerance=threshold_tolerance(px3, reference))
    assert small[views].sum() == 3 * len(views) - 1                         # only the wrong view goes
    assert fixed[views].sum() < small[views].sum()
    assert np.array_equal(grown, small)
