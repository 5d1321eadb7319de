"""A plain head-crop loop, the way WHENet's and DirectMHP's data preparation does it: OpenCV's
VideoCapture reads every frame of each camera video in turn, and every head box of a kept
frame is cut out of the BGR picture and written as a JPEG file with cv2.imwrite.

    python benchmarks/plain_crops.py --boxes boxes.npz --videos DIR --out DIR
                                     [--size 256] [--margin 0.15] [--quality 90] [--grab]

boxes.npz (written by bench_crops.py from the dataset plan): ``camera`` (str), ``frame``,
``person`` (k,) and ``box`` (k, 4) x0, y0, x1, y1 px head boxes. Each crop is the square the
dataset stage cuts (side (1 + 2 margin) x the box's longer side, about the box centre),
clipped to the picture and resized to ``size`` px, so both write the same crops. Reading
stops after a camera's last kept frame. ``--grab``: frames that are not kept are only
``grab()``-bed (decoded, not converted to BGR), kept ones ``retrieve()``-d.

bench_crops.py times this script as a whole process beside the dataset stage.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np


def crop_square(image, box, margin: float, size: int):
    """The box's square window with ``margin`` on each side, clipped, resized to size x size."""
    x0, y0, x1, y1 = box
    half = (1 + 2 * margin) * max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = image.shape[:2]
    a, b = max(int(cx - half), 0), max(int(cy - half), 0)
    c, d = min(int(cx + half), w), min(int(cy + half), h)
    if c <= a or d <= b:
        return None
    return cv2.resize(image[b:d, a:c], (size, size), interpolation=cv2.INTER_LINEAR)


def crop_video(video: Path, frames, persons, boxes, out: Path, args) -> int:
    """Read ``video`` frame by frame up to its last kept frame, writing each kept head; crops written."""
    keep = {}
    for f, p, b in zip(frames, persons, boxes):
        keep.setdefault(int(f), []).append((int(p), b))
    last = max(keep)
    cap = cv2.VideoCapture(str(video))
    written = 0
    k = 0
    while k <= last:
        if args.grab and k not in keep:
            ok = cap.grab()
        else:
            ok, image = cap.read()
        if not ok:
            break
        for person, box in keep.get(k, []):
            crop = crop_square(image, box, args.margin, args.size)
            if crop is not None:
                cv2.imwrite(str(out / f"{k:08d}_{person}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
                written += 1
        k += 1
    cap.release()
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boxes", required=True)
    ap.add_argument("--videos", required=True, help="the sequence's hdVideos folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--margin", type=float, default=0.15)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--grab", action="store_true", help="grab() frames that are not kept instead of read()")
    args = ap.parse_args()
    data = np.load(args.boxes)
    cameras = data["camera"].astype(str)
    written = 0
    for camera in sorted(set(cameras)):
        rows = cameras == camera
        out = Path(args.out) / camera
        os.makedirs(out, exist_ok=True)
        written += crop_video(Path(args.videos) / f"hd_00_{camera.split('_')[-1]}.mp4", data["frame"][rows],
                              data["person"][rows], data["box"][rows], out, args)
    print(written)


if __name__ == "__main__":
    main()
