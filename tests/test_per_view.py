import numpy as np

from annotate.geometry.cameras import CameraRig
from annotate.geometry.rotations import matrix_from_euler
from annotate.head.per_view import (REJECT_BEHIND, REJECT_FIT, REJECT_NONE, REJECT_OUT, REJECT_SMALL, ViewConfig,
                                      camera_labels, sphere_outline_camera)


def one_camera(dist=(0, 0, 0, 0, 0), f=1500.0, size=(1920, 1080)):
    K = np.array([[f, 0, size[0] / 2], [0, f, size[1] / 2], [0, 0, 1]])
    return CameraRig(("00_00",), K[None], np.array([dist], float), np.eye(3)[None], np.zeros((1, 3)),
                     np.array([size], float))


def test_outline_points_are_tangent():
    c = np.array([[10.0, -5.0, 250.0]])
    pts = sphere_outline_camera(c, np.array([12.0]), 32)[0]
    # each point is on the sphere and its ray is perpendicular to the radius (tangent)
    np.testing.assert_allclose(np.linalg.norm(pts - c, axis=1), 12.0, atol=1e-9)
    np.testing.assert_allclose(np.einsum("ki,ki->k", pts, pts - c), 0.0, atol=1e-8)


def test_box_of_a_sphere_on_the_axis_matches_the_analytic_size():
    rig = one_camera()
    d, r = 300.0, 12.5
    lab = camera_labels(rig, np.diag([1.0, -1, -1])[None], np.array([[0, 0, d]]), np.array([r]), np.array([True]),
                        ViewConfig(silhouette_points=12))
    half = 1500.0 * r / np.sqrt(d * d - r * r)
    np.testing.assert_allclose(lab.box_unclipped[0, 0], [960 - half, 540 - half, 960 + half, 540 + half], atol=1e-3)
    assert lab.reject[0, 0] == REJECT_NONE and lab.fraction_inside[0, 0] == 1.0
    np.testing.assert_allclose(lab.euler_deg[0, 0], 0.0, atol=1e-12)
    assert lab.facing[0, 0]


def test_distortion_changes_the_box_consistently_with_projection():
    rig = one_camera(dist=(-0.28, 0.18, 0.0006, 0.0009, -0.04))
    centre = np.array([[60.0, 30.0, 250.0]])
    lab = camera_labels(rig, np.eye(3)[None], centre, np.array([12.5]), np.array([True]))
    # the exact outline, densely sampled, projected with the one projection function
    px = rig.project_world(sphere_outline_camera(centre, np.array([12.5]), 3600)[0])[0]
    size = px.max(0) - px.min(0)
    np.testing.assert_allclose(lab.box_unclipped[0, 0, :2], px.min(0), atol=0.002 * size.max())
    np.testing.assert_allclose(lab.box_unclipped[0, 0, 2:], px.max(0), atol=0.002 * size.max())
    # the lens model bends the box: without distortion it differs by pixels
    plain = camera_labels(one_camera(), np.eye(3)[None], centre, np.array([12.5]), np.array([True]))
    assert np.abs(plain.box_unclipped - lab.box_unclipped).max() > 2.0


def test_reject_reasons_and_facing():
    rig = one_camera()
    R = np.stack([np.diag([1.0, -1, -1]), matrix_from_euler(np.pi, 0.0, 0.0), np.eye(3), np.eye(3), np.eye(3)])
    t = np.array([[0, 0, 300.0],        # frontal, accepted
                  [0, 0, 300.0],        # back of the head: accepted, not facing
                  [0, 0, -300.0],       # behind the camera
                  [400.0, 0, 300.0],    # far outside the image
                  [0, 0, 5000.0]])      # 50 m away: tiny
    lab = camera_labels(rig, R, t, np.full(5, 12.5), np.array([True, True, True, True, True]))
    assert lab.reject[0].tolist() == [REJECT_NONE, REJECT_NONE, REJECT_BEHIND, lab.reject[0, 3], REJECT_SMALL]
    assert lab.reject[0, 3] in (REJECT_OUT, "outside_lens_model")
    assert lab.facing[0, 0] and not lab.facing[0, 1]
    np.testing.assert_allclose(lab.euler_deg[0, 1], [180, 0, 0], atol=1e-9)
    lab = camera_labels(rig, R[:1], t[:1], np.full(1, 12.5), np.array([False]))
    assert lab.reject[0, 0] == REJECT_FIT


def test_partly_outside_box_is_clipped_with_fraction():
    rig = one_camera()
    # centre exactly on the left image border: half the box is outside
    z = 300.0
    x = -960.0 / 1500.0 * z
    lab = camera_labels(rig, np.eye(3)[None], np.array([[x, 0, z]]), np.array([12.5]), np.array([True]),
                        ViewConfig(min_fraction_inside=0.6, silhouette_points=360))
    assert lab.box[0, 0, 0] == 0.0
    assert 0.45 < lab.fraction_inside[0, 0] < 0.55
    assert lab.reject[0, 0] == REJECT_OUT
