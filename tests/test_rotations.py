"""Lock the Euler convention of docs/conventions.md with physically constructed head poses."""
import numpy as np
import pytest

from annotate.geometry.rotations import (
    euler_from_matrix, geodesic_distance, is_rotation, matrix_from_euler, matrix_from_quaternion,
    matrix_from_rotvec, matrix_from_sixd, quaternion_from_matrix, rot_x, rot_y, rot_z, rotvec_from_matrix,
    sixd_from_matrix)


def head_in_camera(forward, up):
    """R_cam_head from the face's forward (out of face) and up directions in camera coords."""
    z = np.asarray(forward, float) / np.linalg.norm(forward)
    y = np.asarray(up, float) - np.dot(up, z) * z
    y /= np.linalg.norm(y)
    x = np.cross(y, z)          # toward the subject's left ear
    return np.stack([x, y, z], axis=1)


def deg(R):
    return np.degrees(euler_from_matrix(R))


def test_frontal_is_zero():
    R = head_in_camera([0, 0, -1], [0, -1, 0])
    np.testing.assert_allclose(R, np.diag([1, -1, -1]), atol=1e-15)
    np.testing.assert_allclose(deg(R), [0, 0, 0], atol=1e-12)


@pytest.mark.parametrize("a", [10.0, 45.0, 89.0, 120.0, 170.0])
def test_face_turned_toward_image_left_is_positive_yaw(a):
    t = np.radians(a)
    R = head_in_camera([-np.sin(t), 0, -np.cos(t)], [0, -1, 0])   # image left = camera -x
    np.testing.assert_allclose(deg(R), [a, 0, 0], atol=1e-9)
    R = head_in_camera([np.sin(t), 0, -np.cos(t)], [0, -1, 0])
    np.testing.assert_allclose(deg(R), [-a, 0, 0], atol=1e-9)


def test_back_of_head_is_yaw_180():
    R = head_in_camera([0, 0, 1], [0, -1, 0])
    np.testing.assert_allclose(deg(R), [180, 0, 0], atol=1e-12)
    t = np.radians(150.0)
    R = head_in_camera([-np.sin(t), 0, -np.cos(t)], [0, -1, 0])
    np.testing.assert_allclose(deg(R), [150, 0, 0], atol=1e-9)


@pytest.mark.parametrize("b", [5.0, 30.0, 60.0])
def test_chin_up_is_positive_pitch(b):
    t = np.radians(b)
    R = head_in_camera([0, -np.sin(t), -np.cos(t)], [0, -np.cos(t), np.sin(t)])   # camera up = -y
    np.testing.assert_allclose(deg(R), [0, b, 0], atol=1e-9)


@pytest.mark.parametrize("c", [5.0, 30.0, 60.0])
def test_left_ear_down_is_positive_roll(c):
    t = np.radians(c)
    # the subject's left ear (image right in a frontal view) moves down (camera +y)
    R = head_in_camera([0, 0, -1], [np.sin(t), -np.cos(t), 0])
    assert R[1, 0] > 0          # head x axis (left ear) points down in the image
    np.testing.assert_allclose(deg(R), [0, 0, c], atol=1e-9)


def test_matrix_from_euler_matches_definition():
    rng = np.random.default_rng(0)
    y, p, r = rng.uniform(-3, 3, (3, 100))
    expected = rot_x(-p) @ rot_y(y) @ rot_z(r) @ np.diag([1.0, -1.0, -1.0])
    np.testing.assert_allclose(matrix_from_euler(y, p, r), expected, atol=1e-15)


def test_wrong_axis_order_is_detected():
    """HopeNet's own code composes Rz @ Ry @ Rx; that is a different convention from ours."""
    y, p, r = np.radians([40.0, 25.0, 15.0])
    ours = matrix_from_euler(y, p, r)
    other = rot_z(r) @ rot_y(y) @ rot_x(-p) @ np.diag([1.0, -1.0, -1.0])
    assert np.degrees(geodesic_distance(ours, other)) > 1.0
    assert not np.allclose(deg(other), np.degrees([y, p, r]), atol=0.1)


def test_round_trip_realistic_range():
    rng = np.random.default_rng(1)
    y = rng.uniform(-np.pi, np.pi, 20000)
    p = rng.uniform(-1.4, 1.4, 20000)
    r = rng.uniform(-1.4, 1.4, 20000)
    e = euler_from_matrix(matrix_from_euler(y, p, r))
    np.testing.assert_allclose(e, np.stack([y, p, r], -1), atol=1e-9)
    assert np.all(e[:, 0] > -np.pi) and np.all(e[:, 0] <= np.pi)


def test_identity_holds_for_any_rotation_including_gimbal_lock():
    rng = np.random.default_rng(2)
    R = matrix_from_quaternion(rng.normal(size=(50000, 4)))
    yaw90 = matrix_from_euler(np.full(200, np.pi / 2) + rng.normal(0, 1e-9, 200),
                              rng.uniform(-1, 1, 200), rng.uniform(-1, 1, 200))
    yaw90_exact = matrix_from_euler(np.full(5, -np.pi / 2), np.linspace(-1, 1, 5), np.zeros(5))
    for Rs in (R, yaw90, yaw90_exact):
        e = euler_from_matrix(Rs)
        assert np.abs(matrix_from_euler(*e.T) - Rs).max() < 1e-12
    # at exact gimbal lock pitch is 0 and roll carries the in-plane angle
    e = euler_from_matrix(yaw90_exact)
    np.testing.assert_allclose(e[:, 1], 0.0, atol=1e-12)


def test_solution_choice_prefers_small_pitch_and_roll():
    R = matrix_from_euler(np.radians(170.0), np.radians(50.0), np.radians(-40.0))
    np.testing.assert_allclose(deg(R), [170, 50, -40], atol=1e-9)


def test_quaternion_sixd_rotvec_round_trips():
    rng = np.random.default_rng(3)
    R = matrix_from_quaternion(rng.normal(size=(1000, 4)))
    q = quaternion_from_matrix(R)
    assert np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(matrix_from_quaternion(q), R, atol=1e-12)
    np.testing.assert_allclose(matrix_from_sixd(sixd_from_matrix(R)), R, atol=1e-12)
    np.testing.assert_allclose(matrix_from_rotvec(rotvec_from_matrix(R)), R, atol=1e-12)
    assert is_rotation(R).all()
    # 180-degree rotations are handled
    flips = np.stack([np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])])
    np.testing.assert_allclose(matrix_from_quaternion(quaternion_from_matrix(flips)), flips, atol=1e-12)


def test_geodesic_distance():
    a = np.radians(np.array([0.0, 1e-7, 0.5, 90.0, 179.9, 180.0]))
    R = rot_z(a)
    np.testing.assert_allclose(geodesic_distance(np.eye(3), R), a, atol=1e-12)
    np.testing.assert_allclose(geodesic_distance(rot_x(0.3) @ R, rot_x(0.3) @ np.eye(3)), a, atol=1e-12)
