"""The ingest's tables read back as arrays: ``faces3d``, ``bodies``, ``frames``, ``cameras``.

``load_faces3d`` / ``iter_faces3d`` -> ``Faces3D``, ``load_bodies`` -> ``Bodies3D``,
``load_frames`` -> ``FrameList``, ``load_camera_info`` -> ``Calibration`` and
``load_cameras`` -> ``CameraRig``. Each first checks the file's schema name and major
version (``annotate.core.tables.read_table``); a file that holds several sequences needs
``sequence=``. ``SOURCE_PUBLISHED`` and ``SOURCE_TRIANGULATED`` are the values of the
faces3d ``source`` column.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from annotate.core.tables import fixed_list_to_numpy, iter_batches, read_table
from annotate.geometry.cameras import CameraRig
from annotate.panoptic.calibration import Calibration

SOURCE_PUBLISHED = "published"
SOURCE_TRIANGULATED = "triangulated"


def _strings(col) -> np.ndarray:
    """A string or dictionary<string> column as an (M,) object array."""
    return np.asarray(col.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)


def _only_sequence(table: pa.Table, path, sequence: str | None) -> pa.Table:
    seqs = _strings(table.column("sequence"))
    if sequence is None:
        names = sorted(set(seqs.tolist()))
        if len(names) > 1:
            raise ValueError(f"{path} holds sequences {names}; pass sequence=")
        return table
    return table.filter(pa.array(seqs == sequence, type=pa.bool_()))


@dataclass(frozen=True, eq=False)
class Faces3D:
    """Rows of a ``faces3d`` table as arrays (M rows).

    frame, person: (M,) int64. landmarks: (M, 70, 3) float64 cm world, NaN = missing.
    score, repro_error (px): (M, 70) float64. sequence, source: (M,) str.
    visibility: M lists of 70 lists of camera indices, or None unless asked for.
    """

    sequence: np.ndarray
    frame: np.ndarray
    person: np.ndarray
    landmarks: np.ndarray
    score: np.ndarray
    repro_error: np.ndarray
    source: np.ndarray
    visibility: list | None = None

    def __len__(self) -> int:
        return len(self.frame)


def _faces_from_table(table, with_visibility: bool) -> Faces3D:
    return Faces3D(
        sequence=_strings(table.column("sequence")),
        frame=table.column("frame").to_numpy().astype(np.int64),
        person=table.column("person").to_numpy().astype(np.int64),
        landmarks=fixed_list_to_numpy(table.column("landmarks_world"), (70, 3)).astype(np.float64),
        score=fixed_list_to_numpy(table.column("score"), (70,)).astype(np.float64),
        repro_error=fixed_list_to_numpy(table.column("repro_error"), (70,)).astype(np.float64),
        source=_strings(table.column("source")),
        visibility=table.column("visibility").to_pylist() if with_visibility else None,
    )


def load_faces3d(path: str | Path, sequence: str | None = None,
                 with_visibility: bool = False) -> Faces3D:
    """Read a ``faces3d`` table (all of it; see ``iter_faces3d`` for bounded memory)."""
    table = _only_sequence(read_table(path, "faces3d"), path, sequence)
    return _faces_from_table(table, with_visibility)


def iter_faces3d(path: str | Path, batch_rows: int = 10_000,
                 with_visibility: bool = False) -> Iterator[Faces3D]:
    """``Faces3D`` chunks of at most ``batch_rows`` rows, in file order."""
    for batch in iter_batches(path, "faces3d", batch_rows):
        yield _faces_from_table(pa.Table.from_batches([batch]), with_visibility)


@dataclass(frozen=True, eq=False)
class Bodies3D:
    """Rows of a ``bodies`` table: frame, person (M,) int64; univ_time (M,) ms (NaN = none);
    joints (M, 19, 3) float64 cm world, NaN = missing; confidence (M, 19), -1 = missing/invalid."""

    sequence: np.ndarray
    frame: np.ndarray
    person: np.ndarray
    univ_time: np.ndarray
    joints: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)


def load_bodies(path: str | Path, sequence: str | None = None) -> Bodies3D:
    """Read a ``bodies`` table."""
    table = _only_sequence(read_table(path, "bodies"), path, sequence)
    return Bodies3D(
        sequence=_strings(table.column("sequence")),
        frame=table.column("frame").to_numpy().astype(np.int64),
        person=table.column("person").to_numpy().astype(np.int64),
        univ_time=table.column("univ_time").to_numpy(zero_copy_only=False).astype(np.float64),
        joints=fixed_list_to_numpy(table.column("joints_world"), (19, 3)).astype(np.float64),
        confidence=fixed_list_to_numpy(table.column("joint_confidence"), (19,)).astype(np.float64),
    )


@dataclass(frozen=True, eq=False)
class FrameList:
    """Rows of a ``frames`` table: frame (F,) int64; face_file, body_file (F,) bool;
    cameras_with_media (F,) int64, -1 where null; from_media: the frames came from the
    cameras' images or videos (a capture without 3D files)."""

    frame: np.ndarray
    face_file: np.ndarray
    body_file: np.ndarray
    cameras_with_media: np.ndarray

    @property
    def from_media(self) -> bool:
        return bool(len(self.frame)) and bool(np.all(self.cameras_with_media >= 0))


