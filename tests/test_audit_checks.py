"""The audit's measurements and checks on constructed inputs with known answers."""
import numpy as np
import pandas as pd
import pytest

from annotate.audit import measures
from annotate.audit.checks import (
    CHECKS,
    AuditFailed,
    check_gate,
    mark_flagged,
    overall_passed,
    run_checks,
)
from annotate.audit.sync import best_lag, foreground_centroid, sync_windows
from annotate.config import resolve_config
from annotate.geometry.procrustes import umeyama
from annotate.geometry.rotations import geodesic_distance, matrix_from_euler
from annotate.head.face_model import base_face_landmarks

FPS = 30.0


def test_reprojection_is_a_median_and_needs_enough_points():
    fitted = np.zeros((2, 70, 2))
    detected = np.zeros((2, 70, 2))
    detected[0, :, 0] = 3.0
    detected[0, :10, 0] = 500.0            # detector outliers do not move the median
    detected[1, 4:] = np.nan               # 4 points only
    out = measures.reprojection_px(fitted, detected)
    assert out[0] == pytest.approx(3.0)
    assert np.isnan(out[1])


def _track(n=30, flip_at=None):
    yaw = 2.0 * np.arange(n)                # 2 deg/frame = 60 deg/s
    R = matrix_from_euler(np.radians(yaw), np.zeros(n), np.zeros(n))
    if flip_at is not None:                 # a mirrored face: the fit turns round
        R[flip_at] = R[flip_at] @ matrix_from_euler(np.radians(180.0), 0.0, 0.0)
    return np.array(["s"] * n), np.zeros(n, int), np.arange(n), R


def test_neighbour_speed_flags_a_single_wrong_fit_but_not_its_neighbours():
    seq, person, frame, R = _track(flip_at=12)
    speed = measures.neighbour_angular_speed(seq, person, frame, R, FPS)
    assert speed[12] > 1500                 # ~180 deg over 1-3 frames
    others = np.delete(speed, 12)
    assert np.allclose(others, 60.0, rtol=1e-6)


def test_neighbour_speed_respects_tracks_and_gaps():
    seq, person, frame, R = _track(n=6)
    frame = np.array([0, 1, 2, 20, 21, 22])           # a gap of 18 frames splits the track
    person = np.array([0, 0, 0, 0, 0, 1])             # the last row is someone else
    speed = measures.neighbour_angular_speed(seq, person, frame, R, FPS, max_gap=3)
    assert np.isfinite(speed[:5]).all() and np.isnan(speed[5])


def test_track_speeds_in_any_row_order():
    n = 10
    centre = np.zeros((n, 3))
    centre[:, 0] = np.arange(n) * 2.0                 # 2 cm per frame = 60 cm/s
    seq, person, frame, R = _track(n)
    order = np.random.default_rng(0).permutation(n)
    lin = measures.head_jump_speed(seq[order], person[order], frame[order], centre[order], FPS)
    ang = measures.neighbour_angular_speed(seq[order], person[order], frame[order], R[order], FPS)
    first = np.flatnonzero(frame[order] == 0)[0]
    assert np.isnan(lin[first])
    assert np.allclose(np.delete(lin, first), 60.0) and np.allclose(ang, 60.0)


def test_head_jump_flags_a_switch_but_not_the_fit_after_a_spike():
    n = 20
    centre = np.zeros((n, 3))
    centre[:, 0] = np.arange(n) * 1.0                 # 1 cm per frame = 30 cm/s
    centre[6] += 40.0                                 # one wrong fit (a spike)
    centre[12:] += 60.0                               # an identity switch from frame 12 on
    seq, person, frame, _ = _track(n)
    speed = measures.head_jump_speed(seq, person, frame, centre, FPS)
    jumps = np.flatnonzero(speed > 400)
    assert jumps.tolist() == [6, 12]                  # the spike itself and the switch, not frames 7 or 13
    assert np.isnan(speed[0])


def test_body_distance_uses_the_face_joints_with_confidence():
    model = np.zeros((2, 70, 3))
    joints = np.full((2, 19, 3), np.nan)
    conf = np.full((2, 19), -1.0)
    joints[0, measures.BODY_FACE_JOINTS] = [0.0, 0.0, 4.0]
    conf[0, measures.BODY_FACE_JOINTS] = 0.9
    assert measures.body_head_distance_cm(model, joints, conf)[0] == pytest.approx(4.0)
    assert np.isnan(measures.body_head_distance_cm(model, joints, conf)[1])


def test_best_lag_finds_a_shift_and_zero_for_a_synced_video():
    rng = np.random.default_rng(2)
    t = np.arange(120)
    path = np.stack([300 + 80 * np.sin(t / 9.0), 200 + 50 * np.cos(t / 13.0)], axis=1)   # head centre, px
    label = {(0, int(f)): path[f] for f in t}
    offset = np.array([4.0, 9.0])                     # body below the head: a constant bias
    synced = {(0, int(f)): path[f] + offset + rng.normal(0, 1.0, 2) for f in t}
    shifted = {(0, int(f)): path[f + 3] + offset + rng.normal(0, 1.0, 2) for f in t[:-3]}
    est = best_lag(synced, label, max_lag=5)
    assert est.lag_frames == 0 and est.score == 1.0
    est = best_lag(shifted, label, max_lag=5)
    assert est.lag_frames == 3 and est.score < 0.3
    assert best_lag(dict(list(synced.items())[:5]), label, max_lag=5).lag_frames is None   # too few pairs


