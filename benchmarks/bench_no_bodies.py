"""Triangulation without body skeletons next to the run with them, on the synthetic default.

    python benchmarks/bench_no_bodies.py [--frames 60] [--cameras 31] [--people 6]

The embedded default sequence (``annotate synth``: 31 HD cameras, 6 people who talk,
smile and blink; videos not rendered, the synthetic detector reads the ground truth) is
triangulated twice with the synthetic detections (2 px noise, 10% gross outliers, 20% of
the faces missed per view): once as generated (head priors from the body skeletons), once
with ``hdPose3d_stage1_coco19/`` removed before the ingest (``detect.association: auto``
then takes the cross-view path: epipolar grouping and 3D tracking). Printed side by side:

- association: of all 2D detections, the share assigned to a person, and the share
  assigned to the right one. Truth per detection: the person whose true landmarks lie
  closest (``annotate.detect.synthetic.true_people``). The cross-view run's ids are its
  own (0, 1, ... in order of appearance); each is mapped to the true person most of its
  detections belong to, and an id whose detections mostly belong to a person another id
  already claims counts as a switch;
- 3D landmarks: the error of every triangulated landmark against the truth (cm);
- labels: the head model, fit and labels on each run's triangulated faces (ids mapped as
  above), geodesic error of R_cam_head of every label against the truth (deg), as
  benchmarks/bench_labels.py measures it; and the ratio of the two medians.
"""
from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_labels import stats  # noqa: E402  (same statistics as the label benchmark)
from bench_triangulation import label_errors_deg, label_stage, landmark_errors_cm  # noqa: E402
from no_bodies_runs import association_figures, with_true_ids, without_bodies  # noqa: E402  (shared with the test)

from annotate.config import resolve_config  # noqa: E402
from annotate.detect.synthetic import SyntheticDetector  # noqa: E402
from annotate.panoptic.tables import load_cameras  # noqa: E402
from annotate.stages.ingest import run as run_ingest  # noqa: E402
from annotate.stages.synth import run as run_synth  # noqa: E402
from annotate.stages.triangulate import run as run_triangulate  # noqa: E402
from annotate.synth.generate import load_ground_truth  # noqa: E402

SEQUENCE = "synth_000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--cameras", type=int, default=31)
    parser.add_argument("--people", type=int, default=6)
    parser.add_argument("--max-view-error-px", type=float, default=4.0,
                        help="triangulate.max_view_error_px (0: the view consistency check off)")
    parser.add_argument("--threshold-face-px", type=float, default=None,
                        help="triangulate.threshold_face_px (default: the configuration's; 0: pixel thresholds fixed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_no_bodies_"))
    try:
        cfg = resolve_config({"synthetic": {"num_frames": args.frames, "num_cameras": args.cameras,
                                            "num_people": args.people, "render_video": False},
                              "landmarks3d": "triangulated",
                              "triangulate": {"max_view_error_px": args.max_view_error_px or None,
                                              **({} if args.threshold_face_px is None else
                                                 {"threshold_face_px": args.threshold_face_px or None})}})
        seq = run_synth(cfg, work / "seq", SEQUENCE)
        runs = {"with body skeletons": work / "seq", "without (cross-view)": work / "bare"}
        without_bodies(Path(seq), runs["without (cross-view)"])
        truth = load_ground_truth(seq)
        figures, label_errors, landmark_errors = {}, {}, {}
        for name, root in runs.items():
            out = work / name.split()[0]
            run_ingest(cfg, root, SEQUENCE, out / "ingest")
            t0 = time.perf_counter()
            summary = run_triangulate(cfg, root, SEQUENCE, out / "ingest", out / "tri")
            print(f"{name}: {summary} ({time.perf_counter() - t0:.1f} s)")
            detector = SyntheticDetector(seq, load_cameras(out / "ingest" / "cameras.parquet"))
            figures[name], mapping = association_figures(out / "tri" / "detections2d.parquet", detector)
            faces = with_true_ids(out / "tri" / "faces3d.parquet", mapping, out / "faces3d_true_ids.parquet")
            landmark_errors[name] = landmark_errors_cm(faces, truth)
            labels = label_stage(cfg, faces, out / "ingest", out / "labels")
            label_errors[name] = label_errors_deg(labels, out / "ingest" / "cameras.parquet", truth)
        print(f"\n== {args.frames} frames, {args.cameras} cameras, {args.people} people; synthetic detections")
        print(f"{'association':36s} " + " ".join(f"{n:>22s}" for n in runs))
        for key, fmt in (("detections", "{:22d}"), ("assigned", "{:22.2%}"), ("right", "{:22.2%}"),
                         ("right_of_assigned", "{:22.2%}"), ("ids", "{:22d}"), ("id_switches", "{:22d}")):
            print(f"{key:36s} " + " ".join(fmt.format(figures[n][key]) for n in runs))
        print(f"\n{'3D landmarks, cm':36s} {'median':>7s} {'p90':>7s} {'p99':>7s} {'max':>7s} {'count':>8s}")
        for name in runs:
            print(f"{name:36s} {stats(landmark_errors[name])}")
        print(f"\n{'labels (R_cam_head), deg':36s} {'median':>7s} {'p90':>7s} {'p99':>7s} {'max':>7s} {'labels':>8s}")
        for name in runs:
            print(f"{name:36s} {stats(label_errors[name])}")
        a, b = (np.median(label_errors[n]) for n in runs)
        print(f"median label error without / with bodies: {b / a:.3f} (target <= 1.10); detections assigned to "
              f"the right person without bodies: {figures['without (cross-view)']['right']:.2%} of all, "
              f"{figures['without (cross-view)']['right_of_assigned']:.2%} of those assigned (target >= 99%)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
