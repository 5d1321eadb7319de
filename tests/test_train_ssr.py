"""Stagewise soft regression (SSR-Net) and FSA-Net: the stage arithmetic, full-range yaw,
the score functions, capsules, config checks, and learning on the synthetic heads."""
import numpy as np
import pytest
import torch

from annotate.config import ConfigError
from annotate.train.config import resolve_train_config
from annotate.train.fsanet import CapsuleLayer, FineGrainedAggregation, TwoStream, pixel_scores
from annotate.train.losses import build_criterion
from annotate.train.models import build_model
from annotate.train.ssr import circular_ssr, linear_ssr

STAGES = (3, 3, 3)


def _hard(indices, stages=STAGES, eta=0.0, delta=0.0):
    """One-hot stage distributions picking ``indices``, constant shifts and ranges (one sample)."""
    probs = [torch.nn.functional.one_hot(torch.tensor([i]), s).double() for i, s in zip(indices, stages)]
    etas = [torch.full((1, s), float(eta), dtype=torch.float64) for s in stages]
    deltas = [torch.full((1,), float(delta), dtype=torch.float64) for _ in stages]
    return probs, etas, deltas


def test_linear_stages_land_on_the_finest_bin_centres():
    # span 198: stage widths 66, 22, 7.33; centred indices -1, 0, 1.
    assert linear_ssr(*_hard((2, 2, 2)), 198.0, 1.0).item() == pytest.approx(66 + 22 + 22 / 3)
    assert linear_ssr(*_hard((0, 1, 2)), 198.0, 1.0).item() == pytest.approx(-66 + 22 / 3)
    assert linear_ssr(*_hard((1, 1, 1)), 198.0, 1.0).item() == pytest.approx(0.0)
    # Every finest centre is reached once: 27 distinct values spaced 198 / 27 apart, within +-99.
    values = sorted(linear_ssr(*_hard((i, j, k)), 198.0, 1.0).item() for i in range(3) for j in range(3)
                    for k in range(3))
    np.testing.assert_allclose(np.diff(values), 198.0 / 27)
    assert -99 < values[0] and values[-1] < 99


def test_shift_moves_a_bin_and_dynamic_range_scales_it():
    # eta = 1 on every bin moves each stage's pick by one of its bins.
    assert linear_ssr(*_hard((1, 1, 1), eta=1.0), 198.0, 1.0).item() == pytest.approx(66 + 22 + 22 / 3)
    # delta = -0.5 with lambda_d 1 doubles stage 1's width (and so its children's).
    wide = linear_ssr(*_hard((2, 1, 1), delta=-0.5), 198.0, 1.0).item()
    assert wide == pytest.approx(2 * 66)
    assert linear_ssr(*_hard((2, 1, 1), delta=-0.5), 198.0, 0.0).item() == pytest.approx(66)   # lambda_d 0: off


def test_circular_yaw_covers_the_back_and_wraps():
    # Sectors of 120 deg centred at -120, 0, 120; refinements of 40 and 13.3 deg.
    assert circular_ssr(*_hard((0, 0, 0)), 1.0).item() == pytest.approx(-120 - 40 - 40 / 3)
    assert circular_ssr(*_hard((2, 2, 2)), 1.0).item() == pytest.approx(120 + 40 + 40 / 3)
    # Past the seam: 120 + 40 + 13.3 + a shift of one finest bin wraps to the negative side.
    probs, etas, deltas = _hard((2, 2, 2))
    etas[2][:] = 1.0
    assert circular_ssr(probs, etas, deltas, 1.0).item() == pytest.approx(120 + 40 + 80 / 3 - 360)
    # Mass split between the two back sectors means the back (+-180), never the front.
    half = [torch.tensor([[0.5, 0.0, 0.5]], dtype=torch.float64)] + _hard((1, 1, 1))[0][1:]
    yaw = circular_ssr(half, _hard((1, 1, 1))[1], _hard((1, 1, 1))[2], 1.0).item()
    assert abs(abs(yaw) - 180.0) < 1e-6
    assert abs(linear_ssr(half, *_hard((1, 1, 1))[1:], 360.0, 1.0).item()) < 1e-6    # the linear form: the front


def test_the_loss_wraps_yaw_and_the_head_decodes_in_range():
    cfg = resolve_train_config({"model": {"arch": "ssrnet"}, "data": {"image_size": 64}})["model"]
    torch.manual_seed(0)
    model = build_model(cfg)
    crit = build_criterion(cfg, model)
    head = model.heads["pose"]
    out = model(torch.randn(4, 3, 64, 64))
    pred = head.angles_deg(out).detach()
    assert pred.shape == (4, 3) and (pred[:, 0] >= -180).all() and (pred[:, 0] < 180).all()
    # Labels 1 deg past the prediction on the other side of the seam cost 1 deg, not 359.
    target = pred.clone()
    target[:, 0] = torch.where(pred[:, 0] > 0, pred[:, 0] - 360 + 1, pred[:, 0] + 360 - 1)
    batch = {"euler_deg": target, "R": torch.eye(3).expand(4, 3, 3), "landmarks": torch.zeros(4, 70, 2),
             "visible": torch.zeros(4, 70)}
    loss, parts = crit(out, batch)
    assert parts["l1_yaw"].item() == pytest.approx(1.0, abs=1e-3)
    assert parts["l1_pitch"].item() == pytest.approx(0.0, abs=1e-4)
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("score", ["conv", "variance", "uniform"])
def test_fsa_score_functions_build_and_train(score):
    cfg = resolve_train_config({"model": {"arch": "fsanet", "ssr": {"score": score}},
                                "data": {"image_size": 64}})["model"]
    assert cfg["ssr"]["aggregation"] == "fsa" and cfg["ssr"]["score"] == score and cfg["ssr"]["stages"] == [3, 3, 3]
    torch.manual_seed(0)
    model = build_model(cfg)
    crit = build_criterion(cfg, model)
    out = model(torch.randn(2, 3, 64, 64))
    batch = {"euler_deg": torch.tensor([[170.0, 10, -5], [-30, 0, 20]]), "R": torch.eye(3).expand(2, 3, 3),
             "landmarks": torch.zeros(2, 70, 2), "visible": torch.zeros(2, 70)}
    loss, parts = crit(out, batch)
    loss.backward()
    assert torch.isfinite(loss) and set(parts) == {"l1_yaw", "l1_pitch", "l1_roll", "loss"}
    assert model.decode(out)["euler_deg"].shape == (2, 3)


