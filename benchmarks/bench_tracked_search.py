"""Faces searched in whole images every frame, against around the tracked heads in between.

    python benchmarks/bench_tracked_search.py [--frames 10] [--no-crop-alternatives]

Frame 9348 of tests/data/haggling_demo (5 real HD cameras, 3 people, no body file) is
repeated as ``--frames`` consecutive frames and triangulated with the default backend (Face
Mesh on MTCNN faces, cross-view association) twice: with ``detect.tracking.full_search_frames``
1 (whole images every frame) and 30 (the default: whole images in the first frame, around the
tracked heads in the others). Printed side by side: CPU seconds of the triangulate stage per
frame, the frames searched whole, detections, faces triangulated, and how far the tracked
run's landmarks lie from the whole-image run's (the same images: any difference is the
search's). ``--no-crop-alternatives``: Face Mesh on the detector's crops only
(``detect.facemesh.crop_alternatives: false``, no crop consensus).
"""
from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from annotate.config import resolve_config
from annotate.panoptic.tables import load_faces3d
from annotate.stages.ingest import run as run_ingest
from annotate.stages.triangulate import run as run_triangulate

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "data" / "haggling_demo"
SEQUENCE = "haggling_demo"
FRAME = 9348


def repeated_frames(root: Path, count: int) -> Path:
    """root/haggling_demo: frame FRAME's images as frames FRAME .. FRAME + count - 1."""
    seq = root / SEQUENCE
    (seq / "hdImgs").mkdir(parents=True)
    shutil.copy(SOURCE / f"calibration_{SEQUENCE}.json", seq)
    for cam_dir in sorted((SOURCE / "hdImgs").iterdir()):
        data = (cam_dir / f"{cam_dir.name}_{FRAME:08d}.jpg").read_bytes()
        (seq / "hdImgs" / cam_dir.name).mkdir()
        for frame in range(FRAME, FRAME + count):
            (seq / "hdImgs" / cam_dir.name / f"{cam_dir.name}_{frame:08d}.jpg").write_bytes(data)
    return root


def run(root: Path, full_search_frames: int, work: Path, crop_alternatives: bool = True) -> dict:
    cfg = resolve_config({"detect": {"frames_from": "images", "tracking": {"full_search_frames": full_search_frames},
                                     "facemesh": {"crop_alternatives": crop_alternatives}},
                          "landmarks3d": "triangulated"})
    run_ingest(cfg, root, SEQUENCE, work / "ingest")
    cpu = time.process_time()
    summary = run_triangulate(cfg, root, SEQUENCE, work / "ingest", work / "tri")
    cpu = time.process_time() - cpu
    return {"summary": summary, "cpu_s": cpu, "faces": load_faces3d(work / "tri" / "faces3d.parquet")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--no-crop-alternatives", action="store_true",
                        help="Face Mesh on the detector's crops only (no crop consensus)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_tracked_search_"))
    try:
        root = repeated_frames(tmp / "data", args.frames)
        whole, tracked = (run(root, every, tmp / f"every{every}", not args.no_crop_alternatives) for every in (1, 30))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n== frame {FRAME} of 5 real HD cameras repeated {args.frames} times"
          + (", the detector's crops only" if args.no_crop_alternatives else ", crop consensus"))
    print(f"{'':36s} {'whole images':>14s} {'tracked (30)':>14s}")
    rows = [("CPU s per frame", lambda r: f"{r['cpu_s'] / args.frames:14.2f}"),
            ("frames searched whole", lambda r: f"{r['summary'].whole_image_frames:14d}"),
            ("detections", lambda r: f"{r['summary'].detections:14d}"),
            ("detections associated", lambda r: f"{r['summary'].associated:14d}"),
            ("faces triangulated", lambda r: f"{r['summary'].faces_written:14d}")]
    for name, cell in rows:
        print(f"{name:36s} {cell(whole)}{cell(tracked)}")
    print(f"speed-up: {whole['cpu_s'] / tracked['cpu_s']:.1f}x CPU")
    a, b = whole["faces"], tracked["faces"]
    keys_a = list(zip(a.frame.tolist(), a.person.tolist()))
    keys_b = list(zip(b.frame.tolist(), b.person.tolist()))
    common = [k for k in keys_a if k in keys_b]
    distance = np.concatenate([np.linalg.norm(a.landmarks[keys_a.index(k)] - b.landmarks[keys_b.index(k)], axis=-1)
                               for k in common]) if common else np.zeros(0)
    distance = distance[np.isfinite(distance)]
    print(f"faces in both runs: {len(common)} of {len(keys_a)} / {len(keys_b)}; landmarks of the tracked run from "
          f"the whole-image run's: median {np.median(distance):.3f} cm, p90 {np.percentile(distance, 90):.3f} cm"
          if len(distance) else "no face in both runs")


if __name__ == "__main__":
    main()
