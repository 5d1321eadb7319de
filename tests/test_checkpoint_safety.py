"""Checkpoints load without unpickling code, and auto-resume only continues the same run."""
import json
import os
import pickle

import pytest
import torch

from annotate.train.checkpoint import (capture_rng_state, load_checkpoint, restore_rng_state, run_identity,
                                       save_checkpoint)
from annotate.train.config import resolve_train_config
from annotate.train.setup import resume_path


class Payload:
    """Unpickling this runs a shell command (what a crafted .pt would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_checkpoint_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.pt"
    torch.save({"format": "annotate.train.checkpoint/1", "model": {}, "evil": Payload(marker)}, bad)
    with open(tmp_path / "plain.pkl", "wb") as f:                   # the same as a raw pickle
        pickle.dump({"evil": Payload(marker)}, f)
    for path in (bad, tmp_path / "plain.pkl"):
        with pytest.raises(ValueError, match="refused"):
            load_checkpoint(path)
    assert not marker.exists()


def test_rng_states_round_trip_through_a_safe_checkpoint(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    save_checkpoint(tmp_path / "c.pt", {"rng": state, "model": {"w": torch.ones(2)}, "value": np.float64(1.5)})
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["value"] == 1.5 and type(loaded["value"]) is float
    restore_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def make_run(tmp_path, **optim):
    dataset = tmp_path / "dataset"
    dataset.mkdir(exist_ok=True)
    if not (dataset / "index.json").exists():
        (dataset / "index.json").write_text(json.dumps({"schema": "samples", "shards": []}))
    cfg = resolve_train_config({"run_dir": str(tmp_path / "run"), "data": {"dataset": str(dataset)},
                                "optim": optim})
    return cfg, tmp_path / "run"


def test_auto_resume_continues_only_the_same_run(tmp_path):
    messages = []
    cfg, run = make_run(tmp_path)
    save_checkpoint(run / "checkpoints" / "last.pt", {"identity": run_identity(cfg)})
    assert resume_path(cfg, run, messages.append) == run / "checkpoints" / "last.pt"
    changed, _ = make_run(tmp_path, lr=0.123)
    assert resume_path(changed, run, messages.append) is None
    assert "config changed (optim.lr)" in messages[-1]
    (tmp_path / "dataset" / "index.json").write_text(json.dumps({"schema": "samples", "shards": [{"rows": 1}]}))
    assert resume_path(cfg, run, messages.append) is None
    assert "dataset changed" in messages[-1]
    # Where it runs is not what it computes: another device still resumes.
    cfg2, _ = make_run(tmp_path)
    save_checkpoint(run / "checkpoints" / "last.pt", {"identity": run_identity(cfg2)})
    cfg2["engine"]["device"] = "cpu" if cfg2["engine"]["device"] != "cpu" else "auto"
    assert resume_path(cfg2, run, messages.append) is not None
