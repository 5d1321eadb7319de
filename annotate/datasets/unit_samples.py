"""One camera's planned samples before decoding: their labels, crop windows and sample columns.

The dataset stage (annotate.datasets.build) reads the valid labels of a group of cameras
in one scan (``read_labels``), joins each camera's planned rows with them
(``label_rows``), and builds every sample column but the JPEG once per camera
(``UnitSamples.table``), so writing a row group is a ``take`` plus the JPEG bytes
(``with_images``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from annotate.core.schema import load_schema
from annotate.core.tables import fixed_list_to_numpy, read_table, to_arrow
from annotate.media.crops import CropSpec, apply_transform, crop_fraction_inside, transform_boxes
from annotate.core.rowkeys import frame_person_keys, match_keys
from annotate.geometry.rotations import sixd_6drepnet_from_matrix
from annotate.panoptic.tables import load_frame_offsets

# Label columns copied into every sample (the rest of the samples schema is built here).
LABEL_COLUMNS = ["camera_index", "yaw", "pitch", "roll", "R_cam_head", "rot6d", "quat_cam_head", "head_centre_cam",
                 "head_scale", "helmet_radius_cm", "box", "box_unclipped", "box_fraction_inside", "facing_camera",
                 "fit_rms_cm", "fit_landmarks_used"]
LIST_SHAPES = {"R_cam_head": (9,), "rot6d": (6,), "quat_cam_head": (4,), "head_centre_cam": (3,), "box": (4,),
               "box_unclipped": (4,)}
# Per-view 2D landmarks, visibility and occlusion (labels 1.1): copied when the labels
# have them (null otherwise); the two landmark sets are also mapped into the crop.
OPTIONAL_COLUMNS = {"landmarks_2d": (70, 2), "landmarks_2d_observed": (70, 2), "landmark_visibility": (70,),
                    "visible_fraction": None, "face_visible": None, "occluders": None}
CROP_LANDMARKS = {"landmarks_2d": "landmarks_crop", "landmarks_2d_observed": "landmarks_observed_crop"}


def camera_table(cameras_path: str | Path) -> dict[str, dict]:
    """camera name -> {K (9,), dist (5,), width, height, frame_offset (the picture number of
    frame 0, ``annotate.panoptic.frame_offsets``)}."""
    t = read_table(cameras_path, "cameras", columns=["camera", "width", "height", "K", "dist"])
    K = fixed_list_to_numpy(t.column("K"), (9,))
    dist = fixed_list_to_numpy(t.column("dist"), (5,))
    names = t.column("camera").to_pylist()
    offsets = load_frame_offsets(cameras_path)
    return {n: {"K": K[i], "dist": dist[i], "width": int(t.column("width")[i].as_py()),
                "height": int(t.column("height")[i].as_py()), "frame_offset": offsets[n]}
            for i, n in enumerate(names)}


# Cameras whose labels are read together: one scan of labels.parquet per group (its rows are
# ordered by face, so a per-camera filter would scan the whole file for every camera), with
# memory bounded by the group's planned rows.
MAX_LABEL_ROWS_PER_READ = 200_000


def camera_groups(plan_rows_per_camera: dict[str, int], max_rows: int = MAX_LABEL_ROWS_PER_READ) -> list[list[str]]:
    """Consecutive cameras in groups of at most ``max_rows`` planned rows (at least one camera)."""
    groups, current, rows = [], [], 0
    for camera, n in plan_rows_per_camera.items():
        if current and rows + n > max_rows:
            groups.append(current)
            current, rows = [], 0
        current.append(camera)
        rows += n
    return groups + ([current] if current else [])


def read_labels(labels_path: str | Path, cameras: list[str]) -> dict[str, pa.Table]:
    """camera -> its valid label rows (the columns samples copy), for a group of cameras."""
    from pyarrow import parquet as pq

    names = set(pq.read_schema(labels_path).names)
    columns = ["camera", "frame", "person"] + LABEL_COLUMNS + [c for c in OPTIONAL_COLUMNS if c in names]
    table = read_table(labels_path, "labels", columns=columns,
                       filters=[("camera", "in", cameras), ("reject_reason", "=", "")])
    camera = table.column("camera")
    return {c: table.filter(pc.equal(camera, c)) for c in cameras}


def label_rows(table: pa.Table, camera: str, plan: pd.DataFrame, labels_path) -> tuple[pd.DataFrame, dict]:
    """The planned rows of one camera with their label arrays, sorted by (frame, person).

    table: the camera's valid label rows (``read_labels``). Returns the plan rows (frame,
    person, subject, split, sample_weight) and a dict of label arrays aligned with them
    (fixed-size lists as (N, k) arrays).
    """
    optional = [c for c in OPTIONAL_COLUMNS if c in table.column_names]
    plan_keys = frame_person_keys(plan["frame"].to_numpy(), plan["person"].to_numpy())
    order = np.argsort(plan_keys, kind="stable")
    rows = plan.iloc[order].reset_index(drop=True)
    pos, matched = match_keys(frame_person_keys(table.column("frame").to_numpy(), table.column("person").to_numpy()),
                              plan_keys[order])
    if not matched.all():
        missing = rows[~matched].iloc[0]
        raise ValueError(f"{labels_path}: planned sample frame {missing.frame} person {missing.person} camera "
                         f"{camera} has no valid label; the plan is stale, rebuild it")
    # Only the planned rows are converted: a subsampled plan keeps few of the labelled frames.
    planned = table.take(pa.array(pos, type=pa.int64()))
    arrays = {}
    for c in LABEL_COLUMNS:
        col = planned.column(c)
        arrays[c] = fixed_list_to_numpy(col, LIST_SHAPES[c]) if c in LIST_SHAPES else col.to_numpy(zero_copy_only=False)
    for c in optional:
        col = planned.column(c)
        shape = OPTIONAL_COLUMNS[c]
        arrays[c] = fixed_list_to_numpy(col, shape) if shape else _values(col)
    return rows, arrays


def _values(col) -> np.ndarray:
    """A column's per-row values as a numpy array (object rows for lists)."""
    if pa.types.is_list(col.type):
        return np.array(col.to_pylist() + [None], dtype=object)[:-1]
    return col.to_numpy(zero_copy_only=False)


