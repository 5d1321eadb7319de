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
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_labels import stats  # noqa: E402  (same statistics as the label benchmark)
from bench_triangulation import label_errors_deg, label_stage  # noqa: E402

from annotate.config import resolve_config  # noqa: E402
from annotate.core.tables import read_table, write_table  # noqa: E402
from annotate.detect.synthetic import SyntheticDetector, true_people  # noqa: E402
from annotate.panoptic.ingest import load_cameras  # noqa: E402
from annotate.stages.ingest import run as run_ingest  # noqa: E402
from annotate.stages.synth import run as run_synth  # noqa: E402
from annotate.stages.triangulate import run as run_triangulate  # noqa: E402
from annotate.synth.generate import load_ground_truth  # noqa: E402

SEQUENCE = "synth_000"
BODIES_DIR = "hdPose3d_stage1_coco19"


def without_bodies(seq: Path, out: Path) -> Path:
    """A copy of the sequence folder ``seq`` under ``out`` with the body files left out
    (links to the rest), as a capture with only a calibration and media would be."""
    copy = out / seq.name
    copy.mkdir(parents=True)
    for entry in seq.iterdir():
        if entry.name != BODIES_DIR:
            (copy / entry.name).symlink_to(entry.resolve())
    return copy


def association_figures(detections: Path, detector: SyntheticDetector) -> tuple[dict, dict]:
    """(figures, id -> true person) of one run's detections2d table (module docstring)."""
    d = pq.read_table(detections, columns=["frame", "person", "camera", "landmarks_px"]).to_pandas()
    camera = np.array([detector.rig.names.index(c) for c in d["camera"]])
    points = np.stack(d["landmarks_px"].to_numpy()).reshape(-1, 70, 2)
    truth = true_people(detector, d["frame"].to_numpy(), camera, points)
    person = d["person"].to_numpy().astype(np.int64)
    mapping, claimed, switches = {}, set(), 0
    for pid, _ in Counter(person[person >= 0].tolist()).most_common():
        true = Counter(truth[person == pid].tolist()).most_common(1)[0][0]
        switches += true in claimed
        claimed.add(true)
        mapping[pid] = true
    mapped = np.array([mapping.get(p, -2) for p in person.tolist()])
    assigned = person >= 0
    return {"detections": len(person), "assigned": float(assigned.mean()),
            "right": float((mapped == truth).mean()),
            "right_of_assigned": float((mapped[assigned] == truth[assigned]).mean()) if assigned.any() else 0.0,
            "ids": len(mapping), "id_switches": switches}, mapping


def with_true_ids(faces3d: Path, mapping: dict, out: Path) -> Path:
    """The faces3d table with the run's ids replaced by the true persons they map to."""
    import pyarrow as pa

    table = read_table(faces3d, "faces3d")
    person = pa.array([mapping[int(p)] for p in table.column("person").to_pylist()], type=table.schema.field("person").type)
    write_table(table.set_column(table.schema.get_field_index("person"), table.schema.field("person"), person),
                out, "faces3d")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--cameras", type=int, default=31)
    parser.add_argument("--people", type=int, default=6)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_no_bodies_"))
    try:
        cfg = resolve_config({"synthetic": {"num_frames": args.frames, "num_cameras": args.cameras,
                                            "num_people": args.people, "render_video": False},
                              "landmarks3d": "triangulated"})
        seq = run_synth(cfg, work / "seq", SEQUENCE)
        runs = {"with body skeletons": work / "seq", "without (cross-view)": work / "bare"}
        without_bodies(Path(seq), runs["without (cross-view)"])
        truth = load_ground_truth(seq)
        figures, label_errors = {}, {}
        for name, root in runs.items():
            out = work / name.split()[0]
            run_ingest(cfg, root, SEQUENCE, out / "ingest")
            t0 = time.perf_counter()
            summary = run_triangulate(cfg, root, SEQUENCE, out / "ingest", out / "tri")
            print(f"{name}: {summary} ({time.perf_counter() - t0:.1f} s)")
            detector = SyntheticDetector(seq, load_cameras(out / "ingest" / "cameras.parquet"))
            figures[name], mapping = association_figures(out / "tri" / "detections2d.parquet", detector)
            faces = with_true_ids(out / "tri" / "faces3d.parquet", mapping, out / "faces3d_true_ids.parquet")
            labels = label_stage(cfg, faces, out / "ingest", out / "labels")
            label_errors[name] = label_errors_deg(labels, out / "ingest" / "cameras.parquet", truth)
        print(f"\n== {args.frames} frames, {args.cameras} cameras, {args.people} people; synthetic detections")
        print(f"{'association':36s} " + " ".join(f"{n:>22s}" for n in runs))
        for key, fmt in (("detections", "{:22d}"), ("assigned", "{:22.2%}"), ("right", "{:22.2%}"),
                         ("right_of_assigned", "{:22.2%}"), ("ids", "{:22d}"), ("id_switches", "{:22d}")):
            print(f"{key:36s} " + " ".join(fmt.format(figures[n][key]) for n in runs))
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
