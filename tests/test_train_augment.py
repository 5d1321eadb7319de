"""Augmentation keeps the labels right: flips, crops, colour."""
import numpy as np
import pytest

from annotate.geometry.rotations import euler_from_matrix, is_rotation, matrix_from_euler
from annotate.head.face_model import base_face_landmarks
from annotate.train import augment as A
from train_synthetic import render


def test_flip_permutation_mirrors_the_symmetric_face():
    perm = A.FLIP_PERMUTATION_70
    assert sorted(perm) == list(range(70))
    assert (perm[perm] == np.arange(70)).all()
    for a, b in [(0, 16), (8, 8), (17, 26), (21, 22), (30, 30), (31, 35), (33, 33), (36, 45), (39, 42),
                 (40, 47), (48, 54), (51, 51), (60, 64), (62, 62), (65, 67), (66, 66), (68, 69)]:
        assert perm[a] == b and perm[b] == a
    face = base_face_landmarks()           # exactly left-right symmetric, x toward the left ear
    mirrored = face * [-1.0, 1.0, 1.0]
    np.testing.assert_allclose(mirrored[perm], face, atol=1e-9)
    assert np.abs(mirrored - face).max() > 5.0     # without the permutation it is far off


def test_flip_rotation_negates_yaw_and_roll():
    rng = np.random.default_rng(0)
    e = np.column_stack([rng.uniform(-180, 180, 200), rng.uniform(-80, 80, 200), rng.uniform(-80, 80, 200)])
    R = matrix_from_euler(*np.deg2rad(e).T)
    F = A.flip_rotation(R)
    assert is_rotation(F).all()
    got = np.rad2deg(euler_from_matrix(F))
    want = np.column_stack([-e[:, 0], e[:, 1], -e[:, 2]])
    d = np.abs(np.mod(got - want + 180, 360) - 180)
    assert d.max() < 1e-6
    np.testing.assert_allclose(A.flip_rotation(F), R, atol=1e-12)


def test_flipped_sample_equals_the_mirrored_pose_rendered():
    """Rendering the mirrored rotation gives the flipped sample's landmarks (symmetric face)."""
    for yaw, pitch, roll in [(30, 10, -20), (-150, -25, 35), (180, 5, 5)]:
        R = matrix_from_euler(*np.deg2rad([yaw, pitch, roll]))
        img, lm, codes = render(R, 64)
        sample = {"image": img, "euler_deg": np.array([yaw, pitch, roll], float), "R": R, "landmarks": lm,
                  "visible": (codes == 0).astype(np.float32)}
        flipped = A.flip_sample(sample)
        _, lm_m, codes_m = render(A.flip_rotation(R), 64)
        np.testing.assert_allclose(flipped["landmarks"], lm_m, atol=1e-3)
        np.testing.assert_array_equal(flipped["visible"], (codes_m == 0).astype(np.float32))
        np.testing.assert_allclose(flipped["R"], A.flip_rotation(R))
        assert flipped["euler_deg"][0] == (180.0 if yaw == 180 else -yaw)
        np.testing.assert_array_equal(flipped["image"], img[:, ::-1])


def _dots_sample(size=96, n=6, seed=0):
    """An image with n coloured dots, the dots as landmarks 0..n-1 (the rest NaN); yaw 30."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.uint8)
    lm = np.full((70, 2), np.nan, np.float32)
    colours = rng.integers(60, 255, (n, 3))
    for i in range(n):
        x, y = rng.integers(20, size - 20, 2)
        img[y - 2:y + 3, x - 2:x + 3] = colours[i]
        lm[i] = (x, y)
    e = np.array([30.0, 0.0, 0.0])
    return {"image": img, "euler_deg": e, "R": matrix_from_euler(*np.deg2rad(e)), "landmarks": lm,
            "visible": np.ones(70, np.float32)}, colours


def test_random_crop_scale_and_flip_move_landmarks_with_pixels():
    sample, colours = _dots_sample()
    aug = A.AugmentConfig(flip=0.5, scale=(0.7, 1.1), shift=0.1, brightness=0, contrast=0, saturation=0,
                          blur_prob=0.0)
    flips = checked = 0
    for seed in range(12):
        out = A.train_transform(sample, 48, 0.9, aug, np.random.default_rng(seed))
        assert out["image"].shape == (48, 48, 3)
        flipped = out["euler_deg"][0] < 0
        flips += flipped
        for j in np.where(np.isfinite(out["landmarks"][:, 0]))[0]:
            dot = A.FLIP_PERMUTATION_70[j] if flipped else j       # which original dot this is
            x, y = np.round(out["landmarks"][j]).astype(int)
            if 1 <= x < 47 and 1 <= y < 47:
                assert np.abs(out["image"][y, x].astype(int) - colours[dot]).max() <= 40, (seed, j)
                checked += 1
    assert 0 < flips < 12 and checked > 40


def test_eval_transform_of_a_full_crop_is_a_resize_and_labels_scale():
    sample, _ = _dots_sample(64)
    out = A.eval_transform(sample, 32, 1.0)
    np.testing.assert_allclose(out["landmarks"][:6], (sample["landmarks"][:6] + 0.5) / 2 - 0.5, atol=1e-5)


def test_colour_jitter_identity_and_grey_stays_grey():
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(A.colour_jitter(img, 1.0, 1.0, 1.0, 0.0), img)
    grey = np.full((4, 4, 3), 100, np.uint8)
    out = A.colour_jitter(grey, 1.2, 0.8, 1.5, 30.0)
    assert np.ptp(out[0, 0].astype(int)) <= 1 and out[0, 0, 0] == pytest.approx(120, abs=1)
