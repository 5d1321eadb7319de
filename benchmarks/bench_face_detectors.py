"""The face detectors on real Panoptic frames, against faces counted by eye.

    python benchmarks/bench_face_detectors.py [--with-cnn]

Runs every face detector of ``annotate.detect.faces`` on the whole images of
tests/data/haggling_demo (frames 4500 and 9348 of 5 HD cameras, 1920x1080) and compares
them with tests/data/haggling_demo/visible_faces.json (14 faces visible by eye). A visible
face is found when a detection's box centre lies within 0.75 of the face's size of its
by-eye centre; detections near no visible face are counted as extra (a face seen from
behind, a hand, a pattern). Prints, per face and detector, found or not, then the totals
and the seconds per image on one core. ``--with-cnn`` adds dlib's CNN detector (about a
minute per image on one core).
"""
from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse
import json
import time
from pathlib import Path

import numpy as np

from annotate.detect.faces import make_face_detector
from annotate.media.jpeg import decode_jpeg_rgb

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "haggling_demo"
MATCH_SIZES = 0.75
DETECTORS = {"mtcnn": ("mtcnn", {}), "mtcnn (own thresholds 0.6/0.7/0.7)": ("mtcnn", {"thresholds": (0.6, 0.7, 0.7)}),
             "dlib_hog (upsample 1)": ("dlib_hog", {"upsample": 1}), "dlib_cnn (upsample 0)": ("dlib_cnn", {"upsample": 0})}


def visible_faces() -> list[tuple[int, str, str, np.ndarray, float]]:
    """(frame, camera, person, centre (2,), size) of every face counted by eye."""
    doc = json.loads((DATA / "visible_faces.json").read_text())
    return [(int(frame), camera, face["person"], np.asarray(face["centre_px"], float), float(face["size_px"]))
            for frame, entry in doc["frames"].items() for camera, faces in entry["views"].items() for face in faces]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-cnn", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    faces = visible_faces()
    images = {(frame, cam): DATA / "hdImgs" / cam / f"{cam}_{frame:08d}.jpg"
              for frame in (4500, 9348) for cam in ("00_03", "00_06", "00_12", "00_13", "00_23")}
    names = [n for n in DETECTORS if args.with_cnn or not n.startswith("dlib_cnn")]
    found, extra, seconds = {}, {}, {}
    for name in names:
        detector = make_face_detector(*DETECTORS[name])
        hits, extra[name], start = np.zeros(len(faces), bool), 0, time.process_time()
        for (frame, cam), path in images.items():
            boxes = detector.detect(decode_jpeg_rgb(path.read_bytes())).boxes_px
            centres = 0.5 * (boxes[:, :2] + boxes[:, 2:])
            near = np.zeros(len(boxes), bool)
            for k, (f, c, _, centre, size) in enumerate(faces):
                if (f, c) == (frame, cam):
                    close = np.linalg.norm(centres - centre, axis=1) <= MATCH_SIZES * size
                    hits[k] |= close.any()
                    near |= close
            extra[name] += int((~near).sum())
        seconds[name] = (time.process_time() - start) / len(images)
        found[name] = hits
    width = max(len(n) for n in names)
    print(f"{'frame camera person':24s} " + " ".join(f"{n:>{width}s}" for n in names))
    for k, (frame, cam, person, _, _) in enumerate(faces):
        print(f"{frame:5d} {cam} {person:12s}  " + " ".join(f"{'found' if found[n][k] else '-':>{width}s}" for n in names))
    print(f"{'found of ' + str(len(faces)):24s} " + " ".join(f"{int(found[n].sum()):>{width}d}" for n in names))
    print(f"{'extra detections':24s} " + " ".join(f"{extra[n]:>{width}d}" for n in names))
    print(f"{'CPU s per image':24s} " + " ".join(f"{seconds[n]:>{width}.2f}" for n in names))


if __name__ == "__main__":
    main()
