"""Setting a training run up: what torchvision's reference ``train.py`` does in ``main``
before its epoch loop.

``prepare_run(cfg)`` returns a ``TrainRun`` holding everything the loop
(``annotate.train.engine``) needs: the data (sources, sampler, loader, constant baseline),
the model (plain and wrapped for DDP / torch.compile), loss, optimizer, LR schedule and
grad scaler, the position in the run and the log. When ``engine.resume`` finds a checkpoint
of the same run it restores all of it, RNG states included (``resume_path``).

The order of the steps matters for reproducibility: the global RNG is seeded, then the
model is built (its initial weights draw from it), then a checkpoint (if any) restores the
RNG states; the sampler and the loader have generators of their own.
"""
from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from annotate.datasets.splits import balance_weights
from annotate.train.augment import AugmentConfig
from annotate.train.checkpoint import (capture_rng_state, identity_difference, load_checkpoint, restore_rng_state,
                                      run_identity)
from annotate.train.config import save_train_config
from annotate.train.data import EpochSampler, PoseDataset, RecordSource, make_loader, open_shard_source
from annotate.train.distributed import (DistInfo, channels_last_enabled, grad_scaler, resolve_amp,
                                        setup_distributed, wrap_model)
from annotate.train.losses import build_criterion, criterion_part_names
from annotate.train.metrics import constant_baseline_deg
from annotate.train.models import build_model
from annotate.train.runlog import LogWindow, MetricsCSV, RunLog


@dataclass
class Position:
    """Where the run is: the epoch (0-based), optimizer steps done in all, and batches of
    the current epoch already done (a resumed run skips them)."""

    epoch: int = 0
    step: int = 0
    epoch_batches: int = 0

    def next_epoch(self) -> None:
        self.epoch += 1
        self.epoch_batches = 0


@dataclass
class TrainRun:
    """One training run, set up (``prepare_run``)."""

    cfg: dict                         # the resolved train config
    info: DistInfo
    log: RunLog
    amp: str                          # "bf16", "fp16" or "off"
    channels_last: bool
    model: torch.nn.Module            # the plain PoseNet: what checkpoints hold
    net: torch.nn.Module              # what the loop calls: model, under DDP and/or torch.compile
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: EpochSampler
    loader: DataLoader
    val_source: RecordSource | None
    baseline_deg: np.ndarray          # (3,) the constant prediction [yaw, pitch, roll]
    steps_per_epoch: int
    total_steps: int
    metrics: MetricsCSV
    position: Position = field(default_factory=Position)
    window: LogWindow = field(default_factory=LogWindow)
    last_eval: dict | None = None     # the last validation's summary (step, model, baseline)

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg["run_dir"])

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, numpy and torch; in deterministic mode also forbid nondeterministic kernels."""
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


def build_scheduler(optimizer: torch.optim.Optimizer, optim_cfg: dict, total_steps: int):
    """The per-step LR schedule (``lr_factor``) over the run's ``total_steps``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, optim_cfg["warmup_steps"], optim_cfg["schedule"]))


def open_sources(cfg: dict) -> tuple[RecordSource, RecordSource | None]:
    """The train and validation sources of ``cfg['data']``; the training set must exist."""
    train = open_shard_source(cfg["data"], "train")
    if train is None or len(train) == 0:
        raise ValueError(f"no training samples: data.train is empty and split {cfg['data']['train_split']!r} "
                         f"of dataset {cfg['data']['dataset']!r} has no shards")
    return train, open_shard_source(cfg["data"], "val")


def train_sampler(cfg: dict, train_source: RecordSource, train_labels: np.ndarray, info: DistInfo) -> EpochSampler:
    """This process's share of each epoch's order (``data.order``; yaw-balanced draws when asked)."""
    data = cfg["data"]
    weights = balance_weights(train_labels[:, 0], data["yaw_balance_bin_deg"]) if data["yaw_balanced"] else None
    return EpochSampler(len(train_source), batch_size=data["batch_size"], seed=cfg["seed"], rank=info.rank,
                        world_size=info.world_size, weights=weights, order=data["order"],
                        block_size=data["block_size"], window_blocks=data["window_blocks"],
                        streams=max(1, data["num_workers"]))


def run_length(cfg: dict, sampler: EpochSampler, num_samples: int, info: DistInfo) -> tuple[int, int]:
    """(steps per epoch, total steps): ``optim.epochs`` epochs, capped by ``optim.max_steps``."""
    batch = cfg["data"]["batch_size"]
    steps_per_epoch = sampler.per_rank // batch
    if steps_per_epoch == 0:
        raise ValueError(f"{num_samples} training samples make no batch of {batch} "
                         f"per process ({info.world_size} processes)")
    total_steps = cfg["optim"]["epochs"] * steps_per_epoch
    if cfg["optim"]["max_steps"]:
        total_steps = min(total_steps, cfg["optim"]["max_steps"])
    return steps_per_epoch, total_steps