def load_frames(path: str | Path, sequence: str | None = None) -> FrameList:
    """Read a ``frames`` table."""
    table = _only_sequence(read_table(path, "frames"), path, sequence)
    media = table.column("cameras_with_media").to_numpy(zero_copy_only=False)
    return FrameList(frame=table.column("frame").to_numpy().astype(np.int64),
                     face_file=table.column("face_file").to_numpy(zero_copy_only=False).astype(bool),
                     body_file=table.column("body_file").to_numpy(zero_copy_only=False).astype(bool),
                     cameras_with_media=np.nan_to_num(media.astype(np.float64), nan=-1).astype(np.int64))


def load_camera_info(path: str | Path, sequence: str | None = None) -> Calibration:
    """Read a ``cameras`` table back as a ``Calibration`` (rig, panels, nodes, camera_index).

    ``source`` is the table's path; ``type_count`` is only a lower bound (max camera_index
    + 1), since the table does not list cameras that were not ingested.
    """
    table = _only_sequence(read_table(path, "cameras"), path, sequence)
    c = table.num_rows
    if c == 0:
        raise ValueError(f"{path} holds no cameras" + (f" for sequence {sequence!r}" if sequence else ""))
    types = sorted(set(_strings(table.column("type")).tolist()))
    if len(types) != 1:
        raise ValueError(f"{path} mixes camera types {types}")
    rig = CameraRig(
        names=tuple(_strings(table.column("camera")).tolist()),
        K=fixed_list_to_numpy(table.column("K"), (3, 3)),
        dist=fixed_list_to_numpy(table.column("dist"), (5,)),
        R_cam_world=fixed_list_to_numpy(table.column("R_cam_world"), (3, 3)),
        t_cam_world=fixed_list_to_numpy(table.column("t_cam_world"), (3,)),
        image_size=np.stack([table.column("width").to_numpy(), table.column("height").to_numpy()],
                            axis=1).astype(np.int64),
    )
    index = table.column("camera_index").to_numpy().astype(np.int64)
    return Calibration(rig=rig, camera_type=types[0],
                       panels=table.column("panel").to_numpy().astype(np.int64),
                       nodes=table.column("node").to_numpy().astype(np.int64),
                       camera_index=index, source=str(path),
                       type_count=int(index.max()) + 1)


def load_frame_offsets(path: str | Path, sequence: str | None = None) -> dict[str, int]:
    """camera -> the picture number of capture frame 0 (``annotate.panoptic.frame_offsets``),
    from a ``cameras`` table; 0 for every camera of a 1.0 table, which has no such column."""
    table = _only_sequence(read_table(path, "cameras"), path, sequence)
    names = _strings(table.column("camera")).tolist()
    if "frame_offset" not in table.column_names:
        return {name: 0 for name in names}
    return dict(zip(names, (int(v) for v in table.column("frame_offset").to_numpy())))


def load_cameras(path: str | Path, sequence: str | None = None) -> CameraRig:
    """Read a ``cameras`` table back as the ``CameraRig`` it was written from."""
    return load_camera_info(path, sequence).rig
