"""Cameras on their side or upside down (``detect.image_rotation``): what the probe finds and
what it costs, on the real test frames.

    python benchmarks/bench_image_rotation.py

1. The probe's detector on the ten images of tests/data/haggling_demo at full size and
   shrunk to ``PROBE_LONG_SIDE_PX``: faces scoring ``PROBE_MIN_SCORE`` per turn (the upright
   ones are real faces, those at the other turns false ones) and CPU seconds.
2. MTCNN's faces at that score with the images turned by 0-60 degrees (how far from a
   quarter turn a camera may be rolled).
3. The triangulation stage on the upright frames with ``image_rotation`` 0 and ``auto``, and
   on the frames with three cameras stored turned (tests/haggling_variants.py) with ``auto`` and 0:
   the turns found, faces triangulated, CPU and wall seconds, and the turned run's median
   landmark distance to the upright run per person.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from haggling_variants import DATA, SEQUENCE, STORED_TURNS, nearest_faces, write_turned_sequence  # noqa: E402

from annotate.config import resolve_config  # noqa: E402
from annotate.detect.faces import make_face_detector  # noqa: E402
from annotate.detect.orientation import PROBE_MIN_SCORE, confident_faces_per_turn, probe_image  # noqa: E402
from annotate.geometry.image_turns import TURNS_CW_DEG  # noqa: E402
from annotate.labels.triangulate_errors import NothingTriangulatedError  # noqa: E402
from annotate.media.jpeg import decode_jpeg_rgb  # noqa: E402
from annotate.panoptic.tables import load_faces3d  # noqa: E402
from annotate.stages.ingest import run as run_ingest  # noqa: E402
from annotate.stages.triangulate import run as run_triangulate  # noqa: E402


def images() -> list[tuple[str, np.ndarray]]:
    return [(p.stem, decode_jpeg_rgb(p.read_bytes())) for p in sorted((DATA / SEQUENCE / "hdImgs").glob("*/*.jpg"))]


def probe_table(detector, frames) -> None:
    print(f"1. probe: faces with an O-net probability >= {PROBE_MIN_SCORE} per turn {TURNS_CW_DEG}")
    print(f"{'image':<18} {'full size':<16} {'shrunk':<16}")
    totals, seconds = {"full": np.zeros(4, int), "shrunk": np.zeros(4, int)}, {"full": 0.0, "shrunk": 0.0}
    for name, rgb in frames:
        row = []
        for kind, image in (("full", rgb), ("shrunk", probe_image(rgb))):
            start = time.process_time()
            counts = confident_faces_per_turn(detector, image, PROBE_MIN_SCORE)
            seconds[kind] += time.process_time() - start
            totals[kind] += counts
            row.append(str(counts))
        print(f"{name:<18} {row[0]:<16} {row[1]:<16}")
    for kind in ("full", "shrunk"):
        t = totals[kind]
        print(f"{kind:<7} upright {t[0]:>3} faces, at the wrong turns {t[1:].sum():>2}; "
              f"{seconds[kind] / len(frames):.2f} s of CPU per image (4 turns)")
    print(f"shrunk / full CPU: {seconds['shrunk'] / seconds['full']:.2f}")


def roll_table(detector, frames) -> None:
    import cv2

    print(f"\n2. MTCNN faces >= {PROBE_MIN_SCORE} over the {len(frames)} images, turned by an angle")
    for angle in (0, 15, 30, 45, 60):
        n = 0
        for _, rgb in frames:
            h, w = rgb.shape[:2]
            A = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)
            c, s = abs(A[0, 0]), abs(A[0, 1])
            size = (int(h * s + w * c), int(h * c + w * s))
            A[:, 2] += (np.array(size) - (w, h)) / 2
            n += int(np.sum(detector.detect(cv2.warpAffine(rgb, A, size)).score >= PROBE_MIN_SCORE))
        print(f"  {angle:>2} degrees: {n}")


def stage_run(root: Path, rotation, out: Path):
    cfg = resolve_config({"detect": {"frames_from": "images", "image_rotation": rotation},
                          "landmarks3d": "triangulated"})
    run_ingest(cfg, root, SEQUENCE, out / "ingest")
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        summary = run_triangulate(cfg, root, SEQUENCE, out / "ingest", out / "tri")
    except NothingTriangulatedError:
        return None, time.process_time() - cpu, time.perf_counter() - wall, {}
    return (load_faces3d(out / "tri" / "faces3d.parquet"), time.process_time() - cpu, time.perf_counter() - wall,
            summary.image_rotation)


def stage_table(work: Path) -> None:
    print(f"\n3. triangulation stage (cameras stored turned: {STORED_TURNS} degrees clockwise)")
    turned_root = work / "turned"
    write_turned_sequence(turned_root)
    runs = {}
    for label, root, rotation in (("upright, image_rotation 0", DATA, 0), ("upright, auto", DATA, "auto"),
                                  ("turned, auto", turned_root, "auto"), ("turned, image_rotation 0", turned_root, 0)):
        faces, cpu, wall, turns = stage_run(root, rotation, work / label.replace(" ", "_").replace(",", ""))
        runs[label] = faces
        print(f"{label:<27} faces {0 if faces is None else len(faces)}, {cpu:5.1f} s CPU, {wall:5.1f} s wall; "
              f"turns {turns.get('degrees_cw', {})}; probed images {turns.get('probe_images', {})}")
    reference, turned = runs["upright, image_rotation 0"], runs["turned, auto"]
    _, distance = nearest_faces(reference.landmarks, turned.landmarks)
    for frame, d in zip(reference.frame, distance):
        print(f"  frame {frame}: turned run's nearest face {d:.3f} cm (median over landmarks)")


def main() -> None:
    detector = make_face_detector("mtcnn")
    frames = images()
    probe_table(detector, frames)
    roll_table(detector, frames)
    with tempfile.TemporaryDirectory() as tmp:
        stage_table(Path(tmp))


if __name__ == "__main__":
    main()
