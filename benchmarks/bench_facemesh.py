"""Face Mesh's settings on the real haggling frames: re-cropping from the mesh, eye refinement.

    python benchmarks/bench_facemesh.py

Runs ingest and triangulate on tests/data/haggling_demo (5 HD cameras, frames 4500 and 9348,
no body file; Face Mesh on MTCNN faces, cross-view association) with the default settings
(``detect.facemesh.roi_passes`` 3, ``refine_eyes`` on, ``crop_alternatives`` on: the crop
consensus), with the detector's crop only (``crop_alternatives`` off), and, from the
detector's crop only, with one mesh run on the detector's box (``roi_passes`` 1), without
the iris model's eye refinement, and without both, and prints side by side:

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
from annotate.panoptic.tables import load_cameras, load_faces3d  # noqa: E402
from annotate.stages.ingest import run as run_ingest  # noqa: E402
from annotate.stages.triangulate import run as run_triangulate  # noqa: E402

SEQUENCE = "haggling_demo"
DATA = REPO / "tests" / "data"
GROUPS = {"brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48), "mouth": range(48, 68),
          "pupils": range(68, 70)}
NO_THRESHOLD = TriangulationConfig(inlier_threshold_px=1e9, max_repro_error_px=1e9)


ALONE = {"crop_alternatives": False}          # the detector's crop only: no crop consensus
VARIANTS = {"default": {}, "detector's crop": ALONE, "roi_passes 1": {**ALONE, "roi_passes": 1},
            "refine_eyes off": {**ALONE, "refine_eyes": False},
            "roi_passes 1, refine_eyes off": {**ALONE, "roi_passes": 1, "refine_eyes": False}}


def run(facemesh: dict, work: Path) -> tuple[list[dict], dict, dict]:
    """Per-person figures, and the two-view errors per group (used pairs, all pairs), with
    these ``detect.facemesh`` settings."""
    cfg = resolve_config({"detect": {"frames_from": "images", "facemesh": facemesh}, "landmarks3d": "triangulated"})
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
    tmp = Path(tempfile.mkdtemp(prefix="bench_facemesh_"))
    try:
        results = {name: run(settings, tmp / str(k)) for k, (name, settings) in enumerate(VARIANTS.items())}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    names = list(VARIANTS)
    print(f"\n== per person: landmarks, median reprojection px, eye points, eye-centre span cm, pupils cm, views"
          f"\n   ({' | '.join(names)})")
    people = sorted({(r["frame"], r["person"]) for name in names for r in results[name][0]})
    for key in people:
        cells = []
        for name in names:
            r = next((r for r in results[name][0] if (r["frame"], r["person"]) == key), None)
            cells.append(f"{r['landmarks']:2d} {r['median_repro_px']:4.2f} {r['eye_points']:2d} {r['eye_span_cm']:5.2f} "
                         f"{r['pupil_span_cm']:5.2f} {r['views']}" if r else f"{'-':>22s}")
        print(f"{key[0]:5d} {key[1]:2d} | " + " | ".join(cells))
    for title, index in (("view pairs the stage used", 1), ("all associated view pairs", 2)):
        print(f"\n== two-view agreement, {title}: points, median px, under 2 px, under 4 px"
              f"\n   ({' | '.join(names)})")
        for group in GROUPS:
            print(f"{group:>7s}  " + " | ".join(describe(results[name][index][group]) for name in names))


if __name__ == "__main__":
    main()
