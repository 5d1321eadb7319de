"""The training loop (after torchvision's classification reference ``train.py``).

``train(config)`` runs a whole training: single process, or DDP when launched by
``torchrun`` (``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` in the environment; NCCL on CUDA,
gloo on CPU). Per step: uint8 batch to the device, normalise (channels_last when on),
forward under autocast (bf16 on CUDA by default; fp16 uses a GradScaler), loss,
backward, optional gradient clipping, optimizer and per-step LR schedule.

Run directory (``run_dir``)::

    config.yaml            the resolved config (every default filled in)
    log.txt                what the run printed
    metrics.csv            one row per log interval (kind=train) and per evaluation (kind=val)
    checkpoints/last.pt    the latest good checkpoint (annotate.train.checkpoint)
    eval/                  the last evaluation's metrics.json, per_sample.csv and plots

Resuming (``engine.resume: auto``) continues from ``checkpoints/last.pt`` mid-epoch: the
sampler skips the batches already done and every RNG is restored, so a deterministic run
that was killed and resumed ends with the same weights and metrics as one that was not.
A non-finite loss stops the run (``NonFiniteLossError``) before the optimizer step, and no
checkpoint is written after it: ``last.pt`` stays the last good one.

Fault injection for tests: ``ANNOTATE_TRAIN_KILL_AT_STEP=N`` makes the run SIGKILL its
own process group (itself and its loader workers) right after optimizer step N, as a
pre-emption would; start it in a session of its own.
"""
from __future__ import annotations

import csv
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from annotate.train.augment import AugmentConfig
from annotate.train.checkpoint import (capture_rng_state, identity_difference, load_checkpoint, restore_rng_state,
                                      run_identity, save_checkpoint, unwrap_model)
from annotate.train.config import resolve_train_config, save_train_config
from annotate.datasets.splits import balance_weights
from annotate.train.data import EpochSampler, PoseDataset, RecordSource, make_loader, normalize_images
from annotate.train.evaluate import autocast_for, evaluation_loader, predict, score, write_report, format_report
from annotate.train.losses import build_criterion
from annotate.train.metrics import constant_baseline_deg
from annotate.train.models import build_model

