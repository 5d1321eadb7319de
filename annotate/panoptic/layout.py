"""Where files live in a Panoptic sequence directory, and how they are opened and written.

A sequence directory ``<root>/<seq>/`` holds (names exactly as CMU Panoptic publishes them)::

    calibration_<seq>.json
    hdFace3d/faceRecon3D_hd%08d.json            3D face landmarks per HD frame
    hdPose3d_stage1_coco19/body3DScene_%08d.json 3D body skeletons per HD frame
    hdVideos/hd_00_XX.mp4                        one video per HD camera 00_XX
    hdImgs/00_XX/00_XX_%08d.jpg                  extracted frames, same frame numbers

Frame-numbered names are parsed strictly (exactly eight digits between a fixed prefix and
suffix). Listing a folder returns the frame numbers found *and* every entry whose name does
not fit, so callers can report them instead of ignoring them.
"""
from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from annotate.core.atomic import write_json_atomic
from annotate.panoptic.errors import INVALID_JSON, UNREADABLE_FILE, PanopticFormatError

FACE_DIR = "hdFace3d"
BODY_DIR = "hdPose3d_stage1_coco19"
VIDEO_DIR = "hdVideos"
IMAGE_DIR = "hdImgs"

_CAMERA_NAME = re.compile(r"\d{2}_\d{2}")


def check_camera_name(camera: str) -> str:
    """Return ``camera`` if it is a Panoptic camera name ``PP_NN`` (panel, node), else raise."""
    if not isinstance(camera, str) or not _CAMERA_NAME.fullmatch(camera):
        raise ValueError(f"camera name {camera!r} is not of the form 'PP_NN' (e.g. '00_03')")
    return camera


@dataclass(frozen=True)
class FramePattern:
    """A frame-numbered file name ``<prefix>%08d<suffix>``."""

    prefix: str
    suffix: str

    def name(self, frame: int) -> str:
        """The file name of ``frame`` (0 <= frame <= 99_999_999)."""
        frame = int(frame)
        if not 0 <= frame <= 99_999_999:
            raise ValueError(f"frame number {frame} does not fit the 8-digit Panoptic file names")
        return f"{self.prefix}{frame:08d}{self.suffix}"

    def parse(self, name: str) -> int | None:
        """The frame number in ``name``, or ``None`` when the name does not fit exactly."""
        m = _frame_regex(self.prefix, self.suffix).fullmatch(name)
        return int(m.group(1)) if m else None


@functools.lru_cache(maxsize=None)
def _frame_regex(prefix: str, suffix: str) -> re.Pattern:
    return re.compile(re.escape(prefix) + r"(\d{8})" + re.escape(suffix))


FACE_FILE = FramePattern("faceRecon3D_hd", ".json")
BODY_FILE = FramePattern("body3DScene_", ".json")


def image_file_pattern(camera: str) -> FramePattern:
    """``00_XX_%08d.jpg`` for HD camera ``00_XX``."""
    return FramePattern(f"{check_camera_name(camera)}_", ".jpg")


_VIDEO_FILE = re.compile(r"hd_(\d{2}_\d{2})\.mp4")


@dataclass(frozen=True)
class SequenceLayout:
    """Paths of one sequence ``<root>/<sequence>/``; nothing is touched on disk."""

    root: Path
    sequence: str

    def __init__(self, root: str | Path, sequence: str):
        if not sequence or "/" in sequence or sequence in (".", ".."):
            raise ValueError(f"sequence name {sequence!r} is not a plain directory name")
        object.__setattr__(self, "root", Path(root))
        object.__setattr__(self, "sequence", sequence)

    @property
    def directory(self) -> Path:
        return self.root / self.sequence

    @property
    def calibration(self) -> Path:
        return self.directory / f"calibration_{self.sequence}.json"

    @property
    def face_dir(self) -> Path:
        return self.directory / FACE_DIR

    @property
    def body_dir(self) -> Path:
        return self.directory / BODY_DIR

    @property
    def video_dir(self) -> Path:
        return self.directory / VIDEO_DIR

    @property
    def image_root(self) -> Path:
        return self.directory / IMAGE_DIR

    def face_file(self, frame: int) -> Path:
        return self.face_dir / FACE_FILE.name(frame)

    def body_file(self, frame: int) -> Path:
        return self.body_dir / BODY_FILE.name(frame)

    def video_file(self, camera: str) -> Path:
        return self.video_dir / f"hd_{check_camera_name(camera)}.mp4"

    def image_dir(self, camera: str) -> Path:
        return self.image_root / check_camera_name(camera)

    def image_file(self, camera: str, frame: int) -> Path:
        return self.image_dir(camera) / image_file_pattern(camera).name(frame)

    def relative(self, path: str | Path) -> str:
        """``path`` relative to ``root`` in POSIX form when inside it (portable in tables)."""
        p = Path(path)
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()


