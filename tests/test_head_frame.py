"""The head frame's zero pose is WHENet's: convention tests."""
import numpy as np
import pytest

from annotate.head.head_frame import (HeadFrameSpec, canonicalize_landmarks, eye_mouth_axes,
                                          head_axes, head_frame_from_landmarks, whenet_axes)
from annotate.geometry.rotations import geodesic_distance, matrix_from_quaternion, rot_x
from annotate.head.whenet_reference import REFERENCE_HEAD_CM, WHENET_FACE70, WHENET_REFERENCE
from annotate.head.face_model import base_face_landmarks


def reference_as_face70(R=np.eye(3), t=np.zeros(3), scale=1.0, rng=None):
    """A face70 set whose 14 WHENet points are the reference head posed by (scale, R, t);
    the other points are random (they must not matter)."""
    rng = rng or np.random.default_rng(0)
    p = rng.normal(size=(70, 3)) * 4
    p[list(WHENET_FACE70)] = REFERENCE_HEAD_CM[list(WHENET_REFERENCE)]
    return scale * p @ R.T + t


def test_reference_head_itself_has_zero_pose():
    np.testing.assert_allclose(whenet_axes(reference_as_face70()), np.eye(3), atol=1e-12)


def test_whenet_axes_follow_the_pose_not_the_other_landmarks():
    rng = np.random.default_rng(1)
    R = matrix_from_quaternion(rng.normal(size=4))
    for seed in range(3):
        face = reference_as_face70(R, np.array([5.0, -150.0, 20.0]), 1.1, np.random.default_rng(seed))
        np.testing.assert_allclose(whenet_axes(face), R, atol=1e-10)


def test_axes_are_x_left_ear_y_up_z_forward():
    face = base_face_landmarks()
    R, _ = head_axes(face)
    np.testing.assert_allclose(R, np.eye(3), atol=1e-10)      # the base face is canonical
    assert face[45, 0] > 0 > face[36, 0]                        # subject's left eye at +x
    assert face[27, 1] > face[8, 1]                             # brow line above the chin
    assert face[30, 2] > face[0, 2]                             # nose ahead of the ears


def test_zero_pose_does_not_move_with_the_mouth_depth():
    """Moving the mouth 1 cm forward tilts the eye-mouth rule by degrees, WHENet's axes by
    far less (only 4 of its 14 points are on the mouth and chin)."""
    face = base_face_landmarks()
    moved = face.copy()
    moved[48:68, 2] += 1.0
    eye_mouth = np.degrees(geodesic_distance(eye_mouth_axes(face), eye_mouth_axes(moved)))
    assert eye_mouth > 4.0
    whenet = np.degrees(geodesic_distance(whenet_axes(face), whenet_axes(moved)))
    assert whenet < eye_mouth / 2


def test_orientation_is_a_named_option():
    face = base_face_landmarks() @ rot_x(np.radians(10.0)).T
    spec = HeadFrameSpec(orientation="eye_mouth")
    R, _ = head_frame_from_landmarks(face, spec)
    np.testing.assert_allclose(R, eye_mouth_axes(face))
    with pytest.raises(ValueError, match="orientation"):
        HeadFrameSpec(orientation="eyes")


def test_whenet_axes_refuse_missing_points():
    face = base_face_landmarks()
    face[8] = np.nan
    with pytest.raises(ValueError, match="finite"):
        whenet_axes(face)
    assert np.isfinite(canonicalize_landmarks(base_face_landmarks())).all()


def test_a_faces_size_against_the_mean_face_ignores_pose_and_missing_points():
    from annotate.geometry.rotations import matrix_from_rotvec
    from annotate.head.face_model import MIN_INNER_POINTS, scale_against_mean_face

    base = base_face_landmarks()
    posed = 1.3 * base @ matrix_from_rotvec(np.array([0.3, -1.2, 0.4])).T + np.array([10.0, -150.0, 300.0])
    partial = posed.copy()
    partial[36:48] = np.nan                                          # no eye, no jaw: still judged
    partial[:17] = np.nan
    few = np.full_like(base, np.nan)
    few[17:17 + MIN_INNER_POINTS - 1] = base[17:17 + MIN_INNER_POINTS - 1]
    scale, rms, used = scale_against_mean_face(np.stack([base, posed, partial, few]))
    np.testing.assert_allclose(scale[:3], [1.0, 1.3, 1.3])
    assert np.all(rms[:3] < 1e-9) and list(used) == [51, 51, 39, MIN_INNER_POINTS - 1]
    assert np.isnan(scale[3]) and np.isnan(rms[3])                   # too few points to tell