KILL_ENV = "ANNOTATE_TRAIN_KILL_AT_STEP"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(pref: str) -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    if pref == "cuda" and not torch.cuda.is_available():
        raise ValueError("engine.device is cuda but no CUDA device is available")
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(pref)


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto`` -> bf16 on CUDA, off on CPU."""
    if amp == "auto":
        return "bf16" if device.type == "cuda" else "off"
    return amp


def setup_distributed(device_pref: str) -> DistInfo:
    """Join the torchrun process group when launched by torchrun; else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_pref)
    if world == 1:
        return DistInfo(0, 1, 0, device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, device)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, numpy and torch; in deterministic mode also forbid nondeterministic kernels."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def build_optimizer(model: torch.nn.Module, optim_cfg: dict) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov); no weight decay on biases and normalisation parameters."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": optim_cfg["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    if optim_cfg["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=optim_cfg["lr"], momentum=optim_cfg["momentum"], nesterov=True)
    return torch.optim.AdamW(groups, lr=optim_cfg["lr"])


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """LR multiplier at ``step``: linear warm-up, then constant or cosine decay to 0."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, span) / span))


TARGET_KEYS = ("euler_deg", "R", "landmarks", "visible")


def forward_loss(net, criterion, batch: dict, dev: torch.device, amp: str, channels_last: bool):
    """One batch to the device (uint8 images normalised there), forward under autocast, loss.

    Returns ``(loss, parts)`` as the criterion does.
    """
    images = normalize_images(batch["image"].to(dev, non_blocking=True), channels_last)
    targets = {k: batch[k].to(dev, non_blocking=True) for k in TARGET_KEYS}
    with autocast_for(dev, amp):
        out = net(images)
    return criterion(out, targets)


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, optimizer, scaler, grad_clip: float | None) -> None:
    """Backward (scaled for fp16), optional gradient-norm clipping, optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()


class RunLog:
    """Prints (rank 0) and appends to run_dir/log.txt."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def __call__(self, msg: str) -> None:
        if not self.enabled:
            return
        print(msg, flush=True)
        with open(self.path, "a") as f:
            f.write(msg + "\n")


METRIC_FIELDS = ("kind", "epoch", "step", "lr", "loss", "images_per_s", "n", "mae", "yaw", "pitch", "roll",
                 "geodesic", "maev", "baseline_mae", "seconds")


class MetricsCSV:
    """metrics.csv with fixed columns (METRIC_FIELDS) plus the loss parts, in a stable order.

    ``truncate_after(step)`` drops rows logged after a checkpoint, so a resumed run's file
    matches an uninterrupted one's.
    """

    def __init__(self, path: Path, part_names: list[str]):
        self.path = path
        self.fields = list(METRIC_FIELDS) + [f"loss_{p}" for p in part_names]

    def truncate_after(self, step: int) -> None:
        if not self.path.is_file():
            return
        with open(self.path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, self.fields)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def loss_part_names(model_cfg: dict) -> list[str]:
    """The criterion's part names (metrics.csv columns), without building it."""
    if model_cfg["pose_head"] == "bins":
        names = [f"{k}_{a}" for a in ("yaw", "pitch", "roll") for k in ("ce", "reg")]
    else:
        names = ["geodesic"]
    if model_cfg["landmarks"]:
        names.append("landmarks")
        if model_cfg["visibility"]:
            names.append("visibility")
    return names


def open_sources(cfg: dict) -> tuple[RecordSource, RecordSource | None]:
    """The train and validation sources of ``cfg['data']``; the training set must exist."""
    from annotate.train.data import open_shard_source

    train = open_shard_source(cfg["data"], "train")
    if train is None or len(train) == 0:
        raise ValueError(f"no training samples: data.train is empty and split {cfg['data']['train_split']!r} "
                         f"of dataset {cfg['data']['dataset']!r} has no shards")
    return train, open_shard_source(cfg["data"], "val")


@dataclass
class TrainState:
    epoch: int = 0           # current epoch (0-based)
    step: int = 0            # optimizer steps done in all
    epoch_batches: int = 0   # batches of ``epoch`` already done


def _checkpoint_state(model, optimizer, scheduler, scaler, st: TrainState, cfg: dict, baseline: np.ndarray,
                      best: dict | None, window: tuple[dict, int]) -> dict:
    """Everything to continue exactly; ``window`` = the loss sums and step count since the
    last metrics row, so a resumed run logs the same rows."""
    sums, steps = window
    return {"model": unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": st.epoch,
            "step": st.step, "epoch_batches": st.epoch_batches, "rng": capture_rng_state(), "config": cfg,
            "baseline_deg": [float(v) for v in baseline], "last_eval": best,
            "identity": run_identity(cfg),
            "log_window": {"sums": {k: float(v) for k, v in sums.items()}, "steps": steps}}


def _resume_path(cfg: dict, run_dir: Path, log) -> Path | None:
    """The checkpoint to resume from: ``engine.resume`` as a path, or with ``auto`` the run's
    ``last.pt`` when it is the same run (config and dataset, ``run_identity``); otherwise
    the run starts afresh and says why."""
    resume = cfg["engine"]["resume"]
    if resume == "never":
        return None
    if resume != "auto":
        return Path(resume)
    p = run_dir / "checkpoints" / "last.pt"
    if not p.is_file():
        return None
    why = identity_difference(load_checkpoint(p).get("identity"), run_identity(cfg))
    if why:
        log(f"not resuming {p}: {why}; training from the start")
        return None
    return p


def _barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        dist.barrier()


def _all_finite(loss: torch.Tensor, info: DistInfo) -> bool:
    """Whether the loss is finite on every process (all stop together)."""
    ok = torch.isfinite(loss.detach()).to(torch.float32)
    if info.world_size > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())


def _maybe_kill(step: int) -> None:
    """Test hook: SIGKILL this process's whole group (loader workers too) after step N."""
    kill_at = os.environ.get(KILL_ENV)
    if kill_at is not None and step == int(kill_at):
        os.killpg(os.getpgid(0), signal.SIGKILL)


