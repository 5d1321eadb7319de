import numpy as np
import pytest

from annotate.head.head_frame import HeadFrameSpec, canonicalize_landmarks, head_axes, head_frame_from_landmarks
from annotate.geometry.procrustes import generalized_procrustes, robust_umeyama, umeyama
from annotate.geometry.rotations import geodesic_distance, matrix_from_quaternion


def random_problem(rng, B=200, N=70, noise=0.0):
    src = rng.normal(size=(N, 3)) * 5
    R = matrix_from_quaternion(rng.normal(size=(B, 4)))
    s = rng.uniform(0.8, 1.2, B)
    t = rng.normal(size=(B, 3)) * 100
    dst = s[:, None, None] * np.einsum("bij,nj->bni", R, src) + t[:, None]
    return np.broadcast_to(src, dst.shape), dst + rng.normal(size=dst.shape) * noise, R, s, t


def test_umeyama_exact():
    src, dst, R, s, t = random_problem(np.random.default_rng(0))
    f = umeyama(src, dst)
    np.testing.assert_allclose(f.R, R, atol=1e-10)
    np.testing.assert_allclose(f.scale, s, atol=1e-10)
    np.testing.assert_allclose(f.t, t, atol=1e-8)
    f = umeyama(src, dst / s[:, None, None], with_scale=False)
    np.testing.assert_allclose(f.R, R, atol=1e-10)


def test_reflection_guard():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(20, 3))
    f = umeyama(src, src * np.array([-1.0, 1.0, 1.0]))
    assert np.isclose(np.linalg.det(f.R), 1.0)


def test_weights_ignore_zero_weighted_points():
    src, dst, R, s, t = random_problem(np.random.default_rng(2), B=10)
    bad = dst.copy()
    bad[:, :5] += 50.0
    w = np.ones(bad.shape[:-1])
    w[:, :5] = 0
    f = umeyama(src, bad, w)
    np.testing.assert_allclose(f.R, R, atol=1e-10)


def test_degenerate_gives_nan_not_garbage():
    f = umeyama(np.zeros((1, 5, 3)), np.zeros((1, 5, 3)), np.zeros((1, 5)))
    assert not np.isfinite(f.R).any()


@pytest.mark.parametrize("fraction", [0.05, 0.2])
def test_robust_fit_survives_gross_outliers(fraction):
    rng = np.random.default_rng(3)
    src, dst, R, s, t = random_problem(rng, B=500, noise=0.3)
    out = rng.random(dst.shape[:-1]) < fraction
    dst = dst.copy()
    dst[out] += rng.normal(size=(out.sum(), 3)) * 5.0
    err_robust = np.degrees(geodesic_distance(robust_umeyama(src, dst).transform.R, R))
    err_plain = np.degrees(geodesic_distance(umeyama(src, dst).R, R))
    assert np.median(err_robust) < 0.8
    assert np.percentile(err_robust, 99) < 2.0
    assert np.median(err_plain) > 2 * np.median(err_robust)
    fit = robust_umeyama(src, dst)
    assert (~fit.inliers & out).sum() / out.sum() > 0.9       # outliers rejected
    assert (fit.inliers & ~out).sum() / (~out).sum() > 0.98   # inliers kept
    assert fit.valid.all()


def test_robust_fit_handles_nan_landmarks():
    rng = np.random.default_rng(4)
    src, dst, R, s, t = random_problem(rng, B=5)
    dst = dst.copy()
    dst[:, :30] = np.nan
    fit = robust_umeyama(src, dst)
    np.testing.assert_allclose(fit.transform.R, R, atol=1e-8)
    assert fit.inliers[:, :30].sum() == 0
    dst[:, :67] = np.nan
    assert not robust_umeyama(src, dst).valid.any()


def test_gpa_recovers_mean_shape_despite_outliers():
    rng = np.random.default_rng(5)
    src, dst, R, s, t = random_problem(rng, B=300, noise=0.3)
    out = rng.random(dst.shape[:-1]) < 0.2
    dst = dst.copy()
    dst[out] += rng.normal(size=(out.sum(), 3)) * 5.0
    mean, w = generalized_procrustes(dst)
    f = umeyama(mean, src[0])
    assert np.abs(f.apply(mean) - src[0]).max() < 0.15


def face_like(rng):
    p = rng.normal(size=(70, 3)) * 3
    p[36:42] = [-3.2, 0, 0] + rng.normal(size=(6, 3)) * 0.5
    p[42:48] = [3.2, 0, 0] + rng.normal(size=(6, 3)) * 0.5
    p[48:60] = [0, -7, 1] + rng.normal(size=(12, 3)) * 0.5
    return p


def test_eye_mouth_axes_follow_the_definition():
    rng = np.random.default_rng(6)
    p = face_like(rng)
    R, eye_mid = head_axes(p, "eye_mouth")
    right, left, mouth = p[36:42].mean(0), p[42:48].mean(0), p[48:60].mean(0)
    np.testing.assert_allclose(R[:, 0], (left - right) / np.linalg.norm(left - right))
    assert np.dot(R[:, 1], eye_mid - mouth) > 0 and abs(np.dot(R[:, 1], R[:, 0])) < 1e-12
    assert np.isclose(np.linalg.det(R), 1.0)
    assert R[2, 2] > 0.9      # z out of the face: the face points along +z here


def test_canonical_frame_is_pose_invariant():
    rng = np.random.default_rng(7)
    p = face_like(rng)
    spec = HeadFrameSpec()
    Rw = matrix_from_quaternion(rng.normal(size=4))
    posed = 1.0 * p @ Rw.T + np.array([10.0, -150.0, 30.0])
    np.testing.assert_allclose(canonicalize_landmarks(posed, spec), canonicalize_landmarks(p, spec), atol=1e-10)
    R, origin = head_frame_from_landmarks(canonicalize_landmarks(p, spec), spec)
    np.testing.assert_allclose(R, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(origin, 0.0, atol=1e-12)
