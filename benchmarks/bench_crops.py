"""Head crops from camera videos: the dataset stage against a plain OpenCV loop, and against decoding.

    python benchmarks/bench_crops.py [--results results] [--sequence synth_000]
                                     [--footage textured|camera|synthetic] [--frame-steps 5,60]
                                     [--frame-start 15] [--frame-choice exact|cheapest_to_decode] [--repeats 2]
                                     [--crop-device cpu|cuda|torch-cpu]

Needs a labelled sequence (``snakemake --cores 16`` on the default config makes
``results/synth_000``). ``--footage``:

- ``textured`` (default): benchmarks/crop_footage.py, 4 cameras x 2,832 frames (94 s at
  29.97 fps) of 1920x1080 textured footage with the sequence's people moving in it, libx264
  with FFmpeg's defaults (preset medium, CRF 23, B-frames) and a key frame at least every
  ``--keyint`` (30) frames; built once under ``<results>/bench_footage/`` (about 10 minutes
  on 2 free cores);
- ``camera``: a camera-like re-encode of the sequence's own 60-frame videos
  (annotate.synth.footage.camera_like_copy);
- ``synthetic``: the sequence's own videos (x264 'ultrafast').

``--frame-choice exact`` (default): for each frame step the labels of frames
``frame_start, frame_start + step, ...`` are kept, as ingest does with
``ingest.frame_start`` / ``frame_step`` (the stage reads no others), and planned.
``--frame-choice cheapest_to_decode``: every frame's labels are kept and planned with
``dataset.frame_choice: cheapest_to_decode`` (in each window of ``step`` frames from
``frame_start`` the camera's key frame, else a reference picture, else frame start + k *
step); the stage process then also runs that plan (it reads every video's packets). Every run
below reads the same planned frames of the same videos and writes one crop per planned head.

1. Whole processes, each a fresh ``python`` (start-up and imports included), run in turn
   ``--repeats`` times, best wall time of each:
   - plain loop: benchmarks/plain_crops.py, WHENet/DirectMHP style: ``cv2.VideoCapture.read()``
     every frame up to the last kept one, each kept head cut from the BGR picture, resized and
     written with ``cv2.imwrite``; cameras one after another, OpenCV's own decoder threads;
   - plain loop, grab: the same, with ``grab()`` (decode, no BGR conversion) for frames not kept;
   - dataset stage: ``annotate.stages.dataset.run_build`` (after ``run_plan`` with
     ``--frame-choice cheapest_to_decode``): decode what the kept frames need
     (annotate.media.video), cut heads from the YUV planes, JPEG, Parquet shards;
     ``dataset.threads`` cameras at once.
   ratio = plain loop wall / dataset stage wall; targets >= 3 at step 5, >= 10 at step 60.
2. In this process, alternating, with the same parallelism as the stage: decode only
   (``iter_video_frames`` over the planned frames, the decoder's YUV planes touched, no
   conversion; the pictures decoded per kept frame are counted), decode every frame up to
   the last kept one (``skip=False``), and the crop stage (``run_build``). Printed: the crop
   stage / decode only throughput ratio, per repeat (paired, median and range) and of the
   best runs, with CPU time per kept frame.
3. The split of one camera's CPU cost per kept frame into decoding, cutting and JPEG, one thread.

``--crop-device cuda`` runs the stage's cutting and JPEG on a GPU (annotate.media.torch_crops,
nvJPEG); decoding stays on the CPU in every run.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from annotate.config import resolve_config
from annotate.core.rowkeys import frame_person_keys, match_keys
from annotate.core.tables import fixed_list_to_numpy, read_table
from annotate.datasets.build import decoder_threads, worker_threads
from annotate.media.crops import CropSpec, crop_transforms, crop_windows, crop_yuv420_window
from annotate.media.jpeg import encode_jpeg_yuv420
from annotate.media.video import DecodeCounts, camera_video_path, iter_video_frames
from annotate.stages.dataset import build_config, run_build, run_plan

HERE = Path(__file__).resolve().parent
TARGETS = {5: 3.0, 60: 10.0}                   # plain loop wall / dataset stage wall, per frame step


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU time of this process (or its finished children), all threads, s."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed(fn, *args, **kwargs) -> tuple[object, float, float]:
    """(fn's result, wall s, process CPU s)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def timed_process(cmd: list[str]) -> tuple[str, float, float]:
    """Run ``cmd`` to the end; (its stdout, wall s, its CPU s). Fails loudly if it fails."""
    wall, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return done.stdout, wall, cpu


# ------------------------------------------------------------------------- the runs

def decode_only(seq_dir: Path, plan: pd.DataFrame, threads: int, decoder: int, skip: bool = True,
                counts: DecodeCounts | None = None) -> int:
    """Decode the planned frames of every camera into YUV planes (touched, not converted);
    with ``skip`` False every frame up to the last planned one. Returns the frames yielded."""
    jobs = [(cam, np.unique(g["frame"].to_numpy())) for cam, g in plan.groupby("camera", observed=True)]
    tallies = [DecodeCounts() for _ in jobs]

    def run(job, tally):
        cam, frames = job
        n = 0
        for frame in iter_video_frames(camera_video_path(seq_dir, str(cam)), frames, threads=decoder, skip=skip,
                                       counts=tally):
            n += int(frame.yuv420()[0][0, 0] >= 0)             # touch the picture
        return n

    with ThreadPoolExecutor(threads) as pool:
        frames = sum(pool.map(run, jobs, tallies))
    if counts is not None:
        for t in tallies:
            counts.packets_read += t.packets_read
            counts.packets_sent += t.packets_sent
            counts.pictures += t.pictures
    return frames


def planned_boxes(plan: pd.DataFrame, labels: Path, camera: str) -> tuple[pd.DataFrame, np.ndarray]:
    """One camera's planned rows (sorted by frame, person) and their (k, 4) box_unclipped px."""
    rows = plan[plan["camera"] == camera].sort_values(["frame", "person"])
    table = read_table(labels, "labels", columns=["camera", "frame", "person", "box_unclipped"],
                       filters=[("camera", "=", camera), ("reject_reason", "=", "")])
    pos, found = match_keys(frame_person_keys(table.column("frame").to_numpy(), table.column("person").to_numpy()),
                            frame_person_keys(rows["frame"].to_numpy(), rows["person"].to_numpy()))
    assert found.all(), f"{labels}: planned samples of camera {camera} without a valid label"
    return rows, fixed_list_to_numpy(table.column("box_unclipped"), (4,))[pos]


def write_boxes(plan: pd.DataFrame, labels: Path, path: Path) -> None:
    """The plain loop's input: every planned head's camera, frame, person and box (npz)."""
    parts = [planned_boxes(plan, labels, cam) for cam in sorted(plan["camera"].unique())]
    np.savez(path, camera=np.concatenate([r["camera"].to_numpy(str) for r, _ in parts]),
             frame=np.concatenate([r["frame"].to_numpy() for r, _ in parts]),
             person=np.concatenate([r["person"].to_numpy() for r, _ in parts]),
             box=np.concatenate([b for _, b in parts]))


def ingested_labels(labels: Path, start: int, step: int, path: Path) -> None:
    """Write the label rows of frames ``start, start + step, ...`` only: a real run labels
    only the frames ingest keeps (``ingest.frame_step``), so the stage reads no others."""
    import pyarrow.compute as pc

    from annotate.core.tables import write_table

    table = read_table(labels, "labels")
    frame = table["frame"].to_numpy()
    write_table(table.filter(pc.and_(pc.greater_equal(table["frame"], start),
                                     np.asarray((frame - start) % step == 0))), path, "labels")


def stage_process(job: dict) -> None:
    """The body of the dataset-stage process (``--stage-process``): run_plan when the plan
    reads the videos (frame_choice cheapest_to_decode), run_build, print the samples."""
    config = resolve_config({"results": job["results"], "dataset": {"exports": {"coco": False},
                                                                     "crop_device": job["crop_device"],
                                                                     **job["plan_settings"]}})
    if config["dataset"]["frame_choice"] == "cheapest_to_decode":
        run_plan(config, [job["labels"]], job["plan"], Path(job["plan"]).with_suffix(".json"),
                 Path(job["seq_dir"]).parent)
    build = run_build(config, job["sequence"], job["plan"], job["labels"], job["cameras"], job["seq_dir"],
                      job["out"], show_progress=False)
    print(build.samples)


def cost_split(seq_dir: Path, plan: pd.DataFrame, labels: Path, spec: CropSpec, quality: int,
               camera: str) -> dict[str, float]:
    """One camera on one thread: CPU ms per kept frame of decoding (what it needs), cutting
    (range stretch + resize of the three planes) and JPEG encoding its heads, each timed
    alone (thread CPU time)."""
    rows, boxes = planned_boxes(plan, labels, camera)
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


# ------------------------------------------------------------------------- footage

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


def footage(args, results: Path, threads: int) -> tuple[Path, Path, Path]:
    """(sequence folder, labels.parquet, cameras.parquet) of the footage asked for."""
    labels = results / args.sequence / "labels" / "labels.parquet"
    cameras = results / args.sequence / "ingest" / "cameras.parquet"
    seq_dir = results / "synthetic" / args.sequence
    if args.footage == "camera":
        return camera_footage(seq_dir, results / "bench_footage" / "camera", threads), labels, cameras
    if args.footage == "synthetic":
        return seq_dir, labels, cameras
    sys.path.insert(0, str(HERE))
    from crop_footage import long_footage

    root = results / "bench_footage" / f"textured_c{args.cameras}_p{args.periods}x{args.copies}_k{args.keyint}"
    dst = long_footage(labels, cameras, root, args.sequence, cameras=args.cameras, periods=args.periods,
                       repeats=args.copies, keyint=args.keyint, jobs=threads)
    return dst, dst / "labels.parquet", dst / "cameras.parquet"


# ------------------------------------------------------------------------- one frame step

def whole_processes(args, work: Path, seq_dir: Path, labels: Path, cameras: Path, samples: int,
                    results: Path, plan_settings: dict) -> dict[str, tuple[float, float]]:
    """Best (wall s, CPU s) of each whole-process run over ``args.repeats`` rounds."""
    job = {"results": str(results), "sequence": args.sequence, "labels": str(labels), "cameras": str(cameras),
           "seq_dir": str(seq_dir), "crop_device": args.crop_device, "plan_settings": plan_settings}
    plain = [sys.executable, str(HERE / "plain_crops.py"), "--boxes", str(work / "boxes.npz"),
             "--videos", str(seq_dir / "hdVideos"), "--out", str(work / "plain")]
    runs = {"plain loop (read every frame)": plain, "plain loop (grab frames not kept)": plain + ["--grab"],
            "dataset stage": [sys.executable, str(Path(__file__).resolve()), "--stage-process"]}
    best = {name: (np.inf, 0.0) for name in runs}
    for r in range(args.repeats):
        for name, cmd in runs.items():
            if name == "dataset stage":
                cheapest = plan_settings["frame_choice"] == "cheapest_to_decode"
                plan = work / (f"plan{r}.parquet" if cheapest else "plan.parquet")
                cmd = cmd + [json.dumps({**job, "plan": str(plan), "out": str(work / f"ds{r}")})]
            out, wall, cpu = timed_process(cmd)
            if name.startswith("plain"):
                assert int(out.split()[-1]) == samples, (out, samples)   # every planned crop written
                shutil.rmtree(work / "plain")
            else:
                assert int(out.split()[-1]) == samples, (out, samples)
                shutil.rmtree(work / f"ds{r}")
            best[name] = min(best[name], (wall, cpu))
    return best


def in_process(args, config: dict, work: Path, seq_dir: Path, labels: Path, cameras: Path, plan: pd.DataFrame,
               threads: int, decoder: int, samples: int):
    """Best (wall, CPU) of decode only / decode every frame / crop stage, paired ratios, counts."""
    counts = DecodeCounts()
    runs = {"decode only (what kept frames need)": lambda: decode_only(seq_dir, plan, threads, decoder, True, counts),
            "decode every frame up to the last kept": lambda: decode_only(seq_dir, plan, threads, decoder, False),
            "crop stage (crop, JPEG, shards)": lambda: run_build(config, args.sequence, work / "plan.parquet",
                                                                 labels, cameras, seq_dir, work / "ds",
                                                                 show_progress=False).samples}
    best = {name: (np.inf, 0.0) for name in runs}
    paired = []                                    # per repeat: (decode wall / crop wall, CPU ratio)
    for _ in range(args.repeats):
        this = {}
        for name, run in runs.items():
            n, wall, cpu = timed(run)
            assert n == (samples if name.startswith("crop") else plan.groupby("camera")["frame"].nunique().sum())
            best[name] = min(best[name], (wall, cpu))
            this[name] = (wall, cpu)
        shutil.rmtree(work / "ds")
        (dw, dc), _, (cw, cc) = this.values()
        paired.append((dw / cw, dc / cc))
    counts.pictures //= args.repeats
    counts.packets_sent //= args.repeats
    counts.packets_read //= args.repeats
    return best, paired, counts


def bench_step(args, step: int, results: Path, seq_dir: Path, labels: Path, cameras: Path) -> None:
    plan_settings = {"frame_start": args.frame_start, "frame_step": step, "frame_choice": args.frame_choice}
    config = resolve_config({"results": str(results),
                             "dataset": {"exports": {"coco": False}, "crop_device": args.crop_device,
                                         **plan_settings}})
    build = build_config(config)
    threads = worker_threads(build)
    decoder = decoder_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="bench_crops_"))
    try:
        if args.frame_choice == "exact":
            ingested_labels(labels, args.frame_start, step, work / "labels.parquet")
            labels = work / "labels.parquet"
        summary = run_plan(config, [labels], work / "plan.parquet", work / "plan_summary.json", seq_dir.parent)
        plan = pd.read_parquet(work / "plan.parquet")
        plan["camera"] = plan["camera"].astype(str)
        samples = len(plan)
        kept = int(plan.groupby("camera")["frame"].nunique().sum())
        write_boxes(plan, labels, work / "boxes.npz")
        print(f"\n== every {step} frame(s) from frame {args.frame_start}: {plan['camera'].nunique()} camera videos, "
              f"{kept} kept frames, {samples} crops ({build.crop.size} px, JPEG q{build.jpeg_quality}), "
              f"crops on {args.crop_device}, best of {args.repeats}")
        if args.frame_choice == "cheapest_to_decode":
            print(f"frame_choice cheapest_to_decode: camera windows at a key frame {summary.key_frame_windows}, "
                  f"at a reference picture {summary.reference_frame_windows}, at frame start + k * step "
                  f"{summary.other_frame_windows}")
        whole = whole_processes(args, work, seq_dir, labels, cameras, samples, results, plan_settings)
        print(f"whole processes                      {'wall s':>7s} {'CPU s':>7s} {'crops/s':>8s} "
              f"{'plain / this: wall':>18s} {'CPU':>5s}")
        plain_wall, plain_cpu = whole["plain loop (read every frame)"]
        for name, (wall, cpu) in whole.items():
            print(f"{name:36s} {wall:7.2f} {cpu:7.2f} {samples / wall:8.1f} {plain_wall / wall:18.2f} "
                  f"{plain_cpu / cpu:5.2f}")
        target = TARGETS.get(step)
        ratio = plain_wall / whole["dataset stage"][0]
        print(f"dataset stage vs plain loop: {ratio:.2f}x faster (wall), {plain_cpu / whole['dataset stage'][1]:.2f}x "
              f"less CPU" + (f"; target >= {target:.0f}x: {'met' if ratio >= target else 'NOT met'}" if target else ""))
        best, paired, counts = in_process(args, config, work, seq_dir, labels, cameras, plan, threads, decoder,
                                          samples)
        print(f"in one process ({threads} cameras at once, {decoder} decoder thread(s) each, 0 = FFmpeg's choice)")
        print(f"{'run':40s} {'kept frames/s':>13s} {'wall s':>7s} {'CPU ms/kept frame':>18s}")
        for name, (wall, cpu) in best.items():
            print(f"{name:40s} {kept / wall:13.1f} {wall:7.2f} {1e3 * cpu / kept:18.3f}")
        print(f"pictures decoded per kept frame: {counts.pictures / kept:.2f} "
              f"(packets sent to the decoder {counts.packets_sent / kept:.2f}, read {counts.packets_read / kept:.2f})")
        walls, cpus = np.array(paired).T
        (dw, dc), _, (cw, cc) = best.values()
        print(f"crop stage / decode only, paired per repeat: median {np.median(walls):.2f} (wall, range "
              f"{walls.min():.2f}-{walls.max():.2f}), {np.median(cpus):.2f} (CPU); best runs {dw / cw:.2f} (wall), "
              f"{dc / cc:.2f} (CPU)")
        split = cost_split(seq_dir, plan, labels, build.crop, build.jpeg_quality, sorted(plan["camera"].unique())[0])
        print(f"one camera, one thread, CPU ms per kept frame ({split['heads']:.2f} heads/frame): decode "
              f"{split['decode']:.3f}, cut {split['cut']:.3f}, JPEG {split['jpeg']:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--sequence", default="synth_000")
    ap.add_argument("--footage", choices=["textured", "camera", "synthetic"], default="textured")
    ap.add_argument("--frame-steps", default="5,60", help="comma-separated dataset.frame_step values")
    ap.add_argument("--frame-start", type=int, default=15,
                    help="first kept frame (15: half-way between the textured footage's first key frames)")
    ap.add_argument("--frame-choice", choices=["exact", "cheapest_to_decode"], default="exact",
                    help="dataset.frame_choice (cheapest_to_decode: every frame labelled, each window's "
                         "cheapest frame kept)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--crop-device", default="cpu",
                    help="dataset.crop_device for the crop stage: cpu, cuda[:N] (nvJPEG) or torch-cpu")
    ap.add_argument("--cameras", type=int, default=4, help="textured footage: cameras")
    ap.add_argument("--periods", type=int, default=4, help="textured footage: forth-and-back periods encoded")
    ap.add_argument("--copies", type=int, default=6, help="textured footage: copies of them per video")
    ap.add_argument("--keyint", type=int, default=30, help="textured footage: most frames between key frames")
    ap.add_argument("--stage-process", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage_process:
        stage_process(json.loads(args.stage_process))
        return
    results = Path(args.results)
    threads = worker_threads(build_config(resolve_config({"results": str(results)})))
    seq_dir, labels, cameras = footage(args, results, threads)
    for step in (int(s) for s in args.frame_steps.split(",")):
        bench_step(args, step, results, seq_dir, labels, cameras)


if __name__ == "__main__":
    main()
