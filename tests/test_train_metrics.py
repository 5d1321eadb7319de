"""Evaluation metrics, the constant baseline, the report and its plots."""
import numpy as np
import pytest

from annotate.geometry.rotations import matrix_from_euler, rot_y
from annotate.train import metrics as M
from annotate.train.evaluate import Predictions, complete_pose, format_report, score, write_report


def test_euler_errors_wrap_yaw_only():
    e = M.euler_errors(np.array([[179.0, 10.0, -170.0]]), np.array([[-179.0, -10.0, 170.0]]))
    np.testing.assert_allclose(e, [[2.0, 20.0, 340.0]])


def test_vector_and_geodesic_errors_of_a_known_rotation():
    R = matrix_from_euler(*np.deg2rad([[10.0, 0.0, 0.0]]).T)
    Rp = rot_y(np.deg2rad([30.0]))[0] @ R[0]
    err = M.per_sample_errors(np.array([[40.0, 0, 0]]), np.array([[10.0, 0, 0]]), Rp[None], R)
    assert err["geodesic"][0] == pytest.approx(30.0)
    assert err["vec_left"][0] == pytest.approx(30.0) and err["vec_forward"][0] == pytest.approx(30.0)
    assert err["vec_up"][0] == pytest.approx(0.0, abs=1e-6)
    assert err["mae"][0] == pytest.approx(10.0)


def test_breakdown_splits_frontal_back_and_sequences():
    true = np.array([[0.0, 0, 0], [95.0, 0, 0], [-170.0, 0, 0], [-90.0, 0, 0]])
    errs = {"yaw": np.array([1.0, 2.0, 3.0, 4.0])}
    b = M.breakdown(errs, true, np.array(["a", "a", "b", "b"]))
    assert b["frontal"]["n"] == 2 and b["frontal"]["yaw"] == pytest.approx(2.5)
    assert b["back"]["yaw"] == pytest.approx(2.5) and b["seq:b"]["yaw"] == pytest.approx(3.5)


def test_constant_baseline_minimises_mae_across_the_seam():
    e = np.array([[175.0, 1.0, -3.0], [-175.0, 2.0, 0.0], [170.0, 30.0, 1.0]])
    c = M.constant_baseline_deg(e)
    assert abs(abs(c[0]) - 180.0) <= 5.0            # not the arithmetic mean (~57)
    assert c[1] == 2.0 and c[2] == 0.0


def _predictions(n=40, noise=5.0, seed=0):
    rng = np.random.default_rng(seed)
    true = np.column_stack([rng.uniform(-180, 180, n), rng.uniform(-40, 40, n), rng.uniform(-40, 40, n)])
    pred = true + rng.normal(0, noise, true.shape)
    pe, pR = complete_pose({"euler_deg": pred})
    te, tR = complete_pose({"euler_deg": true.copy()})
    return Predictions(pe, pR, te, tR, np.array(["s0", "s1"] * (n // 2)), np.array([f"id{i}" for i in range(n)]))


def test_report_puts_model_beside_the_baseline_and_writes_plots(tmp_path):
    pred = _predictions()
    report = score(pred, M.constant_baseline_deg(pred.true_euler_deg))
    assert report["model"]["all"]["mae"] < 10 < report["baseline"]["all"]["mae"]
    text = format_report(report)
    assert "constant" in text and "seq:s1" in text and "geodesic" in text
    write_report(report, pred, tmp_path)
    for name in ("metrics.json", "report.txt", "per_sample.csv", "error_by_yaw.png", "pred_vs_true.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "error_by_yaw.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_complete_pose_round_trips():
    pred = _predictions(10, 0.0)
    e, R = complete_pose({"R": pred.R})
    np.testing.assert_allclose(M.euler_errors(e, pred.euler_deg), 0.0, atol=1e-6)
