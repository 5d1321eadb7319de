"""Views of a face that disagree with the rest are left out as a whole (geometry.face_views)."""
import numpy as np
import pytest

from annotate.geometry.face_views import MAX_EXHAUSTIVE_VIEWS, consistent_views, score
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
    assert (score(rig, px, conf, keep) < 1.5).all()


def test_a_view_whose_face_is_shifted_is_left_out(rig):
    """A face detected 15 px away in one of four views (another face, an ear): that view
    alone goes (exhaustive search); the other faces keep every view."""
    views = [0, 3, 5, 8]
    px, conf = only(*observed(rig), views)
    px[views[1], 1] += [15.0, -9.0]
    keep = consistent_views(rig, px, conf, 4.0)
    assert not keep[views[1], 1] and keep[views, 1].sum() == len(views) - 1
    assert keep[views][:, [0, 2]].all()


def test_many_views_drop_the_worst_until_the_rest_agree(rig):
    """Nine views, four of them wrong each its own way: views are removed one at a time until
    the rest agree, and every right view stays. (One wrong view among many does not move the
    median: the per-landmark RANSAC takes care of it.)"""
    views = list(range(MAX_EXHAUSTIVE_VIEWS + 3))
    px, conf = only(*observed(rig), views)
    for k, c in enumerate([1, 2, 3, 4]):
        px[c, 0] += [15.0 + 4 * k, (-1) ** k * 12.0]
    keep = consistent_views(rig, px, conf, 4.0)
    assert keep[[0, 5, 6, 7, 8], 0].all() and keep[[1, 2, 3, 4], 0].sum() < 4
    assert score(rig, px[:, :1], conf[:, :1], keep[:, :1])[0] <= 4.0
    assert keep[views][:, 1:].all()
    one_wrong = observed(rig)[0]
    one_wrong[2, 0] += [15.0, 0.0]
    assert consistent_views(rig, one_wrong, np.ones(one_wrong.shape[:3]), 4.0)[:, 0].all()


def test_a_face_whose_two_views_disagree_keeps_none(rig):
    px, conf = only(*observed(rig), [2, 7])
    px[7, 0] += [0.0, 20.0]
    keep = consistent_views(rig, px, conf, 4.0)
    assert not keep[:, 0].any() and keep[[2, 7], 1].all()


def test_a_face_seen_once_keeps_its_view(rig):
    px, conf = only(*observed(rig), [4])
    assert consistent_views(rig, px, conf, 4.0)[4].all()
