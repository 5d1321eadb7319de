"""The triangulation path against the synthetic ground truth, next to the published landmarks.

    python benchmarks/bench_triangulation.py [--frames 300] [--only accuracy|speed]

1. Accuracy. A synthetic sequence (31 cameras, 3 people) is triangulated from synthetic
   detections (2 px noise per axis, 10% gross outliers anywhere in the face box, 20% of the
   faces missed per view, hidden points not reported), then the existing head model, fit
   and label stages run on the triangulated faces3d. Printed side by side with the same
   stages on the published landmarks of the same sequence: 3D landmark error (cm) and
   label error (geodesic error of R_cam_head, deg, for every label), as
   benchmarks/bench_labels.py measures it.
2. Speed, one core (OMP/OPENBLAS/MKL threads = 1): ``triangulate_points`` on the
   associated detections of every view (31 cameras, RANSAC + weighted DLT; and with the
   optional Gauss-Newton refinement), as landmarks per second of CPU time (best of 5, so
   other processes on the machine distort it least); also with every landmark seen by all
   31 cameras. The 3D error with and without refinement is printed too.
"""
from __future__ import annotations

import os

# One core for the speed figures: set before numpy loads its BLAS.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_labels import stats  # noqa: E402  (same statistics as the label benchmark)

from annotate.config import resolve_config, triangulate_stage_config  # noqa: E402
from annotate.detect.heads import priors_from_bodies  # noqa: E402
from annotate.geometry.rotations import geodesic_distance  # noqa: E402
from annotate.geometry.triangulation import TriangulationConfig, triangulate_points  # noqa: E402
from annotate.labels.frame_views import detect_views, make_backend  # noqa: E402
from annotate.labels.view_search import SerialViews  # noqa: E402
from annotate.panoptic.tables import load_bodies, load_cameras, load_faces3d  # noqa: E402
from annotate.stages.head_model import run as run_head_model  # noqa: E402
from annotate.stages.ingest import run as run_ingest  # noqa: E402
from annotate.stages.label import run as run_label  # noqa: E402
from annotate.stages.synth import run as run_synth  # noqa: E402
from annotate.stages.triangulate import run as run_triangulate  # noqa: E402
from annotate.synth.generate import load_ground_truth  # noqa: E402

SEQUENCE = "synth_tri"
DETECTIONS = {"sigma_px": 2.0, "outlier_fraction": 0.1, "miss_fraction": 0.2}


def landmark_errors_cm(faces3d_path: Path, truth) -> np.ndarray:
    """3D error (cm) of every reconstructed landmark of a faces3d table."""
    faces = load_faces3d(faces3d_path)
    frame_pos = {int(f): i for i, f in enumerate(truth.frames)}
    person_pos = {int(p): i for i, p in enumerate(truth.person_ids)}
    clean = truth.landmarks_world()[[frame_pos[f] for f in faces.frame], [person_pos[p] for p in faces.person]]
    error = np.linalg.norm(faces.landmarks - clean, axis=-1)
    return error[np.isfinite(error)]


def label_errors_deg(labels_path: Path, cameras_path: Path, truth) -> np.ndarray:
    """Geodesic error (deg) of every camera label with a rotation (bench_labels' measure)."""
    t = pq.read_table(labels_path, columns=["frame", "person", "camera_index", "R_cam_head"]).to_pandas()
    rig = load_cameras(cameras_path)
    fi = t["frame"].map({int(f): i for i, f in enumerate(truth.frames)}).to_numpy()
    pi = t["person"].map({int(p): i for i, p in enumerate(truth.person_ids)}).to_numpy()
    R_true = rig.R_cam_world[t["camera_index"].to_numpy()] @ truth.R_world_head[fi, pi]
    R_est = np.stack(t["R_cam_head"].to_numpy()).reshape(-1, 3, 3)
    ok = np.isfinite(R_est).all(axis=(1, 2))
    return np.degrees(geodesic_distance(R_est[ok], R_true[ok]))


def label_stage(cfg: dict, faces3d: Path, ingest: Path, out: Path) -> Path:
    """Head model + fit + labels on one faces3d table; returns labels.parquet."""
    run_head_model(cfg, [faces3d], out / "head_model.json")
    run_label(cfg, faces3d, ingest / "cameras.parquet", out / "head_model.json", out / "labels")
    return out / "labels" / "labels.parquet"


