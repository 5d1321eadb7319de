"""External benchmarks read as ``RecordSource``s (annotate.train.data), with their standard
evaluation protocols.

AFLW2000-3D (Zhu et al. 2016): ``imageXXXXX.jpg`` with ``imageXXXXX.mat``; ``Pose_Para``
(1, 7) is [pitch, yaw, roll, tx, ty, tz, scale] in radians, ``pt2d`` (2, 21) the 2D
landmarks. Protocol (HopeNet, FSA-Net, 6DRepNet): keep images whose three angles are all
within +-99 deg (1,969 of 2,000); crop the loosened landmark box as HopeNet's test loader
(k = 0.2: the box grows by 2k of its width left and right and 2k of its height on top,
0.6k below, each step using the box updated so far; outside pixels are black), then the
centred square of its short side (HopeNet's Resize + CenterCrop). The angles are already in
this project's convention (it is 300W-LP's).

BIWI Kinect Head Pose (Fanelli et al. 2013): ``<subject>/frame_XXXXX_rgb.png`` with
``frame_XXXXX_pose.txt`` (3 rows of the rotation matrix, a blank line, the head centre in
mm in the depth camera's frame) and the subject's ``rgb.cal`` (RGB intrinsics, distortion,
then the depth-to-RGB R and T in mm). The rotation is read as HopeNet does, which makes
``R_cam_head = R_biwi @ diag(1, -1, -1)`` in this project's convention. The crop is the
sphere of ``radius_mm`` around the head centre projected into the RGB image (the framing of
this project's own crops); published BIWI figures use face-detector boxes instead, so
compare trends, not decimals. Same +-99 deg filter.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from annotate.geometry.rotations import FLIP_YZ, euler_from_matrix, matrix_from_euler

MAX_ABS_DEG = 99.0


def crop_box_padded(image: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """image[y0:y1, x0:x1] with black outside the image (as PIL's ``Image.crop``)."""
    h, w = image.shape[:2]
    out = np.zeros((max(y1 - y0, 1), max(x1 - x0, 1), 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: cannot read the image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _record(image_path: Path, euler_deg: np.ndarray, sequence: str) -> dict:
    R = matrix_from_euler(*np.deg2rad(euler_deg))
    return {"image_path": image_path, "yaw": float(euler_deg[0]), "pitch": float(euler_deg[1]),
            "roll": float(euler_deg[2]), "R_cam_head": R.reshape(9), "sequence": sequence,
            "sample_id": f"{sequence}/{image_path.stem}"}


def _within(euler_deg: np.ndarray, max_abs_deg: float) -> bool:
    return bool(np.all(np.abs(euler_deg) <= max_abs_deg))


# ---------------------------------------------------------------------------- AFLW2000-3D

def hopenet_aflw_box(pt2d: np.ndarray, k: float = 0.2) -> tuple[int, int, int, int]:
    """HopeNet's loosened AFLW2000 test box (x0, y0, x1, y1) from ``pt2d`` (2, N), truncated to int."""
    x_min, x_max = float(np.min(pt2d[0])), float(np.max(pt2d[0]))
    y_min, y_max = float(np.min(pt2d[1])), float(np.max(pt2d[1]))
    x_min -= 2 * k * abs(x_max - x_min)
    y_min -= 2 * k * abs(y_max - y_min)
    x_max += 2 * k * abs(x_max - x_min)
    y_max += 0.6 * k * abs(y_max - y_min)
    return int(x_min), int(y_min), int(x_max), int(y_max)


class _BoxCropSource:
    """An external test set as records + boxes: item i is record i with ``image`` the
    padded crop of its box from its image file. Subclasses fill records (dicts with
    image_path, yaw, pitch, roll, ...), boxes ((x0, y0, x1, y1) px) and rejected."""

    records: list
    boxes: list
    rejected: list

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        rec = dict(self.records[index])
        rec["image"] = crop_box_padded(_read_rgb(rec.pop("image_path")), *self.boxes[index])
        return rec

    def labels_deg(self) -> np.ndarray:
        return np.array([[r["yaw"], r["pitch"], r["roll"]] for r in self.records]).reshape(-1, 3)


class Aflw2000Source(_BoxCropSource):
    """AFLW2000-3D under ``root`` (a folder of imageXXXXX.jpg + .mat), +-99 deg filtered.

    Items: records with ``image`` the HopeNet box crop (H, W, 3) uint8, angles in degrees,
    ``R_cam_head``; ``rejected`` lists the files left out and why.
    """

    def __init__(self, root: str | Path, max_abs_deg: float = MAX_ABS_DEG):
        from scipy.io import loadmat

        self.root = Path(root)
        mats = sorted(self.root.glob("image*.mat"))
        if not mats:
            raise FileNotFoundError(f"{self.root}: no AFLW2000-3D image*.mat files")
        self.records, self.boxes, self.rejected = [], [], []
        for mat_path in mats:
            jpg = mat_path.with_suffix(".jpg")
            if not jpg.is_file():
                self.rejected.append((mat_path.name, "missing_image"))
                continue
            mat = loadmat(str(mat_path))
            pitch, yaw, roll = np.rad2deg(np.asarray(mat["Pose_Para"], np.float64).reshape(-1)[:3])
            euler = np.array([yaw, pitch, roll])
            if not _within(euler, max_abs_deg):
                self.rejected.append((mat_path.name, "angle_beyond_99"))
                continue
            self.records.append(_record(jpg, euler, "AFLW2000"))
            self.boxes.append(hopenet_aflw_box(np.asarray(mat["pt2d"], np.float64)))


# ---------------------------------------------------------------------------------- BIWI

def _number_rows(path: Path) -> list[list[float]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            rows.append([float(t) for t in line.split()])
    return rows


def read_biwi_pose(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``frame_XXXXX_pose.txt`` -> (R_biwi (3, 3), head centre (3,) mm, depth camera frame)."""
    rows = _number_rows(Path(path))
    if len(rows) != 4 or any(len(r) != 3 for r in rows):
        raise ValueError(f"{path}: expected 3 rotation rows and a translation row of 3 numbers each")
    return np.array(rows[:3]), np.array(rows[3])


def biwi_r_cam_head(R_biwi: np.ndarray) -> np.ndarray:
    """BIWI's rotation -> R_cam_head of this project (the reading HopeNet's loader implies)."""
    return np.asarray(R_biwi, np.float64) @ FLIP_YZ


def read_biwi_calibration(path: str | Path) -> dict[str, np.ndarray]:
    """``rgb.cal`` -> K (3, 3), dist (4,), R (3, 3) and T (3,) mm (depth -> RGB camera)."""
    rows = _number_rows(Path(path))
    if len(rows) < 8 or any(len(r) != 3 for r in rows[:3] + rows[4:8]) or len(rows[3]) != 4:
        raise ValueError(f"{path}: expected K (3 rows), distortion (4 numbers), R (3 rows), T (3 numbers)")
    return {"K": np.array(rows[:3]), "dist": np.array(rows[3]), "R": np.array(rows[4:7]), "T": np.array(rows[7])}


def biwi_box(centre_depth_mm: np.ndarray, cal: dict, radius_mm: float) -> tuple[int, int, int, int]:
    """Square box (x0, y0, x1, y1) around the sphere of ``radius_mm`` at the head centre, RGB pixels."""
    c = cal["R"] @ centre_depth_mm + cal["T"]
    u = cal["K"] @ (c / c[2])
    half = cal["K"][0, 0] * radius_mm / np.sqrt(max(c[2] ** 2 - radius_mm ** 2, 1e-6))
    return (int(round(u[0] - half)), int(round(u[1] - half)), int(round(u[0] + half)), int(round(u[1] + half)))


class BiwiSource(_BoxCropSource):
    """BIWI under ``root`` (subject folders holding frame_XXXXX_rgb.png, _pose.txt, rgb.cal)."""

    def __init__(self, root: str | Path, radius_mm: float = 125.0, max_abs_deg: float = MAX_ABS_DEG):
        self.root = Path(root)
        poses = sorted(self.root.glob("**/frame_*_pose.txt"))
        if not poses:
            raise FileNotFoundError(f"{self.root}: no BIWI frame_XXXXX_pose.txt files")
        self.records, self.boxes, self.rejected = [], [], []
        cals: dict[Path, dict] = {}
        for pose_path in poses:
            m = re.fullmatch(r"frame_(\d+)_pose\.txt", pose_path.name)
            png = pose_path.with_name(f"frame_{m.group(1)}_rgb.png")
            cal_path = pose_path.parent / "rgb.cal"
            if not png.is_file() or not cal_path.is_file():
                self.rejected.append((str(pose_path.relative_to(self.root)), "missing_image_or_calibration"))
                continue
            R_biwi, centre = read_biwi_pose(pose_path)
            R = biwi_r_cam_head(R_biwi)
            euler = np.rad2deg(euler_from_matrix(R))
            if not _within(euler, max_abs_deg):
                self.rejected.append((str(pose_path.relative_to(self.root)), "angle_beyond_99"))
                continue
            if cal_path not in cals:
                cals[cal_path] = read_biwi_calibration(cal_path)
            rec = _record(png, euler, f"BIWI:{pose_path.parent.name}")
            rec["R_cam_head"] = R.reshape(9)
            self.records.append(rec)
            self.boxes.append(biwi_box(centre, cals[cal_path], radius_mm))
