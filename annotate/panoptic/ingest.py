"""Ingest one Panoptic sequence into five Parquet tables (``annotate.panoptic.tables`` reads them back).

``ingest_sequence`` reads ``calibration_<seq>.json`` and the selected frames of
``hdFace3d/`` and (if present) ``hdPose3d_stage1_coco19/`` and writes, in ``out_dir``::

    cameras.parquet     one row per selected HD camera          (schemas/cameras)
    frames.parquet      one row per selected frame with data    (schemas/frames)
    faces3d.parquet     one row per (frame, person) face        (schemas/faces3d, source=published)
    bodies.parquet      one row per (frame, person) body        (schemas/bodies)
    rejections.parquet  everything skipped, with a reason code  (schemas/rejections)

All five are always written (faces3d, bodies, rejections possibly empty). Frames are
processed in chunks of ``chunk_frames`` and streamed to disk, so memory does not grow with
the sequence length.

Frame selection. ``frame_start``/``frame_end`` (both inclusive, frame numbers as in the file
names) default to the first/last frame present in either folder; the selected frames are
``frame_start, frame_start + frame_step, ...`` within the frames present overall. For each
folder, a selected frame inside that folder's first..last present frame whose file is absent
is a ``missing_frame`` rejection (a gap); outside that span the folder simply has no data.
A folder entry whose name does not fit is an ``unexpected_file`` rejection.

A capture with neither folder (or both empty) takes its frames from the cameras' images and
videos instead (``annotate.panoptic.media_frames``): the selection is the same, kept to the
frames some camera has. No frame at all raises ``NoFramesError`` saying what was searched.

Errors. With ``on_error="reject"`` a defective file or person becomes a rejection and the
rest goes on; with ``on_error="raise"`` the first content defect raises
``PanopticFormatError`` and no table is left behind for the failed run. Facts about the data
(gaps, unexpected files, faces not associated with a person) are recorded in both modes.
A broken calibration or a requested camera that does not exist always raises.
"""
from __future__ import annotations

import dataclasses
import os
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from annotate.core.tables import StreamingTableWriter, write_table
from annotate.panoptic import bodies as _bodies
from annotate.panoptic import faces as _faces
from annotate.panoptic.calibration import Calibration, read_calibration_info
from annotate.panoptic.errors import (BAD_VISIBILITY, MISSING_FRAME, UNEXPECTED_FILE, Rejection,
                                      raise_on_errors, rejection_columns)
from annotate.core.results import INGEST_FILES
from annotate.panoptic.layout import BODY_FILE, FACE_FILE, SequenceLayout, list_frames
from annotate.panoptic.tables import SOURCE_PUBLISHED
from annotate.panoptic.frame_offsets import parse_frame_offsets
from annotate.panoptic.media_frames import (MediaListing, NoFramesError, list_media, media_rejections,
                                            no_frames_message, select_present)

TABLE_FILES = INGEST_FILES            # the results layout's names (annotate.core.results)
FRAMES_FROM_FILES = "3d files"
FRAMES_FROM_MEDIA = "media"


