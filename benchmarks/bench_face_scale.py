"""Triangulation of the real haggling frames at other resolutions, with and without pixel
thresholds that grow with the face.

    python benchmarks/bench_face_scale.py [--scales 1 2 3] [--threshold-face-px none 120 80]
    python benchmarks/bench_face_scale.py --scales 0.75 0.5 0.4 0.33 --threshold-face-px 120

tests/data/haggling_demo (5 HD cameras, frames 4500 and 9348, no body file) is resized by
each factor (tests/haggling_variants.py: bicubic up, area averaging down, JPEG quality 95;
factor 1 keeps the original files; the calibration's K scaled alike, pixel centres kept),
as a 4K camera, a close-up rig or a lower-resolution camera would see the same faces, and
triangulated with the
default backend (Face Mesh on MTCNN faces, cross-view association) for each
``triangulate.threshold_face_px``. Printed per run: the people triangulated, and per person
the views used, landmarks, median reprojection error (px of the scaled frames) and eye-centre
span (cm; the means of landmarks 36-41 and 42-47, with the eye points triangulated) and the
pupils' distance (cm).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tests"))

from haggling_labels_figure import person_figures  # noqa: E402
from haggling_variants import SEQUENCE, write_scaled_sequence  # noqa: E402

from annotate.config import resolve_config  # noqa: E402
from annotate.labels.triangulate_errors import NothingTriangulatedError  # noqa: E402
from annotate.panoptic.tables import load_cameras  # noqa: E402
from annotate.stages.ingest import run as run_ingest  # noqa: E402
from annotate.stages.triangulate import run as run_triangulate  # noqa: E402

def run(root: Path, threshold_face_px: float | None, work: Path) -> list[dict] | str:
    cfg = resolve_config({"detect": {"frames_from": "images"}, "landmarks3d": "triangulated",
                          "triangulate": {"threshold_face_px": threshold_face_px}})
    run_ingest(cfg, root, SEQUENCE, work / "ingest")
    try:
        run_triangulate(cfg, root, SEQUENCE, work / "ingest", work / "tri")
    except NothingTriangulatedError:
        return "no face triangulated (the stage stops)"
    return person_figures(work / "tri" / "faces3d.parquet", load_cameras(work / "ingest" / "cameras.parquet").names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    parser.add_argument("--threshold-face-px", nargs="+", default=["none", "120", "80"],
                        help="triangulate.threshold_face_px values ('none' = fixed px)")
    args = parser.parse_args()
    sizes = [None if v.lower() in ("none", "null") else float(v) for v in args.threshold_face_px]
    tmp = Path(tempfile.mkdtemp(prefix="bench_face_scale_"))
    try:
        for factor in args.scales:
            root = tmp / f"x{factor:g}"
            write_scaled_sequence(root, factor)
            for size in sizes:
                result = run(root, size, tmp / f"x{factor:g}_{size}")
                print(f"\n== {factor:g}x, threshold_face_px {size}: "
                      + (result if isinstance(result, str) else f"{len(result)} people triangulated"), flush=True)
                for r in ([] if isinstance(result, str) else result):
                    print(f"  frame {r['frame']} person {r['person']}: views {r['views']}, {r['landmarks']} landmarks, "
                          f"median {r['median_repro_px']:.2f} px, eye-centre span {r['eye_span_cm']:.2f} cm "
                          f"({r['eye_points']} of 12 eye points), pupils {r['pupil_span_cm']:.2f} cm")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
