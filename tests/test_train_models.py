"""Bins, heads, presets, backbones (local weight files) and losses."""
import numpy as np
import pytest
import torch

from annotate.config import ConfigError
from annotate.train.bins import HOPENET_BINS, WHENET_YAW_BINS, BinSpec, coarse_fine_specs, expectation_deg
from annotate.train.config import resolve_train_config
from annotate.train.losses import build_criterion, landmark_loss, visibility_loss, wrapped_squared_error
from annotate.train.models import build_backbone, build_model

TINY = {"backbone": "mobilenet_v3_small", "width_mult": 0.25}


def test_bin_index_wraps_full_range_yaw_and_clamps_others():
    idx = WHENET_YAW_BINS.index(torch.tensor([-180.0, -178.6, 179.9, 180.0, 0.0]))
    assert idx.tolist() == [0, 0, 119, 0, 60]
    assert HOPENET_BINS.index(torch.tensor([-120.0, -99.0, 98.9, 150.0])).tolist() == [0, 0, 65, 65]
    assert [s.count for s in coarse_fine_specs()] == [198, 66, 18, 3, 2]


def test_expectation_is_bin_centre_and_circular_handles_the_seam():
    spec = BinSpec(-180.0, 3.0, 120)
    logits = torch.full((2, 120), -30.0)
    logits[0, 70] = 30.0
    logits[1, [0, 119]] = 30.0                        # mass split across +-180
    lin = expectation_deg(logits, spec)
    circ = expectation_deg(logits, spec, circular=True)
    assert lin[0].item() == pytest.approx(-180 + 70 * 3 + 1.5, abs=1e-3)
    assert abs(lin[1].item()) < 1e-3                  # the plain expectation lands on the front
    assert abs(abs(circ[1].item()) - 180.0) < 1e-3    # the circular one on the back
    with pytest.raises(ValueError):
        expectation_deg(logits[:, :66], HOPENET_BINS, circular=True)


def test_presets_fill_published_defaults():
    w = resolve_train_config({"model": {"arch": "whenet"}})["model"]
    assert w["backbone"] == "efficientnet_b0" and w["yaw_loss"] == "wrapped"
    assert w["bins"]["yaw"] == [[-180.0, 3.0, 120]] and w["bins"]["pitch"] == [[-99.0, 3.0, 66]]
    h = resolve_train_config({"model": {"arch": "hopenet"}})["model"]
    assert h["backbone"] == "resnet50" and h["bins"]["yaw"] == [[-99.0, 3.0, 66]]
    cf = resolve_train_config({"model": {"arch": "coarse_fine"}})["model"]
    assert cf["ce_weights"] == [7.0, 5.0, 3.0, 1.0, 1.0] and cf["alpha"] == 2.0
    m = resolve_train_config({"model": {"arch": "multitask"}})["model"]
    assert m["pose_head"] == "sixd" and m["landmarks"] and m["visibility"]
    with pytest.raises(ConfigError, match="circular"):
        resolve_train_config({"model": {"arch": "hopenet", "expectation": "circular"}})
    with pytest.raises(ConfigError, match="batch_size"):
        resolve_train_config({"data": {"batch_size": 0}})


def _batch(n=3, seed=0):
    from annotate.geometry.rotations import matrix_from_euler

    rng = np.random.default_rng(seed)
    e = np.column_stack([rng.uniform(-180, 180, n), rng.uniform(-50, 50, n), rng.uniform(-50, 50, n)])
    R = matrix_from_euler(*np.deg2rad(e).T)
    lm = rng.uniform(0, 1, (n, 70, 2))
    lm[0, :5] = np.nan
    vis = rng.integers(0, 2, (n, 70)).astype(float)
    vis[1, :7] = np.nan
    t = lambda a: torch.tensor(a, dtype=torch.float32)
    return {"euler_deg": t(e), "R": t(R), "landmarks": t(lm), "visible": t(vis)}


@pytest.mark.parametrize("arch", ["whenet", "hopenet", "coarse_fine", "sixd", "multitask"])
def test_every_architecture_trains_one_step(arch):
    cfg = resolve_train_config({"model": {"arch": arch, **TINY}})["model"]
    torch.manual_seed(0)
    model = build_model(cfg)
    crit = build_criterion(cfg, model)
    out = model(torch.randn(3, 3, 32, 32))
    loss, parts = crit(out, _batch())
    assert torch.isfinite(loss) and "loss" in parts
    loss.backward()
    dec = model.decode(out)
    assert ("R" in dec) == (cfg["pose_head"] == "sixd")
    if "euler_deg" in dec:
        assert dec["euler_deg"].shape == (3, 3)
    if arch == "multitask":
        assert dec["landmarks"].shape == (3, 70, 2) and dec["visibility_prob"].shape == (3, 70)
        assert {"landmarks", "visibility"} <= set(parts)


@pytest.mark.parametrize("name,dim", [("efficientnet_b0", 1280), ("resnet50", 2048)])
def test_published_backbones_build_without_download(name, dim):
    net, features = build_backbone(name)
    assert features == dim
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 32, 32)).shape == (1, dim)


def test_backbone_weights_load_from_a_local_file(tmp_path):
    import torchvision

    torch.manual_seed(1)
    reference = torchvision.models.mobilenet_v3_small(weights=None)
    path = tmp_path / "imagenet.pth"
    torch.save(reference.state_dict(), path)
    net, _ = build_backbone("mobilenet_v3_small", weights_path=path)
    for (k, v), (k2, v2) in zip(reference.features.state_dict().items(), net.features.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "wrapped.pth")
    build_backbone("mobilenet_v3_small", weights_path=tmp_path / "wrapped.pth")
    with pytest.raises(ValueError, match="does not match"):
        build_backbone("mobilenet_v3_small", width_mult=0.5, weights_path=path)
    with pytest.raises(FileNotFoundError):
        build_backbone("resnet18", weights_path=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="width_mult"):
        build_backbone("resnet18", width_mult=0.5)


def test_wrapped_yaw_loss_and_masked_losses():
    assert wrapped_squared_error(torch.tensor(170.0), torch.tensor(-170.0)).item() == pytest.approx(400.0)
    assert wrapped_squared_error(torch.tensor(10.0), torch.tensor(-10.0)).item() == pytest.approx(400.0)
    b = _batch()
    pred = torch.nan_to_num(b["landmarks"]) + 0.1
    ok = torch.isfinite(b["landmarks"]).all(-1)
    assert landmark_loss(pred, b["landmarks"]).item() == pytest.approx(0.2, abs=1e-5)
    assert landmark_loss(pred, torch.full_like(pred, float("nan"))).item() == 0.0
    logits = torch.zeros(3, 70)
    assert visibility_loss(logits, b["visible"]).item() == pytest.approx(np.log(2), abs=1e-6)
    assert ok.sum() == 3 * 70 - 5


def test_binned_loss_prefers_the_right_bins():
    cfg = resolve_train_config({"model": {"arch": "whenet", **TINY, "alpha": 0.01}})["model"]
    model = build_model(cfg)
    crit = build_criterion(cfg, model)
    b = _batch()
    head = model.heads["pose"]
    good, bad = {}, {}
    for i, a in enumerate(("yaw", "pitch", "roll")):
        spec = head.specs[a][0]
        k = spec.index(b["euler_deg"][:, i])
        good[f"{a}/0"] = torch.nn.functional.one_hot(k, spec.count).float() * 20
        bad[f"{a}/0"] = torch.nn.functional.one_hot((k + spec.count // 2) % spec.count, spec.count).float() * 20
    assert crit(good, b)[0] < 1.0 < crit(bad, b)[0]