# --- summary -----------------------------------------------------------------------------------
@dataclass
class IngestSummary:
    """What one ``ingest_sequence`` call did.

    frame_range: (first, last) selected frame, None when no frame was selected.
    frames_selected: how many frame numbers were selected.
    face_files / body_files: how many files were read from each folder.
    rows: rows written per table name. rejections_by_reason: reason -> count.
    negative_scores: face landmark scores that were negative in the files (stored as 0).
    has_faces / has_bodies: whether ``hdFace3d/`` / ``hdPose3d_stage1_coco19/`` exist.
    frames_from: ``"3d files"`` or ``"media"`` (a capture without 3D files).
    media_cameras: with frames from the media, how many cameras have images / a video.
    without_media: with frames from the media, the cameras that have neither.
    frame_offsets: cameras whose pictures are not in step (``ingest.frame_offsets``) -> offset.
    paths: table name -> written file.
    """

    sequence: str
    out_dir: Path
    cameras: int = 0
    frame_range: tuple[int, int] | None = None
    frame_step: int = 1
    frames_selected: int = 0
    face_files: int = 0
    body_files: int = 0
    has_faces: bool = False
    has_bodies: bool = False
    frames_from: str = FRAMES_FROM_FILES
    media_cameras: dict[str, int] = field(default_factory=dict)
    without_media: list[str] = field(default_factory=list)
    frame_offsets: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    rejections_by_reason: dict[str, int] = field(default_factory=dict)
    negative_scores: int = 0
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def rejections(self) -> int:
        return sum(self.rejections_by_reason.values())

    def __str__(self) -> str:
        lines = [f"ingest {self.sequence} -> {self.out_dir}",
                 f"  cameras:    {self.cameras}"]
        if self.frame_range is None:
            lines.append("  frames:     none selected")
        elif self.frames_from == FRAMES_FROM_MEDIA:
            lines.append(f"  frames:     {self.frame_range[0]}..{self.frame_range[1]} step {self.frame_step} "
                         f"({self.frames_selected} selected from the media: "
                         f"{self.media_cameras.get('images', 0)} cameras with hdImgs/, "
                         f"{self.media_cameras.get('video', 0)} with a video)")
            if self.without_media:
                lines.append(f"  no media:   {len(self.without_media)} camera(s) give no views: "
                             + ", ".join(self.without_media))
        else:
            lines.append(f"  frames:     {self.frame_range[0]}..{self.frame_range[1]} step {self.frame_step} "
                         f"({self.frames_selected} selected; {self.face_files} face files, "
                         f"{self.body_files} body files read)")
        if self.frame_offsets:
            lines.append("  offsets:    picture = frame + "
                         + ", ".join(f"{v} ({k})" for k, v in self.frame_offsets.items()))
        if not self.has_faces:
            lines.append("  hdFace3d/:  absent (no published faces; triangulate them)")
        if not self.has_bodies:
            lines.append("  hdPose3d_stage1_coco19/: absent")
        lines.append(f"  faces3d:    {self.rows.get('faces3d', 0)} rows"
                     + (f" ({self.negative_scores} negative scores read as 0)" if self.negative_scores else ""))
        lines.append(f"  bodies:     {self.rows.get('bodies', 0)} rows")
        by_reason = ", ".join(f"{k} {v}" for k, v in sorted(self.rejections_by_reason.items()))
        lines.append(f"  rejections: {self.rejections}" + (f" ({by_reason})" if by_reason else ""))
        return "\n".join(lines)


