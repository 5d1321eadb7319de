"""Crop stage vs decode-only throughput on the same videos, in one run.

    python benchmarks/bench_crops.py [--results results] [--sequence synth_000] [--repeats 3] [--frame-step 1]
                                     [--footage synthetic|camera]

Needs a labelled sequence with videos (``snakemake --cores 16`` on the default config makes
``results/synth_000``). All runs read the same planned frames of the same camera videos
with the same parallelism (``dataset.threads`` cameras at once, ``decoder_threads``
FFmpeg threads each, thread_type 'AUTO'):

- decode only: ``iter_video_frames`` over the planned frames, each frame decoded into the
  decoder's YUV planes and touched, no conversion: the bare decoder, the least any
  consumer pays;
- decode to RGB: the same, plus each frame as an (H, W, 3) RGB array, which is what a plain
  decoding loop hands over (PyAV ``to_ndarray``, OpenCV ``VideoCapture.read``);
- crop stage: ``annotate.datasets.build.build_sequence``, the real stage: decode, cut
  every head out of the YUV planes, JPEG-encode it and write the Parquet shards.

``--frame-step N`` keeps every N-th planned frame, as ``ingest.frame_step`` does on real
data (pipelines/config/panoptic.yaml: 5, WHENet's subsampling). Every run still decodes
every frame up to the last one it needs (H.264 cannot skip), so "frames/s" counts the
kept frames, the ones a run hands over.

``--crop-device cuda`` runs the crop stage's cutting and JPEG on a GPU
(annotate.media.torch_crops, nvJPEG); decoding stays on the CPU in every run.

``--footage camera`` runs on a camera-like copy of the sequence (annotate.synth.footage:
the same pictures plus sensor noise, encoded with FFmpeg's default libx264 settings:
High profile, CABAC, deblocking, B-frames), made once under
``<results>/bench_footage/camera/`` and reused. The synthetic renderer's 'ultrafast' videos
decode 2-3x faster than simple synthetic 1080p footage (240-340 frames/s per core), so ratios to
decoding measured on them understate what real recordings give.

Runs alternate (decode, crop, RGB, decode, ...) and the best wall time of each is reported,
so load from other processes on a shared machine hits all alike. Because that load comes
and goes (here the same run's wall time varied by up to 20% between repeats), the ratio is
also given per repeat, from a decode-only run and the crop run right after it, with the
median and range of those paired ratios: the figure least moved by a burst of load. Each also reports its
process CPU time per frame, which other processes' load disturbs much less. A last table
splits one camera's per-frame CPU cost into decoding, cutting (range stretch + resize)
and JPEG encoding, measured alone on one thread.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from annotate.config import resolve_config
from annotate.datasets.build import decoder_threads, worker_threads
from annotate.stages.dataset import build_config, run_build, run_plan
from annotate.core.tables import fixed_list_to_numpy, read_table
from annotate.media.crops import CropSpec, crop_transforms, crop_windows, crop_yuv420_window
from annotate.media.jpeg import encode_jpeg_yuv420
from annotate.media.video import camera_video_path, iter_video_frames
from annotate.core.rowkeys import frame_person_keys, match_keys


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads, s."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn, *args, **kwargs) -> tuple[object, float, float]:
    """(fn's result, wall s, process CPU s)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def decode_only(seq_dir: Path, plan: pd.DataFrame, threads: int, decoder: int, rgb: bool = False
                ) -> tuple[int, float]:
    """Decode the planned frames of every camera (to RGB arrays if ``rgb``); (frames, seconds)."""
    jobs = [(cam, np.unique(g["frame"].to_numpy())) for cam, g in plan.groupby("camera", observed=True)]

    def run(job):
        cam, frames = job
        n = 0
        for frame in iter_video_frames(camera_video_path(seq_dir, str(cam)), frames, threads=decoder):
            picture = frame.rgb() if rgb else frame.yuv420()[0]
            n += int(picture[0, 0].min() >= 0)                 # touch the picture
        return n

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        frames = sum(pool.map(run, jobs))
    return frames, time.perf_counter() - start


