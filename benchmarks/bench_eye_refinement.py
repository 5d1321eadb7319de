"""Face Mesh with and without the iris model's eye refinement, on the real haggling frames.

    python benchmarks/bench_eye_refinement.py

Runs ingest and triangulate on tests/data/haggling_demo (5 HD cameras, frames 4500 and 9348,
no body file; Face Mesh on MTCNN faces, cross-view association) with
``detect.facemesh.refine_eyes`` on (the default) and off, and prints side by side:

- per triangulated person: views used, landmarks, median reprojection px, eye points
  triangulated (of 36-47), eye-centre span and pupils' distance (cm);
- how well the 2D points of each landmark group agree between two views of a person: every
  pair of views associated to a person, each point triangulated from the pair alone (no
  threshold) and reprojected; the larger of its two errors, px. Over the pairs the stage used
  (no wrong view among them) and over all associated pairs (some views are of an ear or a
  face the landmark model misplaced). Real frames have no ground truth: agreement between
  two views is what can be measured.
"""
from __future__ import annotations

import itertools
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from haggling_labels_figure import person_figures  # noqa: E402

from annotate.config import resolve_config  # noqa: E402
from annotate.geometry.cameras import CameraRig  # noqa: E402
from annotate.geometry.triangulation import TriangulationConfig, triangulate_points  # noqa: E402
from annotate.panoptic.ingest import load_cameras, load_faces3d  # noqa: E402
from annotate.stages.ingest import run as run_ingest  # noqa: E402
from annotate.stages.triangulate import run as run_triangulate  # noqa: E402

SEQUENCE = "haggling_demo"
DATA = REPO / "tests" / "data"
GROUPS = {"brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48), "mouth": range(48, 68),
          "pupils": range(68, 70)}
NO_THRESHOLD = TriangulationConfig(inlier_threshold_px=1e9, max_repro_error_px=1e9)


def run(refine_eyes: bool, work: Path) -> tuple[list[dict], dict, dict]:
    """Per-person figures, and the two-view errors per group (used pairs, all pairs)."""
    cfg = resolve_config({"detect": {"frames_from": "images", "facemesh": {"refine_eyes": refine_eyes}},
                          "landmarks3d": "triangulated"})
    run_ingest(cfg, DATA, SEQUENCE, work / "ingest")
    run_triangulate(cfg, DATA, SEQUENCE, work / "ingest", work / "tri")
    rig = load_cameras(work / "ingest" / "cameras.parquet")
    faces = load_faces3d(work / "tri" / "faces3d.parquet", with_visibility=True)
    used = {(int(faces.frame[k]), int(faces.person[k])): {c for point in faces.visibility[k] for c in (point or [])}
            for k in range(len(faces))}
    detections = pq.read_table(work / "tri" / "detections2d.parquet").to_pandas()
    detections = detections[detections.person >= 0]
    on_used = {g: [] for g in GROUPS}
    on_all = {g: [] for g in GROUPS}
    for (frame, person), rows in detections.groupby(["frame", "person"]):
        seen = {rig.names.index(r.camera): np.asarray(r.landmarks_px, float).reshape(-1, 2) for r in rows.itertuples()}
        for a, b in itertools.combinations(sorted(seen), 2):
            errors = pair_errors(rig, seen[a], seen[b], a, b)
            kept = {a, b} <= used.get((int(frame), int(person)), set())
            for group, idx in GROUPS.items():
                values = errors[list(idx)]
                on_all[group] += values[np.isfinite(values)].tolist()
                if kept:
                    on_used[group] += values[np.isfinite(values)].tolist()
    return person_figures(work / "tri" / "faces3d.parquet", rig.names), on_used, on_all


def pair_errors(rig: CameraRig, points_a: np.ndarray, points_b: np.ndarray, a: int, b: int) -> np.ndarray:
    """(L,) the larger reprojection error, px, of each point triangulated from views a and b
    alone (NaN where either view lacks it)."""
    points = np.full((len(rig), 1) + points_a.shape, np.nan)
    points[a, 0], points[b, 0] = points_a, points_b
    confidence = np.isfinite(points).all(axis=-1).astype(float)
    world = triangulate_points(rig, points, confidence, NO_THRESHOLD).points_world
    error = np.linalg.norm(rig.project_world(world)[[a, b], 0] - points[[a, b], 0], axis=-1)
    return error.max(axis=0)


def describe(values: list[float]) -> str:
    e = np.asarray(values)
    if not len(e):
        return f"{'-':>24s}"
    return f"{len(e):4d} {np.median(e):6.2f} {np.mean(e < 2):5.0%} {np.mean(e < 4):5.0%}"


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_eye_refinement_"))
    try:
        results = {flag: run(flag, tmp / str(flag)) for flag in (True, False)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n== per person (refine_eyes on | off)")
    print(f"{'frame':>5s} {'person':>6s} | {'landmarks':>9s} {'repro px':>8s} {'eye pts':>7s} {'span cm':>7s} "
          f"{'pupils':>6s} | {'landmarks':>9s} {'repro px':>8s} {'eye pts':>7s} {'span cm':>7s}  views (on | off)")
    off = {(r["frame"], r["person"]): r for r in results[False][0]}
    for r in results[True][0]:
        o = off.get((r["frame"], r["person"]))
        right = (f"{o['landmarks']:9d} {o['median_repro_px']:8.2f} {o['eye_points']:7d} {o['eye_span_cm']:7.2f}"
                 if o else f"{'-':>35s}")
        print(f"{r['frame']:5d} {r['person']:6d} | {r['landmarks']:9d} {r['median_repro_px']:8.2f} "
              f"{r['eye_points']:7d} {r['eye_span_cm']:7.2f} {r['pupil_span_cm']:6.2f} | {right}  "
              f"{r['views']} | {o['views'] if o else '-'}")
    for title, index in (("view pairs the stage used", 1), ("all associated view pairs", 2)):
        print(f"\n== two-view agreement, {title}: points, median px, under 2 px, under 4 px (on | off)")
        for group in GROUPS:
            print(f"{group:>7s}  {describe(results[True][index][group])} | {describe(results[False][index][group])}")


if __name__ == "__main__":
    main()
