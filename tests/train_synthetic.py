"""Small pose-dependent images for the trainer's tests (no shards needed).

Each image is an orthographic view of a sphere head (radius ``0.36 * size``) with coloured
markers fixed in the head frame (nose, eyes, ears, crown, back) and the 70 landmarks of
the synthetic generator's face; markers facing away from the camera are hidden. So the
pixels determine the pose, the landmark positions and their visibility, and a small
network can learn them.
"""
from __future__ import annotations

import cv2
import numpy as np

from annotate.geometry.rotations import matrix_from_euler
from annotate.head.face_model import base_face_landmarks
from annotate.train.data import InMemorySource

# Head-frame unit directions (x: subject's left ear, y: up, z: out of the face) and RGB colours.
MARKERS = [((0.0, -0.1, 1.0), (230, 30, 30)), ((0.4, 0.3, 0.87), (30, 200, 30)),
           ((-0.4, 0.3, 0.87), (30, 60, 230)), ((1.0, 0.0, 0.0), (230, 230, 40)),
           ((-1.0, 0.0, 0.0), (200, 40, 200)), ((0.0, 1.0, 0.0), (250, 250, 250)),
           ((0.0, 0.2, -1.0), (40, 220, 220))]
VISIBLE, SELF_OCCLUDED = 0, 2


def render(R_cam_head: np.ndarray, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (size, size, 3) uint8, landmarks (70, 2) px, visibility codes (70,) uint8)."""
    radius = 0.36 * size
    c = (size - 1) / 2.0
    img = np.full((size, size, 3), 60, np.uint8)
    cv2.circle(img, (int(round(c)), int(round(c))), int(round(radius)), (150, 120, 100), -1, cv2.LINE_AA)
    dirs = np.array([m[0] for m in MARKERS])
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    cam = dirs @ R_cam_head.T
    for (d, colour), p in sorted(zip(MARKERS, cam), key=lambda t: -t[1][2]):
        if p[2] < 0:       # faces the camera (camera looks along +z)
            cv2.circle(img, (int(round(c + radius * p[0])), int(round(c + radius * p[1]))), max(2, size // 14),
                       colour, -1, cv2.LINE_AA)
    face = base_face_landmarks()
    face = face / np.linalg.norm(face, axis=1).max()
    lm_cam = face @ R_cam_head.T
    landmarks = (c + radius * lm_cam[:, :2]).astype(np.float32)
    codes = np.where(lm_cam[:, 2] < 0, VISIBLE, SELF_OCCLUDED).astype(np.uint8)
    return img, landmarks, codes


def make_records(n: int, size: int = 64, seed: int = 0, sequence: str = "toy") -> list[dict]:
    """``n`` records in the samples-schema layout; yaw over the full range, pitch/roll +-40."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        yaw, pitch, roll = rng.uniform(-180, 180), rng.uniform(-40, 40), rng.uniform(-40, 40)
        R = matrix_from_euler(*np.deg2rad([yaw, pitch, roll]))
        img, lm, codes = render(R, size)
        records.append({"image": img, "yaw": yaw, "pitch": pitch, "roll": roll, "R_cam_head": R.reshape(9),
                        "landmarks_crop": lm.reshape(140), "landmark_visibility": codes,
                        "sequence": sequence, "sample_id": f"{sequence}/{i:05d}"})
    return records


def make_source(n: int, size: int = 64, seed: int = 0, sequence: str = "toy") -> InMemorySource:
    return InMemorySource(make_records(n, size, seed, sequence))


def write_shards(directory, records: list[dict], per_shard: int = 64, row_group: int = 16,
                 split: str = "train") -> list:
    """Write records as real sample shards with issue 3's ShardWriter.

    The columns the trainer does not read come from the dataset tests' ``sample_columns``;
    images, angles, rotations, landmarks and visibility are the records'. Returns the paths.
    """
    from annotate.datasets.shards import ShardLimits, ShardWriter
    from annotate.geometry.rotations import quaternion_from_matrix, sixd_6drepnet_from_matrix, sixd_from_matrix
    from annotate.media.jpeg import encode_jpeg_rgb
    from sample_rows import sample_columns

    n = len(records)
    R = np.stack([np.asarray(r["R_cam_head"], np.float64).reshape(3, 3) for r in records])
    cols = sample_columns(n, split=split, sequence=records[0]["sequence"], size=records[0]["image"].shape[0])
    cols.update({
        "image": [encode_jpeg_rgb(r["image"], quality=95) for r in records],
        "yaw": np.array([r["yaw"] for r in records]), "pitch": np.array([r["pitch"] for r in records]),
        "roll": np.array([r["roll"] for r in records]), "R_cam_head": R.reshape(n, 9),
        "rot6d": sixd_from_matrix(R).astype(np.float32), "quat_cam_head": quaternion_from_matrix(R),
        "rot6d_6drepnet": sixd_6drepnet_from_matrix(R).astype(np.float32),
        "facing_camera": np.array([abs(r["yaw"]) < 90 for r in records]),
        "landmarks_crop": np.stack([r["landmarks_crop"] for r in records]).astype(np.float32),
        "landmark_visibility": np.stack([r["landmark_visibility"] for r in records]).astype(np.uint8),
    })
    writer = ShardWriter(directory, "toy", ShardLimits(max_samples=per_shard, row_group_samples=row_group))
    writer.write(cols)
    return [s.path for s in writer.close()]
