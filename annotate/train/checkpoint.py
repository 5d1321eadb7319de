"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint holds the model, optimizer, scheduler and grad-scaler states, the epoch and
global step (and how many batches of that epoch were done), every RNG state (Python,
numpy, torch CPU and CUDA), the resolved config and the run's identity (config and dataset
fingerprint, ``run_identity``). It is written to a temporary file and renamed, so a run
killed while saving leaves the previous checkpoint intact.

Everything in it is a tensor or a plain Python value (dicts, lists, numbers, strings), so
it loads with ``torch.load(weights_only=True)``: a received file is never unpickled into
arbitrary objects, and one that needs more is refused before anything of it runs.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import torch

from annotate.core.atomic import atomic_file

CHECKPOINT_FORMAT = "annotate.train.checkpoint/1"


def capture_rng_state() -> dict:
    """The Python, numpy and torch (CPU and every CUDA device) RNG states, as tensors and
    plain values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of ``capture_rng_state``."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def plain(value):
    """``value`` with numpy scalars and arrays turned into Python numbers and lists, so it
    pickles as plain data."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# Config keys that do not change what a run computes: where and how fast it runs.
NOT_IDENTITY = ("engine", "run_dir")


def run_identity(cfg: dict) -> dict:
    """What makes two runs the same run: the resolved config (less ``NOT_IDENTITY``) and a
    SHA-256 of the data: the dataset's ``index.json`` (which lists every shard with its
    size), and the name, size and modification time of each shard file named in
    ``data.train`` / ``data.val``."""
    config = {k: v for k, v in cfg.items() if k not in NOT_IDENTITY}
    data = cfg.get("data", {})
    h = hashlib.sha256()
    index = Path(data["dataset"]) / "index.json" if data.get("dataset") else None
    if index is not None and index.is_file():
        h.update(index.read_bytes())
    for name in list(data.get("train", [])) + list(data.get("val", [])):
        path = Path(name)
        for f in sorted(path.rglob("*.parquet")) if path.is_dir() else [path]:
            st = f.stat() if f.is_file() else None
            h.update(f"{f}:{st.st_size if st else -1}:{st.st_mtime_ns if st else -1}\n".encode())
    return {"config": json.loads(json.dumps(plain(config), sort_keys=True, default=str)),
            "dataset_sha256": h.hexdigest()}


def identity_difference(saved: dict | None, current: dict) -> str:
    """Why a checkpoint's identity is not the current run's ('' when it is)."""
    if not saved:
        return "the checkpoint records no run identity"
    if saved.get("dataset_sha256") != current["dataset_sha256"]:
        return "the dataset changed (its index.json differs)"
    keys = sorted(_changed_keys(saved.get("config", {}), current["config"]))
    return f"the config changed ({', '.join(keys[:5])})" if keys else ""


def _changed_keys(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _changed_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` (plus the format tag) to ``path`` atomically."""
    with atomic_file(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **plain_state(state)}, tmp)
    return Path(path)


def plain_state(state: dict) -> dict:
    """A checkpoint state with every non-tensor value made plain (``plain``)."""
    return {k: (v if isinstance(v, torch.Tensor) or k in ("model", "optimizer", "rng") else plain(v))
            for k, v in state.items()}


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by ``save_checkpoint`` (on the CPU); refuse other files.

    ``weights_only=True``: only tensors and plain values are unpickled, so a crafted file
    cannot run code; it is refused with the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:          # UnpicklingError, RuntimeError: what the file holds is not data
        raise ValueError(f"{path}: refused: not a checkpoint of plain tensors and values "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an annotate training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and/or torch.compile wrappers (its state-dict keys are stable)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model