def accuracy(frames: int, work: Path) -> None:
    print(f"\n== 1. Accuracy vs ground truth ({frames} frames, 31 cameras, 3 people; detections: "
          f"{DETECTIONS['sigma_px']} px noise, {DETECTIONS['outlier_fraction']:.0%} gross outliers, "
          f"{DETECTIONS['miss_fraction']:.0%} faces missed per view)")
    cfg = resolve_config({"synthetic": {"num_frames": frames, "render_video": False},
                          "detect": {"backend": "synthetic", "synthetic": DETECTIONS}})
    run_synth(cfg, work / "seq", SEQUENCE)
    ingest = work / "ingest"
    run_ingest(cfg, work / "seq", SEQUENCE, ingest)
    t0 = time.perf_counter()
    summary = run_triangulate(cfg, work / "seq", SEQUENCE, ingest, work / "triangulate")
    stage_s = time.perf_counter() - t0
    truth = load_ground_truth(work / "seq" / SEQUENCE)
    rows = {"published (hdFace3d as written)": ingest / "faces3d.parquet",
            "triangulated (this path)": work / "triangulate" / "faces3d.parquet"}
    print(f"triangulate stage: {summary}  ({stage_s:.1f} s incl. synthetic detection and ray-cast visibility)")
    print(f"\n{'3D landmarks, cm':34s} {'median':>7s} {'p90':>7s} {'p99':>7s} {'max':>7s} {'count':>8s}")
    for name, path in rows.items():
        print(f"{name:34s} {stats(landmark_errors_cm(path, truth))}")
    print(f"\n{'labels (R_cam_head), deg':34s} {'median':>7s} {'p90':>7s} {'p99':>7s} {'max':>7s} {'labels':>8s}")
    results = {}
    for name, path in rows.items():
        labels = label_stage(cfg, path, ingest, work / name.split()[0])
        results[name] = label_errors_deg(labels, ingest / "cameras.parquet", truth)
        print(f"{name:34s} {stats(results[name])}")
    lm = landmark_errors_cm(rows["triangulated (this path)"], truth)
    lab = results["triangulated (this path)"]
    met = np.median(lm) <= 0.5 and np.median(lab) <= 1.0 and np.percentile(lab, 99) <= 3.0
    print(f"target 3D median <= 0.5 cm, labels median <= 1.0 and p99 <= 3 deg: {'met' if met else 'NOT met'}")


def collect_views(frames: int, work: Path):
    """Associated detections (C, M, 70, 2), confidences (C, M, 70) and the true landmarks
    (M, 70, 3) of the M faces of a 31-camera sequence."""
    cfg = resolve_config({"synthetic": {"num_frames": frames, "render_video": False},
                          "detect": {"backend": "synthetic", "synthetic": DETECTIONS}})
    run_synth(cfg, work / "seq", SEQUENCE)
    run_ingest(cfg, work / "seq", SEQUENCE, work / "ingest")
    rig = load_cameras(work / "ingest" / "cameras.parquet")
    backend = make_backend(cfg, work / "seq" / SEQUENCE, rig)
    bodies = load_bodies(work / "ingest" / "bodies.parquet")
    max_cost = triangulate_stage_config(cfg).association_max_cost
    truth = load_ground_truth(work / "seq" / SEQUENCE)
    clean = truth.landmarks_world()
    person_pos = {int(p): i for i, p in enumerate(truth.person_ids)}
    points, conf, true = [], [], []
    for k, frame in enumerate(np.unique(bodies.frame)):
        rows = bodies.frame == frame
        priors = priors_from_bodies(bodies.person[rows], bodies.joints[rows], bodies.confidence[rows])
        views = detect_views(rig, SerialViews(backend), int(frame), priors, max_cost)
        points.append(views.points_px)
        conf.append(views.confidence)
        true.append(clean[k, [person_pos[int(p)] for p in priors.person]])
    return rig, np.concatenate(points, axis=1), np.concatenate(conf, axis=1), np.concatenate(true)


def timed(rig, points, conf, config: TriangulationConfig, repeats: int = 5) -> tuple[float, float]:
    """Best-of-``repeats`` (CPU seconds, wall seconds) of triangulating the whole batch."""
    best = (np.inf, np.inf)
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        triangulate_points(rig, points, conf, config)
        best = min(best, (time.process_time() - c0, time.perf_counter() - w0))
    return best


def speed(frames: int, work: Path) -> None:
    print("\n== 2. Speed, one core: triangulate_points on every landmark of every face (31 views)")
    rig, points, conf, true = collect_views(frames, work)
    n = points.shape[1] * points.shape[2]
    seen = np.isfinite(points[..., 0]).sum(0)
    print(f"{n:,} landmarks ({points.shape[1]} faces x 70); views per landmark: mean {seen.mean():.1f}, "
          f"max {seen.max()} of {len(rig)}")
    print(f"{'configuration':44s} {'CPU lm/s':>12s} {'wall lm/s':>12s} {'3D median cm':>13s} {'p99 cm':>8s}")
    default = TriangulationConfig()
    for name, config in (("default (RANSAC, weighted DLT)", default),
                         ("with Gauss-Newton refinement", TriangulationConfig(refine=True))):
        cpu, wall = timed(rig, points, conf, config)
        error = np.linalg.norm(triangulate_points(rig, points, conf, config).points_world - true, axis=-1)
        error = error[np.isfinite(error)]
        print(f"{name:44s} {n / cpu:12,.0f} {n / wall:12,.0f} {np.median(error):13.4f} {np.percentile(error, 99):8.4f}")
        if config is default:
            rate = n / cpu
    # Worst case: every landmark seen by all 31 cameras (clean projections + the same noise).
    dense = rig.project_world(true[: max(1, len(true) // 3)])
    dense += np.random.default_rng(0).normal(0, 2.0, dense.shape)
    m = dense.shape[1] * dense.shape[2]
    cpu, wall = timed(rig, dense, np.ones(dense.shape[:-1]), default)
    print(f"{'all 31 views seen (' + format(m, ',') + ' landmarks)':44s} {m / cpu:12,.0f} {m / wall:12,.0f}")
    print(f"target >= 100,000 landmarks/s per core (default, realistic views): {'met' if rate >= 1e5 else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300, help="frames of the synthetic sequence")
    ap.add_argument("--only", choices=["accuracy", "speed"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "accuracy"):
            accuracy(args.frames, Path(tmp) / "accuracy")
        if args.only in (None, "speed"):
            speed(args.frames, Path(tmp) / "speed")


if __name__ == "__main__":
    main()
