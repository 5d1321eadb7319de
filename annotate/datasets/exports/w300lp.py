"""300W-LP / AFLW2000-style export: JPEG + .mat per sample, as HopeNet and 6DRepNet read it.

Layout under ``out_dir``::

    <split>/<sequence>/<camera>/<frame:08d>_<person>.jpg   the stored head crop
    <split>/<sequence>/<camera>/<frame:08d>_<person>.mat
    <split>_filenames.txt                                  one "<split>/<...>_<person>" per line

This is what HopeNet's ``Pose_300W_LP`` / ``AFLW2000`` datasets expect with
``data_dir=out_dir`` and ``filename_path=<split>_filenames.txt``: they open
``data_dir/<name>.jpg`` and ``data_dir/<name>.mat``, read ``pt2d`` for the face box and
``Pose_Para`` for the angles.

The .mat (``scipy.io.savemat``, MATLAB 5 format) holds:

- ``Pose_Para``: (1, 7) float64 ``[pitch, yaw, roll, tx, ty, tz, scale]``, angles in
  radians. HopeNet reads ``pose = Pose_Para[0][:3] * 180 / pi; pitch, yaw, roll = pose``.
  No sign flip: our convention is the one HopeNet draws with ``draw_axis`` (positive yaw =
  face toward the image's left, positive pitch = chin up, positive roll = subject's left
  ear down; tested against HopeNet's drawing formulas). tx, ty: the head centre projected
  into the crop (px); tz: its depth in the camera (cm); scale: crop px per full-frame px.
  (300W-LP's own tx..scale are 3DMM parameters that these loaders do not read.)
- ``pt2d``: (2, 68) float64, the iBUG-68 landmarks in crop pixels (x row, y row); all 68
  are projected positions, self-occluded ones included, as in 300W-LP.
- ``roi``: (1, 4) float64 head box (x0, y0, x1, y1) in crop pixels (extra).

Only the frontal range is exported (``max(|yaw|, |pitch|, |roll|) <= max_angle_deg``,
99 deg as HopeNet's filtering), and only samples with 2D landmarks (``landmarks_crop``):
the loaders crop by ``pt2d``. The others are counted, not written.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import scipy.io

from annotate.core.atomic import staged_folder
from annotate.datasets.exports.common import dataset_splits, sample_stem, split_records, write_bytes
from annotate.geometry.cameras import project_camera_points
from annotate.media.crops import apply_transform

COLUMNS = ["sequence", "camera", "frame", "person", "image", "yaw", "pitch", "roll", "landmarks_crop",
           "head_centre_cam", "K", "dist", "crop_from_image", "box_crop"]
NUM_IBUG = 68


def pose_para(record: dict) -> np.ndarray:
    """(1, 7) ``[pitch, yaw, roll (rad), tx, ty (crop px), tz (cm), scale]`` of one record."""
    A = np.asarray(record["crop_from_image"], np.float64).reshape(2, 3)
    centre = np.asarray(record["head_centre_cam"], np.float64)
    uv = project_camera_points(centre, np.asarray(record["K"], np.float64).reshape(3, 3),
                               np.asarray(record["dist"], np.float64))
    tx, ty = apply_transform(A, uv)
    angles = np.radians([record["pitch"], record["yaw"], record["roll"]])
    return np.array([[*angles, tx, ty, centre[2], A[0, 0]]], dtype=np.float64)


def export_300wlp(dataset_dir: str | Path, out_dir: str | Path, max_angle_deg: float = 99.0) -> dict:
    """Write the 300W-LP-style export; returns {"written": {split: n}, "skipped": {reason: n}}."""
    written, skipped = Counter(), Counter()
    with staged_folder(out_dir) as stage:
        for split in dataset_splits(dataset_dir):
            names = []
            for r in split_records(dataset_dir, split, COLUMNS, desc=f"300W-LP export {split}"):
                if max(abs(r["yaw"]), abs(r["pitch"]), abs(r["roll"])) > max_angle_deg:
                    skipped["outside_frontal_range"] += 1
                    continue
                lm = r["landmarks_crop"]
                if lm is None or not np.all(np.isfinite(np.asarray(lm)[: 2 * NUM_IBUG])):
                    skipped["no_landmarks"] += 1
                    continue
                name = f"{split}/{sample_stem(r)}"
                pt2d = np.asarray(lm, np.float64).reshape(-1, 2)[:NUM_IBUG].T.copy()        # (2, 68)
                write_bytes(stage / f"{name}.jpg", r["image"])
                scipy.io.savemat(stage / f"{name}.mat", {
                    "Pose_Para": pose_para(r), "pt2d": pt2d,
                    "roi": np.asarray(r["box_crop"], np.float64).reshape(1, 4)})
                names.append(name)
            (stage / f"{split}_filenames.txt").write_text("".join(n + "\n" for n in names))
            written[split] = len(names)
    return {"written": dict(written), "skipped": dict(skipped)}
