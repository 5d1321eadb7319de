"""The training loop, shaped like torchvision's classification reference ``train.py``:
``train`` = set the run up, then ``train_one_epoch`` and ``evaluate`` in turn.

``train(config)`` runs a whole training: single process, or DDP when launched by
``torchrun`` (``annotate.train.distributed``). Per step (``train_one_epoch``): uint8 batch
to the device, normalise (channels_last when on), forward under autocast, loss
(``forward_loss``); backward, optional gradient clipping, optimizer and per-step LR
schedule (``optimizer_step``). The set-up (data, model, optimizer, schedule, resume) is
``annotate.train.setup.prepare_run``.

Run directory (``run_dir``)::

    config.yaml            the resolved config (every default filled in)
    log.txt                what the run printed
    metrics.csv            one row per log interval (kind=train) and per evaluation (kind=val)
    checkpoints/last.pt    the latest good checkpoint (annotate.train.checkpoint)
    eval/                  the last evaluation's metrics.json, per_sample.csv and plots

Checkpoints are written every ``engine.checkpoint_every_steps`` steps and at each epoch's
end. Resuming (``engine.resume: auto``) continues from ``checkpoints/last.pt`` mid-epoch:
the sampler skips the batches already done and every RNG is restored, so a deterministic
run that was killed and resumed ends with the same weights and metrics as one that was not.
A non-finite loss stops the run (``NonFiniteLossError``) before the optimizer step, and no
checkpoint is written after it: ``last.pt`` stays the last good one.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from annotate.train.checkpoint import save_checkpoint, unwrap_model
from annotate.train.config import resolve_train_config
from annotate.train.data import RecordSource, normalize_images
from annotate.train.distributed import autocast_for, all_finite, barrier, mean_over_processes
from annotate.train.evaluate import evaluation_loader, format_report, predict, score, write_report
from annotate.train.setup import TrainRun, checkpoint_state, prepare_run

TARGET_KEYS = ("euler_deg", "R", "landmarks", "visible")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


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


def save_run_checkpoint(run: TrainRun) -> None:
    """Write checkpoints/last.pt (rank 0) and wait for every process."""
    if run.info.main:
        save_checkpoint(run.checkpoint_path, checkpoint_state(run))
    barrier(run.info)


def log_train_row(run: TrainRun, bar: tqdm) -> None:
    """The loss parts' means since the last row (averaged over the processes) and the
    images per second, to metrics.csv and the progress bar; then a new window."""
    window, batch = run.window, run.cfg["data"]["batch_size"]
    means = mean_over_processes(window.means(), run.info)
    images_per_s = window.steps * batch * run.info.world_size / max(window.seconds(), 1e-9)
    if run.info.main:
        pos = run.position
        bar.set_postfix(loss=f"{means['loss']:.4g}", img_s=f"{images_per_s:.0f}")
        run.metrics.write({"kind": "train", "epoch": pos.epoch, "step": pos.step, "lr": run.scheduler.get_last_lr()[0],
                           "loss": means.pop("loss"), "images_per_s": images_per_s,
                           **{f"loss_{k}": v for k, v in means.items()}})
    window.reset()


def non_finite_message(run: TrainRun, loss: torch.Tensor, parts: dict) -> str:
    pos = run.position
    return (f"loss is {loss.item()} at epoch {pos.epoch}, step {pos.step + 1} "
            f"(parts: {', '.join(f'{k}={float(v):.4g}' for k, v in parts.items())}); stopped. "
            f"Last good checkpoint: {run.checkpoint_path} (step <= {pos.step}). "
            f"Lower optim.lr, set optim.grad_clip, or check the labels.")


def train_one_epoch(run: TrainRun, bar: tqdm) -> bool:
    """Train on the rest of the current epoch (all of it unless resumed mid-epoch).

    Logs a metrics row every ``engine.log_every_steps`` steps and checkpoints every
    ``engine.checkpoint_every_steps``. Returns True when the epoch ran to its end, False
    when the run's last step came first.
    """
    cfg, pos = run.cfg, run.position
    log_every, ckpt_every = cfg["engine"]["log_every_steps"], cfg["engine"]["checkpoint_every_steps"]
    run.sampler.set_epoch(pos.epoch, start=pos.epoch_batches * cfg["data"]["batch_size"])
    run.net.train()
    for batch in run.loader:
        loss, parts = forward_loss(run.net, run.criterion, batch, run.info.device, run.amp, run.channels_last)
        if not all_finite(loss, run.info):
            raise NonFiniteLossError(non_finite_message(run, loss, parts))
        optimizer_step(loss, run.model, run.optimizer, run.scaler, cfg["optim"]["grad_clip"])
        run.scheduler.step()
        pos.step += 1
        pos.epoch_batches += 1
        run.window.add(parts)
        bar.update(1)
        if pos.step % log_every == 0 or pos.step == run.total_steps:
            log_train_row(run, bar)
        if pos.step % ckpt_every == 0:
            save_run_checkpoint(run)
        if pos.step >= run.total_steps:
            return False
    return True


def evaluate(run: TrainRun) -> dict | None:
    """Score the model on the validation set beside the constant baseline (rank 0; the
    others wait): eval/ report, a ``val`` metrics row, the table in the log. None without
    a validation set."""
    if run.val_source is None:
        return None
    t0 = time.perf_counter()
    report = {}
    if run.info.main:
        cfg, pos = run.cfg, run.position
        data = cfg["data"]
        loader = evaluation_loader(run.val_source, data["image_size"], data["crop_fraction"], data["batch_size"],
                                   min(data["num_workers"], 2))
        # The plain module: DDP's forward would wait for the other ranks' buffer broadcast.
        pred = predict(unwrap_model(run.net), loader, run.info.device, run.amp, run.channels_last)
        report = score(pred, run.baseline_deg)
        write_report(report, pred, run.run_dir / "eval", f"{cfg['model']['arch']} step {pos.step}")
        m, b = report["model"]["all"], report["baseline"]["all"]
        run.last_eval = {"step": pos.step, "model": m, "baseline": b}
        run.metrics.write({"kind": "val", "epoch": pos.epoch, "step": pos.step, **{k: m[k] for k in (
            "n", "mae", "yaw", "pitch", "roll", "geodesic", "maev")}, "baseline_mae": b["mae"],
            "seconds": time.perf_counter() - t0})
        run.log(format_report(report, f"validation at step {pos.step}"))
    barrier(run.info)
    return report


def progress_bar(run: TrainRun) -> tqdm:
    """The steps' progress bar (rank 0 with ``engine.progress``; otherwise a silent one)."""
    return tqdm(total=run.total_steps, initial=run.position.step, desc="train", unit="step", file=sys.stderr,
                mininterval=1.0, dynamic_ncols=True, disable=not (run.info.main and run.cfg["engine"]["progress"]))


def train(config: dict | str | Path, train_source: RecordSource | None = None,
          val_source: RecordSource | None = None) -> dict:
    """Train as ``config`` says (see schemas/train_config.schema.yaml); returns a summary dict
    with the final step and epoch, the last validation summary and the run directory.

    The data come from the shards ``data.train`` / ``data.val`` name, unless sources are
    given (external sets, in-memory tests).
    """
    run = prepare_run(resolve_train_config(config), train_source, val_source)
    eval_every = run.cfg["engine"]["eval_every_epochs"]
    run.window.t0 = time.perf_counter()
    with progress_bar(run) as bar:
        while run.position.step < run.total_steps:
            if train_one_epoch(run, bar):
                run.position.next_epoch()
                if run.position.epoch % eval_every == 0:
                    evaluate(run)
                save_run_checkpoint(run)
    evaluate(run)
    save_run_checkpoint(run)
    run.log(f"done: {run.position.step} steps; checkpoint {run.checkpoint_path}")
    return {"step": run.position.step, "epoch": run.position.epoch, "run_dir": str(run.run_dir),
            "last_eval": run.last_eval}