@dataclass
class UnitSamples:
    """Everything known about one camera's samples before decoding: arrays aligned by row."""

    sequence: str
    camera: str
    rows: pd.DataFrame
    arrays: dict
    camera_info: dict
    transforms: np.ndarray             # (N, 2, 3) crop_from_image
    windows: np.ndarray                # (N, 3) int source windows (x0, y0, side), px

    def table(self, spec: CropSpec) -> pa.Table:
        """Every sample column of every row (schemas/samples.schema.yaml), ``image`` empty:
        built once per camera, so writing a row group is a ``take`` plus the JPEGs."""
        r, a, A, n = self.rows, self.arrays, self.transforms, len(self.rows)
        frames = r["frame"].to_numpy().astype(np.int32)
        persons = r["person"].to_numpy().astype(np.int32)
        cols = {
            "sample_id": [f"{self.sequence}/{f:08d}/{p}/{self.camera}" for f, p in zip(frames, persons)],
            "sequence": [self.sequence] * n, "frame": frames, "person": persons, "camera": [self.camera] * n,
            "subject": r["subject"].astype(str).to_numpy(), "split": r["split"].astype(str).to_numpy(),
            "sample_weight": r["sample_weight"].to_numpy().astype(np.float32),
            "image": [b""] * n, "image_size": np.full(n, spec.size, np.int16),
            "crop_from_image": A.reshape(n, 6),
            "crop_fraction_inside": crop_fraction_inside(A, self.camera_info["width"], self.camera_info["height"],
                                                         spec.size).astype(np.float32),
            "box_crop": transform_boxes(A, a["box_unclipped"]).astype(np.float32),
            "image_width": np.full(n, self.camera_info["width"], np.int32),
            "image_height": np.full(n, self.camera_info["height"], np.int32),
            "K": np.repeat(self.camera_info["K"][None], n, axis=0),
            "dist": np.repeat(self.camera_info["dist"][None], n, axis=0),
        }
        for c in LABEL_COLUMNS:
            cols[c] = a[c]
        cols["rot6d_6drepnet"] = sixd_6drepnet_from_matrix(a["R_cam_head"].reshape(n, 3, 3)).astype(np.float32)
        schema = load_schema("samples").arrow
        for c, shape in OPTIONAL_COLUMNS.items():
            if c not in a:
                cols[c] = pa.nulls(n, schema.field(c).type)
                continue
            cols[c] = a[c].reshape(n, -1) if shape else (pa.array(list(a[c]), type=schema.field(c).type)
                                                         if c == "occluders" else a[c])
            if c in CROP_LANDMARKS:
                cols[c] = cols[c].astype(np.float32)
                crop = apply_transform(A, a[c].astype(np.float64))
                cols[CROP_LANDMARKS[c]] = crop.reshape(n, -1).astype(np.float32)
        for c, crop_name in CROP_LANDMARKS.items():
            if c not in a:
                cols[crop_name] = pa.nulls(n, schema.field(crop_name).type)
        return to_arrow(cols, "samples")


def with_images(table: pa.Table, idx: np.ndarray, images: list[bytes]) -> pa.Table:
    """Rows ``idx`` of a unit's table with their JPEG bytes filled in."""
    rows = table.take(pa.array(idx, type=pa.int64()))
    column = rows.schema.get_field_index("image")
    return rows.set_column(column, rows.schema.field(column), pa.array(images, type=pa.binary()))