def run_validation(model, val_source, cfg, info: DistInfo, amp: str, channels_last: bool, baseline,
                   out_dir: Path, title: str) -> dict:
    """Evaluate on the validation set (rank 0 only; others wait) and write the report."""
    report = {}
    if info.main:
        loader = evaluation_loader(val_source, cfg["data"]["image_size"], cfg["data"]["crop_fraction"],
                                   cfg["data"]["batch_size"], min(cfg["data"]["num_workers"], 2))
        # The plain module: DDP's forward would wait for the other ranks' buffer broadcast.
        pred = predict(unwrap_model(model), loader, info.device, amp, channels_last)
        report = score(pred, baseline)
        write_report(report, pred, out_dir, title)
    _barrier(info)
    return report


def train(config: dict | str | Path, train_source: RecordSource | None = None,
          val_source: RecordSource | None = None) -> dict:
    """Train as ``config`` says (see schemas/train_config.schema.yaml); returns a summary dict
    with the final step, the last validation report and the run directory.

    The data come from the shards ``data.train`` / ``data.val`` name, unless sources are
    given (external sets, in-memory tests).
    """
    cfg = resolve_train_config(config)
    info = setup_distributed(cfg["engine"]["device"])
    run_dir = Path(cfg["run_dir"])
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    log = RunLog(run_dir / "log.txt", info.main)
    if cfg["engine"]["threads"]:
        torch.set_num_threads(cfg["engine"]["threads"])
    seed_everything(cfg["seed"], cfg["deterministic"])
    dev = info.device
    amp = resolve_amp(cfg["engine"]["amp"], dev)
    channels_last = cfg["engine"]["channels_last"] == "on" or (cfg["engine"]["channels_last"] == "auto"
                                                               and dev.type == "cuda")

    if train_source is None:
        train_source, val_source = open_sources(cfg)
    train_labels = train_source.labels_deg()
    baseline = constant_baseline_deg(train_labels)

    model = build_model(cfg["model"]).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_criterion(cfg["model"], model)
    optimizer = build_optimizer(model, cfg["optim"])
    scaler = torch.amp.GradScaler(dev.type, enabled=amp == "fp16")

    data = cfg["data"]
    weights = balance_weights(train_labels[:, 0], data["yaw_balance_bin_deg"]) if data["yaw_balanced"] else None
    sampler = EpochSampler(len(train_source), batch_size=data["batch_size"], seed=cfg["seed"], rank=info.rank,
                           world_size=info.world_size, weights=weights, order=data["order"],
                           block_size=data["block_size"], window_blocks=data["window_blocks"],
                           streams=max(1, data["num_workers"]))
    steps_per_epoch = sampler.per_rank // data["batch_size"]
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_source)} training samples make no batch of {data['batch_size']} "
                         f"per process ({info.world_size} processes)")
    total_steps = cfg["optim"]["epochs"] * steps_per_epoch
    if cfg["optim"]["max_steps"]:
        total_steps = min(total_steps, cfg["optim"]["max_steps"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, cfg["optim"]["warmup_steps"], cfg["optim"]["schedule"]))

    st, last_eval = TrainState(), None
    part_sums: dict[str, torch.Tensor | float] = {}
    window_steps = 0
    metrics_csv = MetricsCSV(run_dir / "metrics.csv", loss_part_names(cfg["model"]))
    ckpt_path = _resume_path(cfg, run_dir, log)
    if ckpt_path is not None:
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        st = TrainState(state["epoch"], state["step"], state["epoch_batches"])
        last_eval = state.get("last_eval")
        part_sums, window_steps = dict(state["log_window"]["sums"]), state["log_window"]["steps"]
        restore_rng_state(state["rng"])
        if info.main:
            metrics_csv.truncate_after(st.step)
        log(f"resumed from {ckpt_path}: epoch {st.epoch}, step {st.step}, batch {st.epoch_batches} of the epoch")
    if info.main:
        save_train_config(cfg, run_dir / "config.yaml")
    log(f"training {cfg['model']['arch']} ({cfg['model']['backbone']}) on {len(train_source)} samples"
        f"{'' if val_source is None else f', validating on {len(val_source)}'}; {info.world_size} process(es) "
        f"on {dev}, amp {amp}, channels_last {channels_last}; {steps_per_epoch} steps/epoch, {total_steps} steps")

    net = model
    if info.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if dev.type == "cuda" else None)
    if cfg["engine"]["compile"]:
        net = torch.compile(net)

    dataset = PoseDataset(train_source, data["image_size"], data["crop_fraction"],
                          AugmentConfig.from_config(cfg["augment"]), seed=cfg["seed"])
    loader = make_loader(dataset, data["batch_size"], sampler, data["num_workers"], drop_last=True,
                         pin_memory=dev.type == "cuda", seed=cfg["seed"])

    def save():
        if info.main:
            save_checkpoint(run_dir / "checkpoints" / "last.pt",
                            _checkpoint_state(model, optimizer, scheduler, scaler, st, cfg, baseline, last_eval,
                                              (part_sums, window_steps)))
        _barrier(info)

    def validate():
        nonlocal last_eval
        if val_source is None:
            return
        t0 = time.perf_counter()
        report = run_validation(net, val_source, cfg, info, amp, channels_last, baseline, run_dir / "eval",
                                f"{cfg['model']['arch']} step {st.step}")
        if info.main:
            m, b = report["model"]["all"], report["baseline"]["all"]
            last_eval = {"step": st.step, "model": m, "baseline": b}
            metrics_csv.write({"kind": "val", "epoch": st.epoch, "step": st.step, **{k: m[k] for k in (
                "n", "mae", "yaw", "pitch", "roll", "geodesic", "maev")}, "baseline_mae": b["mae"],
                "seconds": time.perf_counter() - t0})
            log(format_report(report, f"validation at step {st.step}"))

    progress = None
    if info.main and cfg["engine"]["progress"]:
        from tqdm import tqdm

        progress = tqdm(total=total_steps, initial=st.step, desc="train", unit="step", file=sys.stderr,
                        mininterval=1.0, dynamic_ncols=True)
    net.train()
    window_t0 = time.perf_counter()
    try:
        while st.step < total_steps:
            sampler.set_epoch(st.epoch, start=st.epoch_batches * data["batch_size"])
            for batch in loader:
                loss, parts = forward_loss(net, criterion, batch, dev, amp, channels_last)
                if not _all_finite(loss, info):
                    raise NonFiniteLossError(
                        f"loss is {loss.item()} at epoch {st.epoch}, step {st.step + 1} "
                        f"(parts: {', '.join(f'{k}={float(v):.4g}' for k, v in parts.items())}); stopped. "
                        f"Last good checkpoint: {run_dir / 'checkpoints' / 'last.pt'} (step <= {st.step}). "
                        f"Lower optim.lr, set optim.grad_clip, or check the labels.")
                optimizer_step(loss, model, optimizer, scaler, cfg["optim"]["grad_clip"])
                scheduler.step()
                st.step += 1
                st.epoch_batches += 1
                window_steps += 1
                for k, v in parts.items():
                    part_sums[k] = part_sums.get(k, 0.0) + v
                if progress is not None:
                    progress.update(1)
                if st.step % cfg["engine"]["log_every_steps"] == 0 or st.step == total_steps:
                    dt = time.perf_counter() - window_t0
                    means = {k: float(v) / window_steps for k, v in part_sums.items()}
                    ips = window_steps * data["batch_size"] * info.world_size / max(dt, 1e-9)
                    if info.main:
                        metrics_csv.write({"kind": "train", "epoch": st.epoch, "step": st.step,
                                           "lr": scheduler.get_last_lr()[0], "loss": means.pop("loss"),
                                           "images_per_s": ips, **{f"loss_{k}": v for k, v in means.items()}})
                        if progress is not None:
                            progress.set_postfix(loss=f"{float(part_sums['loss']) / window_steps:.4g}",
                                                 img_s=f"{ips:.0f}")
                    part_sums, window_steps, window_t0 = {}, 0, time.perf_counter()
                if st.step % cfg["engine"]["checkpoint_every_steps"] == 0:
                    save()
                _maybe_kill(st.step)
                if st.step >= total_steps:
                    break
            else:
                # The epoch ran to its end.
                st.epoch += 1
                st.epoch_batches = 0
                if st.epoch % cfg["engine"]["eval_every_epochs"] == 0 and st.step < total_steps:
                    validate()
                save()
        if progress is not None:
            progress.close()
        validate()
        save()
    finally:
        if progress is not None:
            progress.close()
    log(f"done: {st.step} steps; checkpoint {run_dir / 'checkpoints' / 'last.pt'}")
    return {"step": st.step, "epoch": st.epoch, "run_dir": str(run_dir), "last_eval": last_eval}
