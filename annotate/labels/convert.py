"""Convert labels and head fits of schema 1.x (eye-mouth zero pose) to 2.x (WHENet's).

The two versions describe the same fitted heads in two head frames of the same mean model,
so the change is one fixed rigid transform per head model (``HeadModel.eye_mouth_from_head``:
rotation R and origin shift o, both in the old frame at model scale):

    R_new = R_old @ R,    centre_new = centre_old + head_scale * R_old @ o

Angles, quaternion and 6D forms follow from ``R_new``; the head box, its clipping and the
view checks are recomputed from the moved centre with the stage's own ``camera_labels``.
Landmark columns (2D points, visibility) do not depend on the head frame and are copied.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from annotate.core.schema import SchemaError
from annotate.core.tables import StreamingTableWriter, fixed_list_to_numpy
from annotate.head.head_model import HeadModel
from annotate.head.per_view import REJECT_FIT, ViewConfig, camera_labels
from annotate.panoptic.tables import load_cameras


def _old_file(path: Path, name: str) -> pq.ParquetFile:
    """Open a 1.x file of table ``name``; anything else is refused, naming the file."""
    f = pq.ParquetFile(path)
    meta = f.schema_arrow.metadata or {}
    found = meta.get(b"schema_name", b"").decode()
    version = meta.get(b"schema_version", b"").decode()
    if found != name:
        raise SchemaError(f"{path}: holds table {found or '(no schema_name)'!r}, expected {name!r}")
    if not version.startswith("1."):
        raise SchemaError(f"{path}: {name} version {version!r} is not 1.x: nothing to convert")
    return f


def convert_head_fits(path: str | Path, model: HeadModel, out_path: str | Path) -> int:
    """head_fits 1.x -> 2.x. Returns the number of rows written."""
    R, origin = model.eye_mouth_from_head()
    f = _old_file(Path(path), "head_fits")
    with StreamingTableWriter(out_path, "head_fits") as out:
        for batch in f.iter_batches(batch_size=65536):
            table = pa.Table.from_batches([batch])
            R_old = fixed_list_to_numpy(table.column("R_world_head"), (3, 3)).astype(np.float64)
            t_old = fixed_list_to_numpy(table.column("t_world_head"), (3,)).astype(np.float64)
            scale = table.column("scale").to_numpy(zero_copy_only=False).astype(np.float64)
            cols = {name: table.column(name) for name in table.column_names}
            cols["R_world_head"] = (R_old @ R).reshape(-1, 9)
            cols["t_world_head"] = t_old + scale[:, None] * (R_old @ origin)
            out.write(cols)
    return out.rows


def convert_labels(path: str | Path, cameras_path: str | Path, model: HeadModel, out_path: str | Path,
                   view_config: ViewConfig = ViewConfig()) -> int:
    """labels 1.x -> 2.x for one sequence's table. Returns the number of rows written.

    cameras_path: the sequence's ``cameras.parquet`` (the boxes are reprojected with it).
    view_config: the thresholds the labels were made with (``views`` in the config).
    """
    R, origin = model.eye_mouth_from_head()
    rig = load_cameras(cameras_path)
    position = {name: i for i, name in enumerate(rig.names)}
    f = _old_file(Path(path), "labels")
    with StreamingTableWriter(out_path, "labels") as out:
        for batch in f.iter_batches(batch_size=65536):
            table = pa.Table.from_batches([batch])
            cols = {name: table.column(name) for name in table.column_names}
            cams = table.column("camera").to_pylist()
            unknown = sorted(set(cams) - set(position))
            if unknown:
                raise ValueError(f"{path}: cameras {unknown[:5]} are not in {cameras_path}")
            cam = np.array([position[c] for c in cams], dtype=np.int64)
            R_old = fixed_list_to_numpy(table.column("R_cam_head"), (3, 3)).astype(np.float64)
            centre_old = fixed_list_to_numpy(table.column("head_centre_cam"), (3,)).astype(np.float64)
            scale = table.column("head_scale").to_numpy(zero_copy_only=False).astype(np.float64)
            radius = table.column("helmet_radius_cm").to_numpy(zero_copy_only=False).astype(np.float64)
            reject_old = np.asarray(table.column("reject_reason").to_pylist(), dtype=object)
            R_new = R_old @ R
            centre_new = centre_old + scale[:, None] * (R_old @ origin)
            cols.update(_recompute_views(rig, cam, R_new, centre_new, radius, reject_old != REJECT_FIT, view_config))
            out.write(cols)
    return out.rows


def _recompute_views(rig, cam: np.ndarray, R_cam_head: np.ndarray, centre_cam: np.ndarray,
                     radius: np.ndarray, fit_ok: np.ndarray, view_config: ViewConfig) -> dict:
    """The view columns of N rows (camera position ``cam`` (N,)) from their new pose."""
    n = len(cam)
    yaw, pitch, roll = np.empty(n), np.empty(n), np.empty(n)
    rot6d, quat = np.empty((n, 6)), np.empty((n, 4))
    box, box_unclipped, fraction = np.empty((n, 4)), np.empty((n, 4)), np.empty(n)
    facing, reject = np.empty(n, bool), np.empty(n, dtype=object)
    for c in np.unique(cam):
        rows = np.flatnonzero(cam == c)
        one = rig.subset([int(c)])
        # Back to the world with this camera's pose, then the stage's own per-view maths.
        R_world = np.swapaxes(one.R_cam_world, -1, -2) @ R_cam_head[rows]
        t_world = (centre_cam[rows] - one.t_cam_world) @ one.R_cam_world[0]
        views = camera_labels(one, R_world, t_world, radius[rows], fit_ok[rows], view_config)
        yaw[rows], pitch[rows], roll[rows] = views.euler_deg[0].T
        rot6d[rows], quat[rows] = views.rot6d[0], views.quat[0]
        box[rows], box_unclipped[rows], fraction[rows] = views.box[0], views.box_unclipped[0], views.fraction_inside[0]
        facing[rows], reject[rows] = views.facing[0], views.reject[0]
    return dict(yaw=yaw, pitch=pitch, roll=roll, R_cam_head=R_cam_head.reshape(-1, 9), rot6d=rot6d,
                quat_cam_head=quat, head_centre_cam=centre_cam, box=box, box_unclipped=box_unclipped,
                box_fraction_inside=fraction, facing_camera=facing, valid=reject == "", reject_reason=reject)
