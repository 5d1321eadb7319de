"""Temporal smoothing of head rotations along tracks (annotate.labels.smoothing)."""
import numpy as np

from annotate.geometry.rotations import geodesic_distance, matrix_from_rotvec
from annotate.labels.smoothing import SmoothingConfig, smooth_rotations

FPS = 29.97


def turning_head(n, accel=True):
    """(n, 3, 3) a head turning about a slowly moving axis with angular acceleration."""
    t = np.arange(n) / FPS
    angle = 1.2 * t + (0.8 * t ** 2 if accel else 0.0)                  # rad
    axis = np.stack([np.sin(0.3 * t), np.ones_like(t), 0.2 * np.cos(0.2 * t)], 1)
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return matrix_from_rotvec(axis * angle[:, None])


def noisy(R, deg, rng):
    return R @ matrix_from_rotvec(rng.normal(0.0, np.radians(deg) / np.sqrt(3), (len(R), 3)))


def test_smoothing_removes_noise_without_lagging_a_turning_head():
    rng = np.random.default_rng(0)
    R = turning_head(120)
    raw = noisy(R, 1.0, rng)
    track, frame = np.zeros(120, int), np.arange(120)
    out, smoothed, _ = smooth_rotations(track, frame, raw, np.ones(120, bool))
    assert smoothed[10:-10].all()
    before = np.degrees(geodesic_distance(raw, R))
    after = np.degrees(geodesic_distance(out, R))
    assert np.median(after) < 0.65 * np.median(before)
    # The predicted variance ratio matches the measured one (independent noise here).
    _, _, ratio = smooth_rotations(track, frame, raw, np.ones(120, bool))
    measured = np.mean(after[10:-10] ** 2) / np.mean(before[10:-10] ** 2)
    assert 0.6 < measured / np.median(ratio[10:-10]) < 1.6 and (ratio[10:-10] < 1).all()
    # No lag: the mean signed error along the motion is tiny compared with the noise.
    exact, _, _ = smooth_rotations(track, frame, R, np.ones(120, bool))
    assert np.degrees(geodesic_distance(exact, R)).max() < 0.05


def test_tracks_and_gaps_are_respected():
    rng = np.random.default_rng(1)
    R = noisy(turning_head(60), 1.0, rng)
    other = noisy(turning_head(60, accel=False)[::-1], 1.0, rng)
    track = np.r_[np.zeros(60, int), np.ones(60, int)]
    frame = np.r_[np.arange(60), np.arange(60)]
    both, _, _ = smooth_rotations(track, frame, np.concatenate([R, other]), np.ones(120, bool))
    alone, _, _ = smooth_rotations(np.zeros(60, int), np.arange(60), R, np.ones(60, bool))
    np.testing.assert_allclose(both[:60], alone, atol=1e-12)
    # Frames kept 5 apart (frame_step 5): no neighbour within 0.15 s, raw rotations kept.
    out, smoothed, _ = smooth_rotations(np.zeros(60, int), 5 * np.arange(60), R, np.ones(60, bool))
    assert not smoothed.any() and np.array_equal(out, R)


def test_failed_fits_are_neither_smoothed_nor_neighbours():
    rng = np.random.default_rng(2)
    R = noisy(turning_head(40), 1.0, rng)
    ok = np.ones(40, bool)
    ok[20] = False
    bad = R.copy()
    bad[20] = np.eye(3)                                   # a garbage fit flagged not ok
    out, smoothed, _ = smooth_rotations(np.zeros(40, int), np.arange(40), bad, ok)
    assert not smoothed[20] and np.array_equal(out[20], np.eye(3))
    ref, _, _ = smooth_rotations(np.zeros(39, int), np.delete(np.arange(40), 20), np.delete(R, 20, 0), np.ones(39, bool))
    np.testing.assert_allclose(np.delete(out, 20, 0), ref, atol=1e-12)


def test_motion_the_window_cannot_describe_keeps_the_raw_fit():
    rng = np.random.default_rng(3)
    R = matrix_from_rotvec(rng.normal(0.0, 0.5, (40, 3)))          # 30 deg jumps every frame
    out, smoothed, _ = smooth_rotations(np.zeros(40, int), np.arange(40), R, np.ones(40, bool))
    assert not smoothed.any() and np.array_equal(out, R)
    off, none, _ = smooth_rotations(np.zeros(40, int), np.arange(40), R, np.ones(40, bool),
                                 SmoothingConfig(enabled=False))
    assert not none.any() and np.array_equal(off, R)
