"""The training engine end to end on tiny data: artefacts, NaN stop, kill and resume, DDP, CLI."""
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from annotate.cli import main as cli_main
from annotate.train.checkpoint import load_checkpoint
from annotate.train.config import resolve_train_config
from annotate.train.data import EpochSampler
from annotate.train.engine import NonFiniteLossError, train
from train_synthetic import make_records, write_shards

pytestmark = pytest.mark.slow            # end to end: tens of seconds

ROOT = Path(__file__).resolve().parents[1]


def _config(run_dir, **over):
    cfg = {"run_dir": str(run_dir), "seed": 0, "deterministic": True,
           "model": {"arch": "sixd", "backbone": "mobilenet_v3_small", "width_mult": 0.25},
           "data": {"image_size": 32, "batch_size": 6, "num_workers": 0, "block_size": 8, "window_blocks": 2},
           "optim": {"epochs": 2, "lr": 0.003},
           "engine": {"threads": 1, "checkpoint_every_steps": 3, "log_every_steps": 2, "progress": False}}
    for key, value in over.items():
        section, name = key.split(".")
        cfg[section][name] = value
    return cfg


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    write_shards(root / "train", make_records(48, 40, seed=0), per_shard=24, row_group=8)
    write_shards(root / "val", make_records(12, 40, seed=1, sequence="held"), per_shard=24, row_group=8, split="val")
    return root


def _shard_cfg(run_dir, shards, **over):
    cfg = _config(run_dir, **over)
    cfg["data"]["train"], cfg["data"]["val"] = [str(shards / "train")], [str(shards / "val")]
    return cfg


def test_run_writes_config_metrics_checkpoint_and_report(tmp_path, shards):
    # One loader worker: the fork-server workers must start after training began in-process.
    cfg = _shard_cfg(tmp_path / "run", shards, **{"model.arch": "multitask", "data.num_workers": 1})
    summary = train(cfg)
    run = tmp_path / "run"
    assert summary["step"] == 16                     # 2 epochs x (48 // 6)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved == resolve_train_config(cfg)
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [int(r["step"]) for r in train_rows] == list(range(2, 17, 2))
    assert all(r["loss_landmarks"] and r["loss_visibility"] and r["loss_geodesic"] for r in train_rows)
    val = [r for r in rows if r["kind"] == "val"]
    assert [int(r["step"]) for r in val] == [8, 16] and float(val[-1]["baseline_mae"]) > 0
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 16 and state["epoch"] == 1 and set(state["rng"]) >= {"python", "numpy", "torch"}
    assert {"model", "optimizer", "scheduler", "scaler", "config", "baseline_deg"} <= set(state)
    report = json.loads((run / "eval" / "metrics.json").read_text())
    assert report["model"]["all"]["n"] == 12 and "landmark_error" in report and "seq:held" in report["model"]
    # The CLI evaluates the checkpoint on shards and on the train command's errors exits 2.
    assert cli_main(["evaluate", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--shards",
                     str(shards / "val"), "--out", str(tmp_path / "ev"), "--workers", "0"]) == 0
    assert "constant" in (tmp_path / "ev" / "report.txt").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {arch: lenet}\n")
    assert cli_main(["train", "--config", str(bad)]) == 2


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    records = make_records(12, 32)
    cfg = resolve_train_config(_config(tmp_path / "run", **{"data.batch_size": 2, "data.order": "random",
                                                            "engine.checkpoint_every_steps": 1}))
    order = EpochSampler(12, batch_size=2, seed=0).epoch_order(0)
    bad_batch = 3
    records[int(order[2 * bad_batch])]["R_cam_head"] = np.full(9, np.nan)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 0, step 4.*last.pt"):
        train(cfg, _source(records), None)
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == bad_batch
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def _source(records):
    from annotate.train.data import InMemorySource

    return InMemorySource(records)


def _train_rows(path):
    keep = ("kind", "epoch", "step", "lr", "loss", "loss_geodesic", "mae", "geodesic")
    return [{k: r[k] for k in keep} for r in csv.DictReader(open(path))]


def _kill_at_first_checkpoint(config_path: Path, checkpoint: Path, log: Path) -> int:
    """Run ``annotate train`` in a session of its own and SIGKILL the whole session (the
    trainer and any loader workers, as a pre-emption would) as soon as its first checkpoint
    file appears. Returns the exit status (-SIGKILL when it was killed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "annotate.cli", "train", "--config", str(config_path)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def test_killed_run_resumes_to_the_same_result(tmp_path, shards):
    reference = train(_shard_cfg(tmp_path / "a", shards))
    cfg_b = _shard_cfg(tmp_path / "b", shards)
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(cfg_b))
    last = tmp_path / "b" / "checkpoints" / "last.pt"
    status = _kill_at_first_checkpoint(tmp_path / "b.yaml", last, tmp_path / "b.out")
    assert status == -signal.SIGKILL, (tmp_path / "b.out").read_text()[-3000:]
    killed_at = load_checkpoint(last)["step"]
    assert 3 <= killed_at < reference["step"]                  # checkpoints every 3 steps; killed before the end
    resumed = train(cfg_b)
    assert resumed["last_eval"] == reference["last_eval"]
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(last)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _train_rows(tmp_path / "a" / "metrics.csv") == _train_rows(tmp_path / "b" / "metrics.csv")
    assert f"resumed from {last}: epoch {killed_at // 8}, step {killed_at}" in (tmp_path / "b" / "log.txt").read_text()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_with_two_cpu_processes(tmp_path, shards):
    cfg = _shard_cfg(tmp_path / "ddp", shards, **{"optim.epochs": 1, "engine.checkpoint_every_steps": 100,
                                                  "data.order": "random"})
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "--module", "annotate.cli", "train", "--config", str(tmp_path / "ddp.yaml")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (tmp_path / "ddp" / "log.txt").read_text()
    assert "2 process(es)" in log and "4 steps/epoch" in log       # 48 samples / 2 ranks / 6 per batch
    assert load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")["step"] == 4
    assert [r["kind"] for r in csv.DictReader(open(tmp_path / "ddp" / "metrics.csv"))].count("val") == 1