def resume_path(cfg: dict, run_dir: Path, log) -> Path | None:
    """The checkpoint to resume from: ``engine.resume`` as a path, or with ``auto`` the run's
    ``last.pt`` when it is the same run (config and dataset, ``run_identity``); otherwise
    the run starts afresh and ``log`` says why."""
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


def checkpoint_state(run: TrainRun) -> dict:
    """Everything to continue exactly: weights, optimizer, schedule, scaler, position, RNG
    states, config and identity, baseline, last evaluation and the open log window."""
    pos = run.position
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(), "epoch": pos.epoch,
            "step": pos.step, "epoch_batches": pos.epoch_batches, "rng": capture_rng_state(), "config": run.cfg,
            "baseline_deg": [float(v) for v in run.baseline_deg], "last_eval": run.last_eval,
            "identity": run_identity(run.cfg), "log_window": run.window.state()}


def restore_checkpoint(run: TrainRun, path: Path) -> None:
    """Load ``checkpoint_state``'s content into ``run`` (rank 0 also trims metrics.csv to it)."""
    state = load_checkpoint(path)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.position = Position(state["epoch"], state["step"], state["epoch_batches"])
    run.last_eval = state.get("last_eval")
    run.window = LogWindow.from_state(state["log_window"])
    restore_rng_state(state["rng"])
    if run.info.main:
        run.metrics.truncate_after(run.position.step)
    run.log(f"resumed from {path}: epoch {run.position.epoch}, step {run.position.step}, "
            f"batch {run.position.epoch_batches} of the epoch")


def prepare_run(cfg: dict, train_source: RecordSource | None = None,
                val_source: RecordSource | None = None) -> TrainRun:
    """Set up (or resume) the run a resolved train config describes.

    The data come from the shards ``data.train`` / ``data.val`` name, unless sources are
    given (external sets, in-memory tests).
    """
    info = setup_distributed(cfg["engine"]["device"])
    run_dir = Path(cfg["run_dir"])
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    log = RunLog(run_dir / "log.txt", info.main)
    if cfg["engine"]["threads"]:
        torch.set_num_threads(cfg["engine"]["threads"])
    seed_everything(cfg["seed"], cfg["deterministic"])
    dev = info.device
    amp = resolve_amp(cfg["engine"]["amp"], dev)
    channels_last = channels_last_enabled(cfg["engine"]["channels_last"], dev)

    if train_source is None:
        train_source, val_source = open_sources(cfg)
    train_labels = train_source.labels_deg()

    model = build_model(cfg["model"]).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg["optim"])
    sampler = train_sampler(cfg, train_source, train_labels, info)
    steps_per_epoch, total_steps = run_length(cfg, sampler, len(train_source), info)
    data = cfg["data"]
    dataset = PoseDataset(train_source, data["image_size"], data["crop_fraction"],
                          AugmentConfig.from_config(cfg["augment"]), seed=cfg["seed"])
    run = TrainRun(
        cfg=cfg, info=info, log=log, amp=amp, channels_last=channels_last, model=model, net=model,
        criterion=build_criterion(cfg["model"], model), optimizer=optimizer,
        scheduler=build_scheduler(optimizer, cfg["optim"], total_steps), scaler=grad_scaler(dev, amp),
        sampler=sampler, loader=make_loader(dataset, data["batch_size"], sampler, data["num_workers"], drop_last=True,
                                            pin_memory=dev.type == "cuda", seed=cfg["seed"]),
        val_source=val_source, baseline_deg=constant_baseline_deg(train_labels), steps_per_epoch=steps_per_epoch,
        total_steps=total_steps, metrics=MetricsCSV(run_dir / "metrics.csv", criterion_part_names(cfg["model"])))

    ckpt = resume_path(cfg, run_dir, log)
    if ckpt is not None:
        restore_checkpoint(run, ckpt)
    if info.main:
        save_train_config(cfg, run_dir / "config.yaml")
    log(f"training {cfg['model']['arch']} ({cfg['model']['backbone']}) on {len(train_source)} samples"
        f"{'' if val_source is None else f', validating on {len(val_source)}'}; {info.world_size} process(es) "
        f"on {dev}, amp {amp}, channels_last {channels_last}; {steps_per_epoch} steps/epoch, {total_steps} steps")
    run.net = wrap_model(model, info, cfg["engine"]["compile"])
    return run
