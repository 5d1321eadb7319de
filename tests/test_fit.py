import json

import numpy as np
import pytest

from annotate.head.head_frame import HeadFrameSpec
from annotate.geometry.rotations import geodesic_distance, matrix_from_quaternion
from annotate.labels.fit import LANDMARK_SETS, STATUS_OK, STATUS_SCALE, STATUS_TOO_FEW, FitConfig, fit_heads
from annotate.head.head_model import HeadModel, build_head_model, load_head_model, save_head_model
from annotate.head.face_model import base_face_landmarks


def posed_faces(rng, n, noise=0.3, outliers=0.05, scale=(0.93, 1.07)):
    base = base_face_landmarks()
    R = matrix_from_quaternion(rng.normal(size=(n, 4)))
    s = rng.uniform(*scale, n)
    t = rng.uniform(-100, 100, (n, 3)) + np.array([0, -150, 0])
    clean = s[:, None, None] * np.einsum("nij,kj->nki", R, base) + t[:, None]
    noisy = clean + rng.normal(size=clean.shape) * noise
    out = rng.random(noisy.shape[:2]) < outliers
    noisy[out] += rng.normal(size=(out.sum(), 3)) * 3.0
    return base, noisy, R, s, t


def test_model_from_noisy_faces_is_the_canonical_base_face():
    rng = np.random.default_rng(0)
    base, noisy, *_ = posed_faces(rng, 400, scale=(1.0, 1.0))
    model = build_head_model(noisy)
    assert model.faces_used == 400
    np.testing.assert_allclose(model.landmarks_head, base, atol=0.08)


def test_fit_recovers_pose_and_scale():
    rng = np.random.default_rng(1)
    base, noisy, R, s, t = posed_faces(rng, 500)
    fits = fit_heads(HeadModel(base), noisy, None)
    err = np.degrees(geodesic_distance(fits.R_world_head, R))
    # the Cramer-Rao bound for this face and noise is a median of 0.71 deg, p99 1.6 deg
    assert np.median(err) < 0.9 and np.percentile(err, 99) < 2.0
    np.testing.assert_allclose(fits.scale, s, atol=0.03)
    np.testing.assert_allclose(fits.t_world_head, t, atol=0.6)
    assert (fits.status == STATUS_OK).all()
    assert (fits.rms_cm < 0.8).all()


def test_whenet_subset_uses_its_14_landmarks_only():
    assert len(LANDMARK_SETS["whenet14"]) == 14 == len(set(LANDMARK_SETS["whenet14"]))
    rng = np.random.default_rng(2)
    base, noisy, R, *_ = posed_faces(rng, 5, noise=0.0, outliers=0.0)
    fits = fit_heads(HeadModel(base), noisy, None, FitConfig(landmarks="whenet14", robust=False, use_scores=False))
    assert (fits.landmarks_used == 14).all()
    unused = np.setdiff1d(np.arange(70), LANDMARK_SETS["whenet14"])
    assert (fits.landmark_weight[:, unused] == 0).all()
    np.testing.assert_allclose(fits.R_world_head, R, atol=1e-8)


def test_statuses_for_bad_faces():
    rng = np.random.default_rng(3)
    base, noisy, *_ = posed_faces(rng, 3, noise=0.1, outliers=0.0)
    noisy[0, :65] = np.nan                       # too few landmarks
    noisy[1] = noisy[1] * 2.0                    # a giant head
    fits = fit_heads(HeadModel(base), noisy, None)
    assert fits.status.tolist() == [STATUS_TOO_FEW, STATUS_SCALE, STATUS_OK]
    scores = np.ones((3, 70))
    scores[2, :] = 0.0                           # zero scores: nothing usable
    assert fit_heads(HeadModel(base), noisy, scores).status[2] == STATUS_TOO_FEW


def test_head_model_file_round_trip_and_errors(tmp_path):
    model = HeadModel(base_face_landmarks(), HeadFrameSpec((0.0, -1.0, -9.0), 12.0), 10, "test")
    path = save_head_model(model, tmp_path / "m.json")
    back = load_head_model(path)
    np.testing.assert_allclose(back.landmarks_head, model.landmarks_head, atol=1e-5)
    assert back.spec == model.spec and back.faces_used == 10
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_head_model(tmp_path / "bad.json")
    doc = json.loads(path.read_text())
    doc["landmarks_head"] = doc["landmarks_head"][:60]
    (tmp_path / "short.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="70, 3"):
        load_head_model(tmp_path / "short.json")
    with pytest.raises(ValueError, match="at least 3"):
        build_head_model(np.zeros((2, 70, 3)))


def test_never_observed_landmarks_are_filled_from_the_reference_face():
    rng = np.random.default_rng(4)
    base, noisy, *_ = posed_faces(rng, 50, noise=0.05, outliers=0.0, scale=(1.0, 1.0))
    noisy[:, 11:17] = np.nan                      # one side of the jaw is never seen
    model = build_head_model(noisy)
    assert np.isfinite(model.landmarks_head).all()
    np.testing.assert_allclose(model.landmarks_head, base, atol=0.1)
    assert "[11, 12, 13, 14, 15, 16]" in model.source
    with pytest.raises(ValueError, match="only 2 landmarks"):
        build_head_model(np.where(np.arange(70)[None, :, None] < 2, noisy, np.nan))