def cost_split(seq_dir: Path, plan: pd.DataFrame, labels: Path, spec: CropSpec, quality: int,
               camera: str) -> dict[str, float]:
    """One camera on one thread: CPU ms per frame of decoding, cutting (range stretch + resize
    of the three planes) and JPEG encoding its heads, each timed alone (thread CPU time)."""
    rows = plan[plan["camera"] == camera].sort_values(["frame", "person"])
    table = read_table(labels, "labels", columns=["camera", "frame", "person", "box_unclipped"],
                       filters=[("camera", "=", camera), ("reject_reason", "=", "")])
    pos, found = match_keys(frame_person_keys(table.column("frame").to_numpy(), table.column("person").to_numpy()),
                            frame_person_keys(rows["frame"].to_numpy(), rows["person"].to_numpy()))
    assert found.all(), f"{labels}: planned samples of camera {camera} without a valid label"
    boxes = fixed_list_to_numpy(table.column("box_unclipped"), (4,))[pos]
    windows = crop_windows(crop_transforms(boxes, spec), spec.size)
    frame_of = rows["frame"].to_numpy()
    cost = {"decode": 0.0, "cut": 0.0, "jpeg": 0.0}
    frames = iter_video_frames(camera_video_path(seq_dir, camera), np.unique(frame_of), threads=1)
    n = 0
    while True:
        t = time.thread_time()
        frame = next(frames, None)
        if frame is None:
            break
        planes = frame.yuv420()
        cost["decode"] += time.thread_time() - t
        n += 1
        for w in windows[frame_of == frame.index]:
            t = time.thread_time()
            crop = crop_yuv420_window(planes, w, spec, full_range=frame.colour.full_range, to_full_range=True)
            t2 = time.thread_time()
            encode_jpeg_yuv420(*crop, quality=quality, full_range=True)
            cost["cut"] += t2 - t
            cost["jpeg"] += time.thread_time() - t2
    return {k: 1e3 * v / n for k, v in cost.items()} | {"heads": len(rows) / n}


def camera_footage(seq_dir: Path, root: Path, n_jobs: int) -> Path:
    """The camera-like copy of ``seq_dir`` under ``root`` (made on first use, then reused)."""
    from annotate.synth.footage import CAMERA_CRF, CAMERA_NOISE_SIGMA, CAMERA_PRESET, camera_like_copy

    dst = root / seq_dir.name
    if not dst.is_dir():
        start = time.perf_counter()
        camera_like_copy(seq_dir, root, n_jobs=n_jobs)
        print(f"camera-like copy of {seq_dir} in {dst} ({time.perf_counter() - start:.0f} s)")
    print(f"footage: {dst} (luma noise sigma {CAMERA_NOISE_SIGMA}, libx264 {CAMERA_PRESET} crf {CAMERA_CRF})")
    return dst


