"""Crop stage vs decode-only throughput on the same videos, in one run.

    python benchmarks/bench_crops.py [--results results] [--sequence synth_000] [--repeats 3]

Needs a labelled sequence with videos (``snakemake --cores 16`` on the default config makes
``results/synth_000``). Both runs read the same planned frames of the same camera videos
with the same parallelism (``dataset.threads`` cameras at once, one decoder thread each):

- decode only: ``iter_video_frames`` over the planned frames, each frame decoded into the
  decoder's YUV planes and touched: the bare decoder, the least any consumer pays;
- decode to RGB: the same, plus each frame as an (H, W, 3) RGB array, which is what a plain
  decoding loop hands over (PyAV ``to_ndarray``, OpenCV ``VideoCapture.read``);
- crop stage: ``annotate.datasets.build.build_sequence``, the real stage: decode, cut
  every head out of the YUV planes, JPEG-encode it and write the Parquet shards.

Runs alternate (decode, crop, decode, crop, ...) and the best of each is reported, so
load from other processes on a shared machine hits both alike.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from annotate.config import resolve_config
from annotate.datasets.stage import build_config, run_build, run_plan
from annotate.media.video import camera_video_path, iter_video_frames


def decode_only(seq_dir: Path, plan: pd.DataFrame, threads: int, rgb: bool = False) -> tuple[int, float]:
    """Decode the planned frames of every camera (to RGB arrays if ``rgb``); (frames, seconds)."""
    jobs = [(cam, np.unique(g["frame"].to_numpy())) for cam, g in plan.groupby("camera", observed=True)]

    def run(job):
        cam, frames = job
        n = 0
        for frame in iter_video_frames(camera_video_path(seq_dir, str(cam)), frames, threads=1 if threads > 1 else 0):
            picture = frame.rgb() if rgb else frame.yuv420()[0]
            n += int(picture[0, 0].min() >= 0)                 # touch the picture
        return n

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        frames = sum(pool.map(run, jobs))
    return frames, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--sequence", default="synth_000")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results = Path(args.results)
    labels = results / args.sequence / "labels" / "labels.parquet"
    cameras = results / args.sequence / "ingest" / "cameras.parquet"
    seq_dir = results / "synthetic" / args.sequence
    config = resolve_config({"results": str(results), "dataset": {"exports": {"coco": False}}})
    threads = config["dataset"]["threads"]
    work = Path(tempfile.mkdtemp(prefix="bench_crops_"))
    try:
        run_plan(config, [labels], work / "plan.parquet", work / "plan_summary.json")
        plan = pd.read_parquet(work / "plan.parquet")
        samples = len(plan)
        decode_best = rgb_best = crop_best = np.inf
        frames = 0
        for r in range(args.repeats):
            frames, t = decode_only(seq_dir, plan, threads)
            decode_best = min(decode_best, t)
            _, t = decode_only(seq_dir, plan, threads, rgb=True)
            rgb_best = min(rgb_best, t)
            out = work / f"ds{r}"
            start = time.perf_counter()
            build = run_build(config, args.sequence, work / "plan.parquet", labels, cameras, seq_dir, out)
            crop_best = min(crop_best, time.perf_counter() - start)
            assert build.samples == samples, build
            shutil.rmtree(out)
        spec = build_config(config).crop
        print(f"{args.sequence}: {plan['camera'].nunique()} camera videos, {frames} decoded frames, {samples} crops "
              f"({spec.size} px, JPEG q{config['dataset']['jpeg_quality']}), {threads} cameras at once, "
              f"best of {args.repeats}")
        print(f"decode only (YUV)  : {frames / decode_best:8.1f} frames/s  ({decode_best:.2f} s)")
        print(f"decode to RGB      : {frames / rgb_best:8.1f} frames/s  ({rgb_best:.2f} s)")
        print(f"crop stage         : {frames / crop_best:8.1f} frames/s  ({crop_best:.2f} s; "
              f"{samples / crop_best:.0f} crops/s, shards written)")
        print(f"crop stage / decode only (YUV): {decode_best / crop_best:.2f}   "
              f"crop stage / decode to RGB: {rgb_best / crop_best:.2f}   (target >= 0.80)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
