"""Synthetic sample rows (schemas/samples.schema.yaml) for tests that need shards but no video."""
import numpy as np

from annotate.geometry.rotations import (matrix_from_euler, quaternion_from_matrix, sixd_6drepnet_from_matrix,
                                         sixd_from_matrix)
from annotate.media.crops import CropSpec, apply_transform, crop_transforms
from annotate.media.jpeg import encode_jpeg_rgb

K = np.array([[1400.0, 0, 960], [0, 1400.0, 540], [0, 0, 1]])


def sample_columns(n: int, seed: int = 0, split: str = "train", sequence: str = "seq_a", camera: str = "00_01",
                   frame0: int = 0, image_bytes: int | None = None, size: int = 64) -> dict:
    """n rows with random angles, a textured JPEG each (or ``image_bytes`` filler bytes)."""
    rng = np.random.default_rng(seed)
    yaw = rng.uniform(-180, 180, n)
    pitch = rng.uniform(-60, 60, n)
    roll = rng.uniform(-40, 40, n)
    R = matrix_from_euler(np.radians(yaw), np.radians(pitch), np.radians(roll))
    boxes = np.column_stack([rng.uniform(500, 900, n), rng.uniform(300, 500, n)])
    boxes = np.column_stack([boxes, boxes + rng.uniform(80, 150, (n, 1))])
    A = crop_transforms(boxes, CropSpec(size=size))
    landmarks = boxes[:, None, :2] + rng.uniform(0, 80, (n, 70, 2))
    if image_bytes is None:
        images = [encode_jpeg_rgb(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), 80) for _ in range(n)]
    else:
        images = [bytes(rng.integers(0, 255, image_bytes, dtype=np.uint8)) for _ in range(n)]
    frames = frame0 + np.arange(n, dtype=np.int32)
    persons = np.zeros(n, np.int32)
    return {
        "sample_id": [f"{sequence}/{f:08d}/0/{camera}" for f in frames], "sequence": [sequence] * n,
        "frame": frames, "person": persons, "camera": [camera] * n, "camera_index": np.ones(n, np.int16),
        "subject": [f"{sequence}:0"] * n, "split": [split] * n, "sample_weight": np.ones(n, np.float32),
        "image": images, "image_size": np.full(n, size, np.int16), "crop_from_image": A.reshape(n, 6),
        "crop_fraction_inside": np.ones(n, np.float32), "box_crop": np.tile([8.0, 8, 56, 56], (n, 1)),
        "landmarks_crop": apply_transform(A, landmarks).reshape(n, 140).astype(np.float32),
        "image_width": np.full(n, 1920, np.int32), "image_height": np.full(n, 1080, np.int32),
        "K": np.tile(K.reshape(9), (n, 1)), "dist": np.zeros((n, 5)),
        "yaw": yaw, "pitch": pitch, "roll": roll, "R_cam_head": R.reshape(n, 9),
        "rot6d": sixd_from_matrix(R).astype(np.float32), "quat_cam_head": quaternion_from_matrix(R),
        "rot6d_6drepnet": sixd_6drepnet_from_matrix(R).astype(np.float32),
        "head_centre_cam": np.column_stack([rng.uniform(-30, 30, (n, 2)), rng.uniform(250, 400, n)]),
        "head_scale": np.ones(n, np.float32), "helmet_radius_cm": np.full(n, 12.5, np.float32),
        "box": boxes.astype(np.float32), "box_unclipped": boxes.astype(np.float32),
        "box_fraction_inside": np.ones(n, np.float32), "facing_camera": np.abs(yaw) < 90,
        "fit_rms_cm": np.full(n, 0.3, np.float32), "fit_landmarks_used": np.full(n, 70, np.int16),
        "landmarks_2d": landmarks.reshape(n, 140).astype(np.float32),
        "landmarks_2d_observed": landmarks.reshape(n, 140).astype(np.float32),
        "landmarks_observed_crop": apply_transform(A, landmarks).reshape(n, 140).astype(np.float32),
        "landmark_visibility": np.zeros((n, 70), np.uint8), "visible_fraction": np.ones(n, np.float32),
        "face_visible": np.ones(n, bool), "occluders": [[] for _ in range(n)],
    }
