"""The triangulate stage with its views detected in one process, against in worker processes.

    python benchmarks/bench_view_workers.py [--frames 10] [--workers N]

Frame 9348 of tests/data/haggling_demo (5 real HD cameras, 3 people, no body file) is
repeated as ``--frames`` consecutive frames and triangulated with the default backend (Face
Mesh with its crop consensus on MTCNN faces, cross-view association, tracked search) twice:
with 1 worker (every view in the stage's own process) and with ``--workers`` (default: the
available CPUs, at most the 5 cameras; ``annotate.labels.view_search``). Printed side by
side: wall seconds of the stage (total and per frame, worker start-up included), CPU
seconds of the stage's process and of its workers, the speed-up, and the largest
difference between the two runs' 2D landmarks and 3D faces (0: the outputs do not depend on
the workers).
"""
from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_tracked_search import SEQUENCE, repeated_frames

from annotate.config import resolve_config
from annotate.core.cpus import available_cpus
from annotate.core.tables import read_table
from annotate.stages.ingest import run as run_ingest
from annotate.stages.triangulate import run as run_triangulate


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(root: Path, workers: int, work: Path) -> dict:
    cfg = resolve_config({"detect": {"frames_from": "images"}, "landmarks3d": "triangulated"})
    run_ingest(cfg, root, SEQUENCE, work / "ingest")
    wall, cpu, children = time.perf_counter(), time.process_time(), children_cpu_s()
    summary = run_triangulate(cfg, root, SEQUENCE, work / "ingest", work / "tri", workers=workers)
    return {"summary": summary, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
            "workers_cpu_s": children_cpu_s() - children,
            "points": np.array(read_table(work / "tri" / "detections2d.parquet", "detections2d")
                               .column("landmarks_px").to_pylist(), dtype=np.float64),
            "faces": np.array(read_table(work / "tri" / "faces3d.parquet", "faces3d")
                              .column("landmarks_world").to_pylist(), dtype=np.float64)}


def largest_difference(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    return float(np.nanmax(np.abs(a - b))) if a.size else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--workers", type=int, default=min(available_cpus(), 5))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_view_workers_"))
    try:
        root = repeated_frames(tmp / "data", args.frames)
        one, many = (run(root, workers, tmp / f"workers{workers}") for workers in (1, args.workers))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n== frame 9348 of 5 real HD cameras repeated {args.frames} times, {available_cpus()} CPUs available")
    print(f"{'':40s} {'1 worker':>12s} {f'{args.workers} workers':>12s}")
    rows = [("wall s (start-up included)", lambda r: f"{r['wall_s']:12.1f}"),
            ("wall s per frame", lambda r: f"{r['wall_s'] / args.frames:12.2f}"),
            ("CPU s, stage process", lambda r: f"{r['cpu_s']:12.1f}"),
            ("CPU s, workers", lambda r: f"{r['workers_cpu_s']:12.1f}"),
            ("faces triangulated", lambda r: f"{r['summary'].faces_written:12d}")]
    for name, cell in rows:
        print(f"{name:40s} {cell(one)} {cell(many)}")
    print(f"speed-up (wall, 1 worker / {args.workers}): {one['wall_s'] / many['wall_s']:.2f}x")
    print(f"largest difference: 2D landmarks {largest_difference(one['points'], many['points']):.3g} px, "
          f"3D faces {largest_difference(one['faces'], many['faces']):.3g} cm")


if __name__ == "__main__":
    main()
