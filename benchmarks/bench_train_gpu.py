"""Training throughput on a GPU: the real shard loader against the model alone.

    python benchmarks/bench_train_gpu.py --dataset results/dataset [--arch whenet --size 224 --batch 128]

Three figures, images per second:

1. model alone: training steps (normalise, forward, loss, backward, AdamW) on one uint8
   batch already on the device, so nothing waits for data;
2. loader alone: the real pipeline (ShardRecords -> JPEG decode -> augmentation -> collate,
   ``data.order: blocks``, ``--workers`` processes), no model;
3. loader + model: the same training steps fed by that loader (pinned memory,
   non-blocking copies), as ``annotate train`` runs them.

"fed" = (3) / (1): the share of the model's own speed the loader sustains (target >= 90%).
EfficientNet-B0 (the WHENet preset) at 224 px with bf16 autocast and channels_last by
default. Without a GPU it runs on the CPU with a few steps (a smoke run, not a figure).
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from annotate.datasets.readers import ShardRecords, shard_paths
from annotate.train.augment import AugmentConfig
from annotate.train.config import resolve_train_config
from annotate.train.data import EpochSampler, PoseDataset, make_loader
from annotate.train.distributed import channels_last_enabled, grad_scaler, resolve_amp
from annotate.train.engine import forward_loss, optimizer_step
from annotate.train.losses import build_criterion
from annotate.train.models import build_model
from annotate.train.setup import build_optimizer


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def endless(loader):
    while True:
        yield from loader


def time_steps(step, batches, n: int, warmup: int, dev: torch.device) -> float:
    """Images per second of ``n`` calls of ``step(batch)`` after ``warmup`` calls."""
    it = iter(batches)
    for _ in range(warmup):
        step(next(it))
    sync(dev)
    t0 = time.perf_counter()
    images = 0
    for _ in range(n):
        b = next(it)
        step(b)
        images += len(b["image"])
    sync(dev)
    return images / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="results/dataset")
    p.add_argument("--split", default="train")
    p.add_argument("--arch", default="whenet")
    p.add_argument("--backbone", default=None, help="default: the preset's (efficientnet_b0 for whenet)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--compile", action="store_true")
    args = p.parse_args()

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cpu":
        args.steps, args.warmup = min(args.steps, 3), 1
        print("no CUDA device: a CPU smoke run (these are not GPU figures)")
    cfg = resolve_train_config({"model": {"arch": args.arch, "backbone": args.backbone},
                                "data": {"image_size": args.size, "batch_size": args.batch, "num_workers": args.workers},
                                "engine": {"amp": args.amp, "channels_last": args.channels_last}})
    amp = resolve_amp(cfg["engine"]["amp"], dev)
    channels_last = channels_last_enabled(args.channels_last, dev)
    torch.backends.cudnn.benchmark = True

    model = build_model(cfg["model"]).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if args.compile else model
    criterion = build_criterion(cfg["model"], model)
    optimizer = build_optimizer(model, cfg["optim"])
    scaler = grad_scaler(dev, amp)

    def step(batch):
        loss, _ = forward_loss(net, criterion, batch, dev, amp, channels_last)
        optimizer_step(loss, model, optimizer, scaler, None)

    records = ShardRecords(shard_paths(args.dataset, args.split), cache_row_groups=cfg["data"]["window_blocks"] + 2)
    data = cfg["data"]
    dataset = PoseDataset(records, args.size, data["crop_fraction"], AugmentConfig.from_config(cfg["augment"]), seed=0)
    sampler = EpochSampler(len(records), batch_size=args.batch, order=data["order"], block_size=data["block_size"],
                           window_blocks=data["window_blocks"], streams=args.workers)
    loader = make_loader(dataset, args.batch, sampler, args.workers, drop_last=True, pin_memory=dev.type == "cuda")

    # 1. model alone: one real batch, kept on the device.
    first = next(iter(loader))
    resident = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in first.items()}
    model_only = time_steps(step, iter(lambda: resident, None), args.steps, args.warmup, dev)
    # 2. loader alone.
    loader_only = time_steps(lambda b: None, endless(loader), args.steps, args.warmup, dev)
    # 3. loader + model.
    fed = time_steps(step, endless(loader), args.steps, args.warmup, dev)

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"device {name}; {cfg['model']['arch']} ({cfg['model']['backbone']}) at {args.size} px, batch {args.batch}, "
          f"amp {amp}, channels_last {channels_last}, compile {args.compile}; loader: {args.workers} workers, "
          f"{len(records)} samples, order {data['order']}")
    print(f"{'model alone (one batch resident on the device)':<48}{model_only:>10.0f} img/s")
    print(f"{'loader alone (decode + augment)':<48}{loader_only:>10.0f} img/s")
    print(f"{'loader + model (training as annotate train)':<48}{fed:>10.0f} img/s")
    print(f"{'fed fraction (loader + model) / model alone':<48}{fed / model_only:>10.1%}")


if __name__ == "__main__":
    main()
