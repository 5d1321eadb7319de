"""``annotate train`` and ``annotate evaluate``: argument parsing and the two commands.

Kept free of torch imports at module level so ``annotate --help`` stays fast.

    annotate train --config TRAIN.yaml [--run-dir DIR] [--dataset DIR]
    annotate evaluate --checkpoint CKPT --out DIR
                      (--dataset DIR [--split val] | --shards F [F ...] | --aflw2000 DIR | --biwi DIR)
                      [--batch-size N] [--workers N] [--device auto|cpu|cuda]
"""
from __future__ import annotations

import sys


def cmd_train(args) -> None:
    from annotate.train.config import resolve_train_config
    from annotate.train.engine import NonFiniteLossError, train

    cfg = resolve_train_config(args.config)
    if args.run_dir:
        cfg["run_dir"] = args.run_dir
    if args.dataset:
        cfg["data"]["dataset"] = args.dataset
    try:
        summary = train(cfg)
    except NonFiniteLossError as err:
        print(f"annotate train: stopped: {err}", file=sys.stderr)
        raise SystemExit(3) from None
    print(f"run {summary['run_dir']}: {summary['step']} steps")


def evaluation_source(args):
    """The RecordSource the evaluate arguments name, and a title for the report."""
    if args.aflw2000:
        from annotate.train.external import Aflw2000Source

        src = Aflw2000Source(args.aflw2000)
        return src, f"AFLW2000-3D ({len(src)} images, +-99 deg filter)"
    if args.biwi:
        from annotate.train.external import BiwiSource

        src = BiwiSource(args.biwi)
        return src, f"BIWI ({len(src)} frames, +-99 deg filter)"
    from annotate.datasets.readers import ShardRecords, shard_paths
    from annotate.train.data import expand_shard_paths

    if args.shards:
        return ShardRecords(expand_shard_paths(args.shards)), "shards"
    paths = shard_paths(args.dataset, args.split)
    if not paths:
        raise ValueError(f"{args.dataset}: split {args.split!r} has no shards")
    return ShardRecords(paths), f"{args.dataset} split {args.split}"


def cmd_evaluate(args) -> None:
    from annotate.train.evaluate import evaluate_checkpoint, format_report

    source, title = evaluation_source(args)
    report = evaluate_checkpoint(args.checkpoint, source, args.out, batch_size=args.batch_size,
                                 num_workers=args.workers, device=args.device, title=title)
    print(format_report(report, f"{title}, checkpoint {args.checkpoint} (step {report['step']})"))
    print(f"report: {args.out}")


def add_commands(sub) -> None:
    """Register ``train`` and ``evaluate`` on an argparse sub-parser collection."""
    sp = sub.add_parser("train", help="train a head-pose model on the Parquet shards",
                        description="train a head-pose model (WHENet, HopeNet, coarse-fine, 6D, multi-task); "
                                    "runs under torchrun for DDP")
    sp.add_argument("--config", required=True, help="train config YAML (schemas/train_config.schema.yaml)")
    sp.add_argument("--run-dir", help="overrides run_dir")
    sp.add_argument("--dataset", help="overrides data.dataset (a dataset folder such as results/dataset)")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("evaluate", help="evaluate a checkpoint on shards, AFLW2000-3D or BIWI",
                        description="MAE (yaw wrapped), geodesic and vector errors: full and narrow (|yaw| <= 90) range, "
                                    "back, |yaw| bands 0-60/60-120/120-180 and per-sequence "
                                    "breakdowns and plots, beside the constant-prediction baseline")
    sp.add_argument("--checkpoint", required=True, help="checkpoints/last.pt of a training run")
    sp.add_argument("--out", required=True, help="folder for metrics.json, report.txt, per_sample.csv, plots")
    what = sp.add_mutually_exclusive_group(required=True)
    what.add_argument("--dataset", help="a dataset folder (with --split)")
    what.add_argument("--shards", nargs="+", help="shard files or folders")
    what.add_argument("--aflw2000", help="AFLW2000-3D folder (image*.jpg + image*.mat)")
    what.add_argument("--biwi", help="BIWI folder (subject folders with frame_XXXXX_pose.txt, rgb.cal)")
    sp.add_argument("--split", default="val", help="split of --dataset (default val)")
    sp.add_argument("--batch-size", type=int, default=64)
    sp.add_argument("--workers", type=int, default=2)
    sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    sp.set_defaults(func=cmd_evaluate)
