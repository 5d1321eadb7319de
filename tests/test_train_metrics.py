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


def test_breakdown_splits_narrow_back_bands_and_sequences():
    true = np.array([[0.0, 0, 0], [95.0, 0, 0], [-170.0, 0, 0], [-90.0, 0, 0]])
    errs = {"yaw": np.array([1.0, 2.0, 3.0, 4.0])}
    b = M.breakdown(errs, true, np.array(["a", "a", "b", "b"]))
    assert b["narrow"]["n"] == 2 and b["narrow"]["yaw"] == pytest.approx(2.5)      # DirectMHP: |yaw| <= 90
    assert b["all"]["n"] == 4 and b["back"]["yaw"] == pytest.approx(2.5) and b["seq:b"]["yaw"] == pytest.approx(3.5)
    assert [b[f"yaw {band}"]["n"] for band in ("0-60", "60-120", "120-180")] == [1, 2, 1]
    assert b["yaw 60-120"]["yaw"] == pytest.approx(3.0)


def test_yaw_bands_split_at_60_and_120_and_hold_every_sample_once():
    yaw = np.array([0.0, 59.99, 60.0, -60.0, 119.99, 120.0, -179.5, 180.0, -180.0])
    masks = M.yaw_band_masks(np.column_stack([yaw, np.zeros((len(yaw), 2))]))
    assert list(masks) == ["yaw 0-60", "yaw 60-120", "yaw 120-180"]
    np.testing.assert_array_equal(np.argmax(np.stack(list(masks.values())), axis=0), [0, 0, 1, 1, 1, 2, 2, 2, 2])
    assert (np.stack(list(masks.values())).sum(0) == 1).all()


def _flipped_back_to_front(true_deg: np.ndarray) -> np.ndarray:
    """The same pitch and roll with the head turned round: yaw + 180, wrapped into (-180, 180]."""
    out = true_deg.copy()
    out[:, 0] = np.mod(out[:, 0] + 180.0 + 180.0, 360.0) - 180.0
    return out


@pytest.mark.parametrize("head", ["euler", "rotation"])
def test_a_back_to_front_flip_never_scores_as_a_small_error(head):
    # Every yaw, pitch and roll up to +-85 (near the gimbal lock too), as an Euler head's output
    # and as a rotation head's (both go through complete_pose as in predict).
    g = np.meshgrid(np.arange(-180.0, 180.0, 15.0), np.arange(-85.0, 86.0, 17.0), np.arange(-85.0, 86.0, 17.0),
                    indexing="ij")
    true = np.column_stack([a.ravel() for a in g])
    te, tR = complete_pose({"euler_deg": true.copy()})
    flipped = _flipped_back_to_front(true)
    fe, fR = complete_pose({"euler_deg": flipped} if head == "euler" else {"R": matrix_from_euler(
        *np.deg2rad(flipped).T)})
    errs = M.per_sample_errors(fe, te, fR, tR)
    np.testing.assert_allclose(errs["geodesic"], 180.0, atol=1e-6)
    assert errs["mae"].min() >= 60.0 - 1e-6              # at least one angle 180 deg off
    pred = Predictions(fe, fR, te, tR, np.array(["s"] * len(te)), np.array([str(i) for i in range(len(te))]))
    report = score(pred, None)
    for subset, row in report["model"].items():
        assert row["geodesic"] >= 179.99 and row["mae"] >= 60.0 - 1e-6, subset
    # And a yaw error of 180 is reported as 180 on both sides of the seam.
    np.testing.assert_allclose(M.euler_errors(np.array([[-10.0, 0, 0], [10.0, 0, 0]]),
                                              np.array([[170.0, 0, 0], [-170.0, 0, 0]]))[:, 0], 180.0)


def test_figures_do_not_depend_on_the_batch_size():
    import torch

    from annotate.train.config import resolve_train_config
    from annotate.train.evaluate import evaluation_loader, predict
    from annotate.train.models import build_model
    from train_synthetic import make_source

    source = make_source(11, 32, seed=4)
    cfg = resolve_train_config({"model": {"arch": "sixd", "backbone": "mobilenet_v3_small", "width_mult": 0.25}})
    torch.manual_seed(0)
    model = build_model(cfg["model"]).eval()
    baseline = M.constant_baseline_deg(source.labels_deg())
    reports = [score(predict(model, evaluation_loader(source, 32, 1.0, bs, 0), torch.device("cpu")), baseline)
               for bs in (1, 4, 11, 64)]
    for other in reports[1:]:
        for who in ("model", "baseline"):
            assert other[who].keys() == reports[0][who].keys()
            for subset, row in reports[0][who].items():
                assert other[who][subset]["n"] == row["n"]
                for k, v in row.items():
                    np.testing.assert_allclose(other[who][subset][k], v, rtol=1e-5, atol=1e-4, err_msg=f"{subset} {k}")


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
    assert "constant" in text and "seq:s1" in text and "geodesic" in text and "narrow" in text
    band_rows = [line for line in text.splitlines() if line.startswith("yaw ")]
    assert [r.split()[1] for r in band_rows] == ["0-60", "60-120", "120-180"]
    assert sum(int(r.split()[2]) for r in band_rows) == report["model"]["all"]["n"]
    assert float(band_rows[0].split()[3]) == pytest.approx(report["model"]["yaw 0-60"]["mae"], abs=0.01)
    write_report(report, pred, tmp_path)
    for name in ("metrics.json", "report.txt", "per_sample.csv", "error_by_yaw.png", "pred_vs_true.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "error_by_yaw.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_complete_pose_round_trips():
    pred = _predictions(10, 0.0)
    e, R = complete_pose({"R": pred.R})
    np.testing.assert_allclose(M.euler_errors(e, pred.euler_deg), 0.0, atol=1e-6)