@dataclass(frozen=True)
class FrameListing:
    """What a frame folder holds.

    folder: the folder listed. exists: whether it exists (an absent folder lists nothing).
    frames: (F,) int64 frame numbers found, ascending.
    unexpected: entries whose names do not fit the pattern (files and sub-folders), sorted.
    """

    folder: Path
    exists: bool
    frames: np.ndarray
    unexpected: tuple[Path, ...]


def list_frames(folder: str | Path, pattern: FramePattern) -> FrameListing:
    """List the frame numbers present in ``folder`` for ``pattern``; report any other entry."""
    folder = Path(folder)
    if not folder.is_dir():
        return FrameListing(folder, False, np.zeros(0, dtype=np.int64), ())
    frames, unexpected = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            frame = pattern.parse(entry.name) if entry.is_file() else None
            if frame is None:
                unexpected.append(folder / entry.name)
            else:
                frames.append(frame)
    return FrameListing(folder, True, np.array(sorted(frames), dtype=np.int64), tuple(sorted(unexpected)))


def list_video_cameras(layout: SequenceLayout) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    """Camera names with a video in ``hdVideos/`` (sorted), and entries that do not fit."""
    if not layout.video_dir.is_dir():
        return (), ()
    cameras, unexpected = [], []
    for entry in sorted(layout.video_dir.iterdir()):
        m = _VIDEO_FILE.fullmatch(entry.name)
        if m and entry.is_file():
            cameras.append(m.group(1))
        else:
            unexpected.append(entry)
    return tuple(cameras), tuple(unexpected)


# --- JSON files ----------------------------------------------------------------------------
# Panoptic's C++ writers print non-finite doubles as ``nan``, ``-nan`` or ``inf``, which is not
# JSON. Such a file is re-read with those bare tokens mapped to NaN / Infinity, so that the
# per-person checks reject only the affected person instead of the whole frame.
_BARE_NON_FINITE = re.compile(r'(?<![\w".])(-?)(nan|inf(?:inity)?)(?![\w"])', re.IGNORECASE)


def _nonfinite_token(m: re.Match) -> str:
    if m.group(2).lower() == "nan":
        return "NaN"
    return "-Infinity" if m.group(1) else "Infinity"


def read_json(path: str | Path):
    """Parse one JSON file; ``PanopticFormatError`` (unreadable_file / invalid_json) naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PanopticFormatError(path, UNREADABLE_FILE, f"cannot read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        first_error = exc
    patched = _BARE_NON_FINITE.sub(_nonfinite_token, text)
    if patched != text:
        try:
            return json.loads(patched)
        except json.JSONDecodeError:
            pass
    if not text.strip():
        raise PanopticFormatError(path, INVALID_JSON, "the file is empty")
    raise PanopticFormatError(
        path, INVALID_JSON,
        f"not valid JSON: {first_error.msg} at line {first_error.lineno} column {first_error.colno}")


def read_json_fast(path: str | os.PathLike) -> tuple[object, bytes] | None:
    """``(document, raw bytes)`` of one JSON file parsed with orjson, or ``None`` when the
    file cannot be read or orjson refuses it.

    The frame readers' fast path (``faces``, ``bodies``). ``None`` sends the caller to
    ``read_json``, which says exactly what is wrong (or accepts what only the standard parser
    accepts: C++ ``nan``/``inf`` tokens, ``NaN``, ``1e400``, lone surrogates). Two things
    orjson does differently on documents it accepts, which callers must guard against:
    an integer beyond 64 bits becomes a float (magnitude >= 2**63) instead of an int, and
    ``true``/``false`` are booleans that ``array('q', ...)`` would take as 1/0 (the raw bytes
    are returned so a caller can check they hold neither).
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        return orjson.loads(data), data
    except (OSError, ValueError):                 # orjson.JSONDecodeError is a ValueError
        return None


def read_frame_file(file: str, fast_reader, exact_reader):
    """One frame file through the fast path when it takes it, else the exact reader.

    fast_reader(document, raw) returns the frame or None (not plainly valid: let the exact
    reader word the problem); exact_reader() reads the file with the standard parser.
    """
    fast = read_json_fast(file)
    if fast is not None:
        out = fast_reader(*fast)
        if out is not None:
            return out
    return exact_reader()


def write_panoptic_json(path: str | Path, document, allow_nan: bool = False) -> Path:
    """Write a Panoptic-format JSON file (compact, as the dataset's own) atomically.

    ``allow_nan=False`` refuses NaN/inf (real Panoptic files never hold them as JSON).
    """
    return write_json_atomic(path, document, indent=None, allow_nan=allow_nan)