# --- frame selection ---------------------------------------------------------------------------
def select_frames(present: np.ndarray, frame_start: int | None, frame_end: int | None,
                  frame_step: int) -> np.ndarray:
    """(F,) int64 selected frame numbers: ``frame_start + k * frame_step`` (both ends
    inclusive) inside ``[present.min(), present.max()]``. ``present``: frame numbers found."""
    if isinstance(frame_step, bool) or not isinstance(frame_step, (int, np.integer)) or frame_step < 1:
        raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}")
    if frame_start is not None and frame_end is not None and frame_start > frame_end:
        raise ValueError(f"frame_start {frame_start} is after frame_end {frame_end}")
    if len(present) == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(present.min()), int(present.max())
    anchor = lo if frame_start is None else int(frame_start)
    last = hi if frame_end is None else min(int(frame_end), hi)
    first = anchor if anchor >= lo else anchor + -(-(lo - anchor) // frame_step) * frame_step
    if first > last:
        return np.zeros(0, dtype=np.int64)
    return np.arange(first, last + 1, frame_step, dtype=np.int64)


def gap_frames(selected: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Selected frames inside ``present``'s first..last span that are not present."""
    if len(present) == 0:
        return np.zeros(0, dtype=np.int64)
    inside = selected[(selected >= present[0]) & (selected <= present[-1])]
    return inside[~np.isin(inside, present)]


# --- table columns -----------------------------------------------------------------------------
def camera_columns(calib: Calibration, sequence: str, offsets: dict[str, int] | None = None) -> dict[str, object]:
    """Columns of the ``cameras`` table for ``calib`` (C rows); offsets: camera -> picture
    number of frame 0 (absent: 0)."""
    rig = calib.rig
    c = len(rig)
    offsets = offsets or {}
    return {
        "sequence": [sequence] * c,
        "camera": list(rig.names),
        "camera_index": calib.camera_index.astype(np.int16),
        "type": [calib.camera_type] * c,
        "panel": calib.panels.astype(np.int16),
        "node": calib.nodes.astype(np.int16),
        "width": rig.image_size[:, 0].astype(np.int32),
        "height": rig.image_size[:, 1].astype(np.int32),
        "K": rig.K.reshape(c, 9),
        "dist": rig.dist,
        "R_cam_world": rig.R_cam_world.reshape(c, 9),
        "t_cam_world": rig.t_cam_world,
        "centre_world": rig.centres_world,
        "frame_offset": np.array([offsets.get(n, 0) for n in rig.names], dtype=np.int32),
    }


def frame_columns(sequence: str, frames: np.ndarray, face_file: np.ndarray, body_file: np.ndarray,
                  cameras_with_media: np.ndarray | None) -> dict[str, object]:
    """Columns of the ``frames`` table (F rows); cameras_with_media None: frames from 3D files."""
    n = len(frames)
    return {
        "sequence": [sequence] * n,
        "frame": np.asarray(frames, dtype=np.int32),
        "face_file": np.asarray(face_file, dtype=bool),
        "body_file": np.asarray(body_file, dtype=bool),
        "cameras_with_media": [None] * n if cameras_with_media is None else np.asarray(cameras_with_media, np.int16),
    }


def face_columns(sequence: str, rows: Sequence[tuple[int, _faces.FacePerson]],
                 source: str = SOURCE_PUBLISHED) -> dict[str, object]:
    """Columns of the ``faces3d`` table; rows: (frame, person record) pairs."""
    n = len(rows)
    return {
        "sequence": [sequence] * n,
        "frame": np.array([f for f, _ in rows], dtype=np.int32),
        "person": np.array([p.id for _, p in rows], dtype=np.int32),
        "landmarks_world": np.array([p.landmarks for _, p in rows], dtype=np.float32).reshape(n, 210),
        "score": np.array([p.score for _, p in rows], dtype=np.float32).reshape(n, 70),
        "repro_error": np.array([p.repro_error for _, p in rows], dtype=np.float32).reshape(n, 70),
        "visibility": visibility_column([p for _, p in rows]),
        "source": [source] * n,
    }


def visibility_column(people: Sequence[_faces.FacePerson]) -> pa.Array | list:
    """The ``visibility`` column (list<list<int16>>) of ``people``: built from the readers'
    flattened arrays when every person has them, else the lists themselves (converted later)."""
    arrays = [p.visibility_arrays for p in people]
    if not people or any(a is None for a in arrays):
        return [p.visibility for p in people]
    counts = np.concatenate([a[0] for a in arrays])
    cameras = np.concatenate([a[1] for a in arrays]).astype(np.int16)   # the reader kept them in 0..32767
    inner_offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=inner_offsets[1:])
    outer_offsets = np.zeros(len(people) + 1, dtype=np.int32)
    np.cumsum([len(a[0]) for a in arrays], out=outer_offsets[1:])
    inner = pa.ListArray.from_arrays(pa.array(inner_offsets), pa.array(cameras, type=pa.int16()))
    return pa.ListArray.from_arrays(pa.array(outer_offsets), inner)


def body_columns(sequence: str, rows: Sequence[tuple[int, float, _bodies.BodyPerson]]) -> dict[str, object]:
    """Columns of the ``bodies`` table; rows: (frame, univ_time ms, body record) triples."""
    n = len(rows)
    return {
        "sequence": [sequence] * n,
        "frame": np.array([f for f, _, _ in rows], dtype=np.int32),
        "person": np.array([b.id for _, _, b in rows], dtype=np.int32),
        "univ_time": np.array([t for _, t, _ in rows], dtype=np.float64),
        "joints_world": np.array([b.joints for _, _, b in rows], dtype=np.float32).reshape(n, 57),
        "joint_confidence": np.array([b.confidence for _, _, b in rows], dtype=np.float32).reshape(n, 19),
    }


# --- ingest ------------------------------------------------------------------------------------
def _read_calibration(layout: SequenceLayout, cameras) -> Calibration:
    if isinstance(cameras, str):
        if cameras != "hd":
            raise ValueError(f"cameras must be 'hd' or a list of HD camera names, got {cameras!r}")
        return read_calibration_info(layout.calibration, "hd")
    return read_calibration_info(layout.calibration, "hd", list(cameras))


def missing_hd_cameras(names: tuple[str, ...], top: int) -> list[str]:
    """Panoptic HD camera names 00_00..00_<top> that ``names`` (a calibration's) lacks."""
    have = set(names)
    return [f"00_{i:02d}" for i in range(top + 1) if f"00_{i:02d}" not in have]


def _check_visibility(frame: _faces.FaceFrame, n_cameras: int, stage: str,
                      sequence: str, names: tuple[str, ...] = ()) -> _faces.FaceFrame:
    """Reject people whose visibility names a camera index >= ``n_cameras`` (HD cameras in
    file), naming the HD cameras the calibration lacks (``names``: its HD camera names)."""
    kept, rejected = [], []
    for p in frame.people:
        top = p.max_camera_index
        if top >= n_cameras:
            lacks = missing_hd_cameras(names, top) if names else []
            cause = (f"; the calibration lacks HD camera{'s' if len(lacks) > 1 else ''} {', '.join(lacks[:5])} "
                     f"(face70 visibility lists number Panoptic's HD cameras 00_00, 00_01, ...)") if lacks else ""
            rejected.append(Rejection(sequence, stage, frame.frame, p.id, None, frame.file, BAD_VISIBILITY,
                                      f"visibility names camera index {top}, but the calibration has "
                                      f"{n_cameras} HD cameras (indices 0..{n_cameras - 1}){cause}"))
        else:
            kept.append(p)
    if not rejected:
        return frame
    return dataclasses.replace(frame, people=kept, rejections=frame.rejections + rejected)


class _Ingest:
    """State of one ingest run: layout, listings, counters; one method per piece of work."""

    def __init__(self, layout: SequenceLayout, calib: Calibration, on_error: str):
        self.layout, self.calib, self.on_error = layout, calib, on_error
        self.seq = layout.sequence
        self.faces = list_frames(layout.face_dir, FACE_FILE)
        self.bodies = list_frames(layout.body_dir, BODY_FILE)
        self._face_set, self._body_set = set(self.faces.frames.tolist()), set(self.bodies.frames.tolist())
        self._face_dir, self._body_dir = str(layout.face_dir), str(layout.body_dir)
        self.reasons: Counter[str] = Counter()
        self.face_files = self.body_files = self.negative_scores = 0

    def _portable(self, rejections: Iterable[Rejection]) -> list[Rejection]:
        out = [dataclasses.replace(r, file=self.layout.relative(r.file)) for r in rejections]
        if self.on_error == "raise":
            raise_on_errors(out)
        self.reasons.update(r.reason for r in out)
        return out

    def listing_rejections(self, selected: np.ndarray) -> list[Rejection]:
        """Unexpected folder entries and gaps, for both folders."""
        out = []
        for listing, stage, pattern, path_of in (
                (self.faces, _faces.STAGE, FACE_FILE, self.layout.face_file),
                (self.bodies, _bodies.STAGE, BODY_FILE, self.layout.body_file)):
            for entry in listing.unexpected:
                out.append(Rejection(self.seq, stage, None, None, None, str(entry), UNEXPECTED_FILE,
                                     f"not a file named {pattern.prefix}%08d{pattern.suffix}"))
            for f in gap_frames(selected, listing.frames):
                out.append(Rejection(self.seq, stage, int(f), None, None, str(path_of(int(f))), MISSING_FRAME,
                                     f"frame {int(f)} is absent while frames {int(listing.frames[0])}.."
                                     f"{int(listing.frames[-1])} are present"))
        return self._portable(out)

    def read_chunk(self, frames: np.ndarray):
        """Face rows, body rows and rejections for the frames of one chunk."""
        face_rows, body_rows, rejections = [], [], []
        for f in frames.tolist():
            if f in self._face_set:
                # the string of layout.face_file(f): no Path objects per file
                ff = _check_visibility(
                    _faces.read_face_file(os.path.join(self._face_dir, FACE_FILE.name(f)), f, self.seq),
                    self.calib.type_count, _faces.STAGE, self.seq, self.calib.type_names)
                self.face_files += 1
                self.negative_scores += sum(p.negative_scores for p in ff.people)
                if ff.rejections:
                    rejections += self._portable(ff.rejections)
                face_rows += [(f, p) for p in ff.people]
            if f in self._body_set:
                bf = _bodies.read_body_file(os.path.join(self._body_dir, BODY_FILE.name(f)), f, self.seq)
                self.body_files += 1
                if bf.rejections:
                    rejections += self._portable(bf.rejections)
                body_rows += [(f, bf.univ_time, b) for b in bf.bodies]
        return face_rows, body_rows, rejections


def read_face_frame_checked(path: Path, sequence: str, n_hd_cameras: int) -> _faces.FaceFrame:
    """``read_face_frame`` plus the check that visibility indices are HD cameras of the rig."""
    return _check_visibility(_faces.read_face_frame(path, sequence), n_hd_cameras, _faces.STAGE, sequence)


def _chunks(frames: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(frames), size):
        yield frames[i:i + size]


def _select(run: _Ingest, frame_start: int | None, frame_end: int | None, frame_step: int,
            count_video_frames, offsets: dict[str, int]) -> tuple[np.ndarray, MediaListing | None]:
    """(F,) selected frames, and the media listing when they come from the media (no 3D files)."""
    present = np.union1d(run.faces.frames, run.bodies.frames)
    if len(present):
        selected = select_frames(present, frame_start, frame_end, frame_step)
        if not len(selected):
            raise NoFramesError(
                f"{run.layout.directory}: no frame selected: the {run.faces.folder.name}/ and "
                f"{run.bodies.folder.name}/ files hold frames {int(present[0])}..{int(present[-1])}, but "
                f"frame_start={frame_start}, frame_end={frame_end}, frame_step={frame_step} select none of "
                f"them; change the ingest frame settings")
        return selected, None
    media = list_media(run.layout, run.calib.names, run.calib.type_names or run.calib.names, count_video_frames,
                       offsets)
    selected = select_present(select_frames(media.present, frame_start, frame_end, frame_step), media.present)
    if not len(selected):
        raise NoFramesError(no_frames_message(run.layout, media, (run.faces, run.bodies), frame_start, frame_end,
                                              frame_step))
    return selected, media


def _frames_table(run: _Ingest, selected: np.ndarray, media: MediaListing | None) -> dict[str, object]:
    """The ``frames`` columns: selected frames with a 3D file, or with media in some camera."""
    if media is None:
        frames = selected[np.isin(selected, run.faces.frames) | np.isin(selected, run.bodies.frames)]
        return frame_columns(run.seq, frames, np.isin(frames, run.faces.frames), np.isin(frames, run.bodies.frames),
                             None)
    none = np.zeros(len(selected), dtype=bool)
    return frame_columns(run.seq, selected, none, none, media.cameras_with(selected))


def ingest_sequence(root: str | Path, sequence: str, out_dir: str | Path, cameras="hd",
                    frame_start: int | None = None, frame_end: int | None = None,
                    frame_step: int = 1, chunk_frames: int = 500,
                    on_error: str = "reject", count_video_frames=None, frame_offsets=None) -> IngestSummary:
    """Ingest ``<root>/<sequence>/`` into ``out_dir`` (see the module docstring).

    cameras: ``"hd"`` (all HD cameras) or a list of HD camera names.
    frame_start, frame_end: inclusive frame numbers; frame_step: take every k-th number.
    chunk_frames: frames read per streamed chunk. on_error: ``"reject"`` or ``"raise"``.
    count_video_frames: ``(path) -> int`` frames of a video, for a capture whose frames come
    from its media (``annotate.media.video.count_video_frames``; None: images only).
    frame_offsets: this sequence's ``ingest.frame_offsets``, camera -> picture number of
    frame 0 (``annotate.panoptic.frame_offsets``; None: every camera in step).
    Raises ``NoFramesError`` when no frame is selected.
    """
    if on_error not in ("reject", "raise"):
        raise ValueError(f"on_error must be 'reject' or 'raise', got {on_error!r}")
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    layout = SequenceLayout(root, sequence)
    if not layout.directory.is_dir():
        raise FileNotFoundError(f"sequence directory {layout.directory} does not exist")
    calib = _read_calibration(layout, cameras)
    offsets = parse_frame_offsets(frame_offsets, calib.rig.names)
    run = _Ingest(layout, calib, on_error)
    selected, media = _select(run, frame_start, frame_end, frame_step, count_video_frames, offsets)
    out_dir = Path(out_dir)
    paths = {name: out_dir / file for name, file in TABLE_FILES.items()}
    with ExitStack() as stack:
        writers = {name: stack.enter_context(StreamingTableWriter(paths[name], name))
                   for name in ("faces3d", "bodies", "rejections")}
        _write_rejections(writers["rejections"], run.listing_rejections(selected))
        if media is not None:
            _write_rejections(writers["rejections"], run._portable(media_rejections(media, selected, sequence)))
        bar = stack.enter_context(tqdm(total=len(selected), desc=f"ingest {sequence}", unit="frame",
                                       disable=None))
        for chunk in _chunks(selected, chunk_frames):
            face_rows, body_rows, rejections = run.read_chunk(chunk)
            if face_rows:
                writers["faces3d"].write(face_columns(sequence, face_rows))
            if body_rows:
                writers["bodies"].write(body_columns(sequence, body_rows))
            _write_rejections(writers["rejections"], rejections)
            bar.update(len(chunk))
        rows = {name: w.rows for name, w in writers.items()}
    frames = _frames_table(run, selected, media)
    write_table(frames, paths["frames"], "frames")
    write_table(camera_columns(calib, sequence, offsets), paths["cameras"], "cameras")
    rows["cameras"], rows["frames"] = len(calib.rig), len(frames["frame"])
    return IngestSummary(
        sequence=sequence, out_dir=out_dir, cameras=len(calib.rig),
        frame_range=(int(selected[0]), int(selected[-1])) if len(selected) else None,
        frame_step=frame_step, frames_selected=len(selected),
        face_files=run.face_files, body_files=run.body_files,
        has_faces=run.faces.exists, has_bodies=run.bodies.exists, rows=rows,
        frames_from=FRAMES_FROM_FILES if media is None else FRAMES_FROM_MEDIA,
        media_cameras={} if media is None else {
            "images": sum(len(c.images.frames) > 0 for c in media.cameras),
            "video": sum(c.video_frames > 0 for c in media.cameras)},
        without_media=[] if media is None else media.without_media,
        frame_offsets={k: v for k, v in offsets.items() if v},
        rejections_by_reason=dict(run.reasons), negative_scores=run.negative_scores, paths=paths)


def _write_rejections(writer: StreamingTableWriter, rejections: list[Rejection]) -> None:
    if rejections:
        writer.write(rejection_columns(rejections))