def keep_every_nth_frame(plan_path: Path, step: int) -> None:
    """Rewrite a plan with only the frames (frame - first) % step == 0."""
    import pyarrow as pa

    from annotate.core.tables import write_table

    table = read_table(plan_path, "dataset_plan")
    frame = table.column("frame").to_numpy()
    write_table(table.filter(pa.array((frame - frame.min()) % step == 0)), plan_path, "dataset_plan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--sequence", default="synth_000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frame-step", type=int, default=1, help="keep every N-th planned frame (real-data configs: 5)")
    ap.add_argument("--crop-device", default="cpu",
                    help="dataset.crop_device for the crop stage: cpu, cuda[:N] (nvJPEG) or torch-cpu")
    ap.add_argument("--footage", choices=["synthetic", "camera"], default="synthetic",
                    help="the sequence's own videos, or a camera-like re-encode of them (annotate.synth.footage)")
    args = ap.parse_args()
    results = Path(args.results)
    labels = results / args.sequence / "labels" / "labels.parquet"
    cameras = results / args.sequence / "ingest" / "cameras.parquet"
    seq_dir = results / "synthetic" / args.sequence
    config = resolve_config({"results": str(results),
                             "dataset": {"exports": {"coco": False}, "crop_device": args.crop_device}})
    build = build_config(config)
    threads = worker_threads(build)
    decoder = decoder_threads(threads)
    if args.footage == "camera":
        seq_dir = camera_footage(seq_dir, results / "bench_footage" / "camera", threads)
    work = Path(tempfile.mkdtemp(prefix="bench_crops_"))
    try:
        run_plan(config, [labels], work / "plan.parquet", work / "plan_summary.json")
        if args.frame_step > 1:
            keep_every_nth_frame(work / "plan.parquet", args.frame_step)
        plan = pd.read_parquet(work / "plan.parquet")
        plan["camera"] = plan["camera"].astype(str)
        samples = len(plan)
        # Decode-only and the crop stage run back to back, so each repeat's pair meets the same load.
        best = {"decode only (YUV planes)": (np.inf, 0.0), "crop stage (crop, JPEG, shards)": (np.inf, 0.0),
                "decode to RGB": (np.inf, 0.0)}
        frames = 0
        paired = []                                          # per repeat: (decode wall / crop wall, CPU ratio)
        for r in range(args.repeats):
            this = {}
            runs = [lambda: decode_only(seq_dir, plan, threads, decoder)[0],
                    lambda: run_build(config, args.sequence, work / "plan.parquet", labels, cameras, seq_dir,
                                      work / f"ds{r}", show_progress=False).samples,
                    lambda: decode_only(seq_dir, plan, threads, decoder, rgb=True)[0]]
            for name, run in zip(best, runs):
                n, wall, cpu = timed(run)
                if name.startswith("crop"):
                    assert n == samples, (n, samples)            # every planned crop was written
                else:
                    frames = n
                best[name] = min(best[name], (wall, cpu))     # best wall time, with its CPU time
                this[name] = (wall, cpu)
            (dw, dc), (cw, cc), _ = this.values()
            paired.append((dw / cw, dc / cc))
            shutil.rmtree(work / f"ds{r}")
        print(f"{args.sequence} ({args.footage} footage): {plan['camera'].nunique()} camera videos, {frames} decoded frames, {samples} crops "
              f"({build.crop.size} px, JPEG q{build.jpeg_quality}), {threads} cameras at once, "
              f"{decoder} decoder thread(s) each (0 = FFmpeg's choice), every {args.frame_step} frame(s), "
              f"crops on {args.crop_device}, "
              f"best of {args.repeats}")
        print(f"{'run':34s} {'frames/s':>9s} {'wall s':>7s} {'CPU ms/frame':>13s}")
        for name, (wall, cpu) in best.items():
            print(f"{name:34s} {frames / wall:9.1f} {wall:7.2f} {1e3 * cpu / frames:13.3f}")
        (dw, dc), (cw, cc), (rw, _) = best.values()
        walls, cpus = np.array(paired).T
        print(f"crop stage / decode only, paired per repeat: median {np.median(walls):.2f} (wall, range "
              f"{walls.min():.2f}-{walls.max():.2f}), {np.median(cpus):.2f} (CPU)")
        print(f"crop stage / decode only, best runs: {dw / cw:.2f} (wall), {dc / cc:.2f} (CPU)   "
              f"crop stage / decode to RGB: {rw / cw:.2f} (wall)   target >= 0.80")
        split = cost_split(seq_dir, plan, labels, build.crop, build.jpeg_quality, sorted(plan["camera"].unique())[0])
        free_cut = split["decode"] / (split["decode"] + split["jpeg"])
        print(f"one camera, one thread, CPU ms/frame ({split['heads']:.2f} heads/frame): decode {split['decode']:.3f}, "
              f"cut {split['cut']:.3f}, JPEG {split['jpeg']:.3f}; decode / (decode + JPEG) = {free_cut:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