def test_score_maps_and_structure_pooling():
    torch.manual_seed(0)
    u = torch.randn(2, 64, 8, 8)
    np.testing.assert_allclose(pixel_scores(u, "variance", None).numpy(),
                               u.numpy().var(axis=1).reshape(2, 64), rtol=1e-5)
    assert torch.equal(pixel_scores(u, "uniform", None), torch.ones(2, 64))
    conv = torch.nn.Conv2d(64, 1, 1)
    s = pixel_scores(u, "conv", conv)
    assert s.shape == (2, 64) and (s > 0).all() and (s < 1).all()
    agg = FineGrainedAggregation(3, "conv", primary_capsules=21, structure_dim=5, capsule_dim=16, routings=2)
    feats = agg([u, u * 0.5, u * 2])
    assert feats.shape == (2, 48)
    caps = feats.view(2, 3, 16).norm(dim=-1)
    assert (caps < 1).all()                           # squashed capsule lengths
    with pytest.raises(ValueError, match="multiple"):
        FineGrainedAggregation(3, "conv", primary_capsules=20, structure_dim=5, capsule_dim=16, routings=2)


def test_capsule_routing_agrees_with_a_direct_computation():
    torch.manual_seed(1)
    layer = CapsuleLayer(num_in=4, dim_in=3, num_out=2, dim_out=5, routings=1)
    u = torch.randn(2, 4, 3)
    # One routing pass: uniform coupling, squash of the mean prediction.
    u_hat = torch.einsum("njdi,bni->bnjd", layer.W, u)
    s = u_hat.sum(1) / 2
    expected = s * (s.norm(dim=-1, keepdim=True) ** 2 / (1 + s.norm(dim=-1, keepdim=True) ** 2)) / s.norm(
        dim=-1, keepdim=True)
    torch.testing.assert_close(layer(u), expected, rtol=1e-4, atol=1e-6)


def test_two_stream_gives_three_8x8_stage_maps_and_refuses_other_sizes():
    stages = TwoStream()(torch.randn(1, 3, 64, 64))
    assert [tuple(u.shape) for u in stages] == [(1, 64, 8, 8)] * 3
    with pytest.raises(ValueError, match="64 x 64"):
        TwoStream()(torch.randn(1, 3, 32, 32))


def test_ssr_config_checks():
    with pytest.raises(ConfigError, match="image_size: 64"):
        resolve_train_config({"model": {"arch": "fsanet"}})                      # default 224 px
    with pytest.raises(ConfigError, match="go together"):
        resolve_train_config({"model": {"arch": "fsanet", "pose_head": "bins"}, "data": {"image_size": 64}})
    with pytest.raises(ConfigError, match="go together"):
        resolve_train_config({"model": {"arch": "sixd", "backbone": "two_stream"}, "data": {"image_size": 64}})
    with pytest.raises(ConfigError, match="multiple"):
        resolve_train_config({"model": {"arch": "fsanet", "ssr": {"primary_capsules": 20}},
                              "data": {"image_size": 64}})
    narrow = resolve_train_config({"model": {"arch": "ssrnet", "ssr": {"yaw": "linear"}},
                                   "data": {"image_size": 64}})["model"]
    assert narrow["ssr"]["aggregation"] == "none" and not build_model(narrow).heads["pose"].circular_yaw
    assert resolve_train_config({"model": {"arch": "sixd"}})["model"]["ssr"] is None


@pytest.mark.slow
def test_fsanet_runs_through_the_trainer(tmp_path):
    import csv

    from annotate.train.engine import train
    from train_synthetic import make_source

    cfg = {"run_dir": str(tmp_path / "run"), "seed": 0, "deterministic": True, "model": {"arch": "fsanet"},
           "data": {"image_size": 64, "batch_size": 4, "num_workers": 0, "order": "random"},
           "optim": {"epochs": 1, "lr": 0.003},
           "engine": {"threads": 1, "checkpoint_every_steps": 2, "log_every_steps": 1, "progress": False}}
    summary = train(cfg, make_source(12, 64, seed=0), make_source(5, 64, seed=1, sequence="held"))
    assert summary["step"] == 3 and summary["last_eval"]["model"]["n"] == 5
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [r["kind"] for r in rows] == ["train"] * 3 + ["val"]
    for r in rows[:3]:
        parts = [float(r[f"loss_l1_{a}"]) for a in ("yaw", "pitch", "roll")]
        assert float(r["loss"]) == pytest.approx(sum(parts) / 3, rel=1e-4)
    assert "yaw 120-180" in (tmp_path / "run" / "eval" / "report.txt").read_text()