def test_sync_windows_spread_over_long_videos_only():
    frames = np.arange(0, 1000)
    parts = sync_windows(frames, 3, 150)
    assert [(int(p[0]), int(p[-1])) for p in parts] == [(0, 149), (425, 574), (850, 999)]
    short = np.arange(10, 300)
    assert len(sync_windows(short, 3, 150)) == 1 and (sync_windows(short, 3, 150)[0] == short).all()


def test_foreground_centroid_finds_a_blob_in_its_box():
    background = np.full((100, 100), 90, np.uint8)
    luma = background.copy()
    luma[40:50, 60:70] = 20                            # a dark head at rows 40-49, cols 60-69 (1/4 res)
    c = foreground_centroid(luma, background, np.array([200.0, 120.0, 320.0, 240.0]))
    assert np.allclose(c, (np.array([64.5, 44.5]) + 0.5) * 4 - 0.5)
    assert foreground_centroid(luma, background, np.array([0.0, 0.0, 100.0, 100.0])) is None


def _samples(n=200):
    rng = np.random.default_rng(3)
    cams = np.array(["00_00", "00_01"] * (n // 2))
    df = pd.DataFrame({"sequence": "s", "frame": np.arange(n) // 2, "person": 0, "camera": cams, "valid": True,
                       "fit_rejected": False, "fit_rms_cm": rng.uniform(0.3, 0.6, n),
                       "fit_landmarks_used": 66, "reprojection_rel": 0.02, "angular_speed_deg_s": 50.0,
                       "head_speed_cm_s": 40.0, "body_distance_cm": 2.0, "crosscheck_cm": np.nan,
                       "uncertainty_deg": 0.8})
    cameras = pd.DataFrame({"sequence": "s", "camera": ["00_00", "00_01"], "reprojection_ratio": [1.0, 4.0],
                            "sync_lag_frames": pd.array([0, 3], dtype="Int16"), "sync_score": [1.0, 0.2]})
    return df, cameras


def test_checks_flag_rows_camera_level_and_not_run():
    samples, cameras = _samples()
    samples.loc[5, "fit_rms_cm"] = 2.0
    settings = resolve_config(None)["audit"]["checks"]
    flags, metrics = run_checks(samples, cameras, settings)
    assert set(metrics) == {c.name for c in CHECKS}
    assert metrics["crosscheck"]["passed"] is None and metrics["crosscheck"]["measured"] == 0
    assert metrics["fit_residual"]["flagged"] == 1 and metrics["fit_residual"]["passed"] is True   # 0.5% <= 1%
    # Camera 00_01 is miscalibrated and out of step: every one of its labels is flagged twice.
    for reason in ("camera_reprojection", "video_sync"):
        rows = flags[flags.reason == reason]
        assert set(rows.camera) == {"00_01"} and len(rows) == 100
        assert metrics[reason]["passed"] is False
    assert not overall_passed(metrics)
    marked = mark_flagged(samples, flags)
    assert marked.loc[5, "reasons"] == "camera_reprojection,fit_residual,video_sync"
    assert (marked.flagged == (marked.camera == "00_01") | (marked.index == 5)).all()


def test_clean_samples_pass_and_the_gate(tmp_path):
    import json

    samples, cameras = _samples()
    cameras["reprojection_ratio"] = 1.0
    cameras["sync_lag_frames"] = pd.array([0, 0], dtype="Int16")
    flags, metrics = run_checks(samples, cameras, resolve_config(None)["audit"]["checks"])
    assert len(flags) == 0 and overall_passed(metrics)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"passed": True, "counts": {"labels": 200, "flagged_labels": 0}, "checks": metrics}))
    assert "PASSED" in check_gate(path)
    metrics["fit_residual"]["passed"] = False
    path.write_text(json.dumps({"passed": False, "counts": {"labels": 200, "flagged_labels": 1}, "checks": metrics}))
    with pytest.raises(AuditFailed, match="fit_residual"):
        check_gate(path)


def test_detections_are_matched_per_frame_by_least_reprojection():
    rng = np.random.default_rng(4)
    fitted = rng.uniform(0, 500, (3, 70, 2))              # frame 0: labels 0, 1; frame 1: label 2
    label_frame = np.array([0, 0, 1])
    side = np.full(3, 100.0)
    # Frame 0's detections come in the other order, one 30 px off (a miscalibrated camera);
    # frame 1's only face belongs to nobody here (farther than one box side).
    detected = np.stack([fitted[1] + 2.0, fitted[0] + [30.0, 0.0], fitted[2] + 400.0])
    index, cost = measures.match_detections(label_frame, fitted, side, np.array([0, 0, 1]), detected)
    assert index.tolist() == [1, 0, -1]
    assert cost[0] == pytest.approx(30.0) and cost[1] == pytest.approx(np.hypot(2, 2)) and np.isnan(cost[2])
    # The stage gave detection 0 (label 1's face) to person 7: label 1 (person 8) may not
    # take it; unclaimed detections (-1) stay candidates.
    index, _ = measures.match_detections(label_frame, fitted, side, np.array([0, 0, 1]), detected,
                                         label_person=np.array([5, 8, 9]), detection_person=np.array([7, -1, -1]))
    assert index.tolist() == [1, -1, -1]


def test_cameras_with_few_labels_are_not_judged_against_their_rig():
    from annotate.audit.stage import MIN_CAMERA_LABELS, reprojection_ratios

    ratios = reprojection_ratios(np.array([1.0, 1.2, 5.0, 9.0, np.nan]),
                                 np.array([100, 100, MIN_CAMERA_LABELS, MIN_CAMERA_LABELS - 1, 50]))
    assert np.allclose(ratios[:3], np.array([1.0, 1.2, 5.0]) / 3.1) and np.isnan(ratios[3:]).all()
