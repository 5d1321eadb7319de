"""Read and write Panoptic ``hdPose3d_stage1_coco19/body3DScene_%08d.json`` (3D skeletons).

The real format::

    {"version": 0.7, "univTime": 47963.356, "fpsType": "hd_29_97",
     "bodies": [{"id": 0, "joints19": [76 floats = 19 x (x, y, z, confidence)]}]}

x, y, z in cm in the world frame; ``univTime`` in milliseconds on the studio's universal
clock. Joint order: 0 neck, 1 nose, 2 body centre, 3-5 left shoulder/elbow/wrist, 6-8 left
hip/knee/ankle, 9-11 right shoulder/elbow/wrist, 12-14 right hip/knee/ankle, 15 left eye,
16 left ear, 17 right eye, 18 right ear.

Confidence -1 marks a joint Panoptic considers invalid. With coordinates (0, 0, 0) it is a
missing joint: read as NaN coordinates and confidence -1 (not a rejection). Real files also
hold confidence -1 with non-zero coordinates (an estimate Panoptic flagged invalid): the
coordinates are kept, the confidence stays -1, so consumers must test ``confidence < 0``
as well as NaN.

Per-body problems (wrong length, NaN/inf, |coordinate| > 1e4 cm, a confidence neither -1
nor in [0, ``SCORE_MAX``], a repeated id, id < 0) come back as rejections; a file that is
not JSON or lacks ``bodies`` is one whole-file rejection. The reader never raises for
content.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from annotate.panoptic.errors import (parse_person_records, plain_person_records, ABSURD_VALUE, BAD_SCORE, MISSING_KEY,
                                      UNSUPPORTED_LAYOUT, WRONG_TYPE,
                                      PanopticFormatError, RecordProblem, Rejection,
                                      numeric_vector)
from annotate.panoptic.layout import BODY_FILE, read_json, read_frame_file, write_panoptic_json

N_JOINTS = 19
ABSURD_CM = 1e4
SCORE_MAX = 1.5
MISSING_CONFIDENCE = -1.0
FILE_VERSION = 0.7
FPS_TYPE = "hd_29_97"
STAGE = "ingest.bodies"
JOINT_NAMES = ("neck", "nose", "body_centre", "l_shoulder", "l_elbow", "l_wrist", "l_hip",
               "l_knee", "l_ankle", "r_shoulder", "r_elbow", "r_wrist", "r_hip", "r_knee",
               "r_ankle", "l_eye", "l_ear", "r_eye", "r_ear")


@dataclass(frozen=True, eq=False)
class BodyPerson:
    """One body in one frame.

    id: Panoptic person id (>= 0).
    joints: (19, 3) float64, cm, world; NaN rows = missing joints.
    confidence: (19,) float64 in [0, SCORE_MAX], or -1 for missing/invalid joints.
    """

    id: int
    joints: np.ndarray
    confidence: np.ndarray

    def as_array(self) -> np.ndarray:
        """(19, 4) ``(x, y, z, confidence)``, the writer's input form."""
        return np.concatenate([self.joints, self.confidence[:, None]], axis=1)


@dataclass(frozen=True, eq=False)
class BodyFrame:
    """The content of one body file. univ_time: ms, NaN when the file has none."""

    file: str
    frame: int | None
    version: float | None = None
    univ_time: float = math.nan
    fps_type: str | None = None
    bodies: list[BodyPerson] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def _parse_body(body: dict, pid: int) -> BodyPerson:
    if "joints19" not in body:
        other = [k for k in body if k.startswith("joints")]
        if other:
            raise RecordProblem(UNSUPPORTED_LAYOUT, f"skeleton stored as {other}, only 'joints19' is supported")
        raise RecordProblem(MISSING_KEY, f"body has no 'joints19' (keys: {sorted(body)})")
    arr = numeric_vector(body["joints19"], 4 * N_JOINTS, "joints19").reshape(N_JOINTS, 4)
    xyz, conf = arr[:, :3].copy(), arr[:, 3].copy()
    far = np.abs(xyz).max()
    if far > ABSURD_CM:
        raise RecordProblem(ABSURD_VALUE, f"a joint coordinate is {far:.6g} cm from the origin "
                                          f"(limit {ABSURD_CM:g} cm)")
    flagged = conf == MISSING_CONFIDENCE
    bad = ~flagged & ((conf < 0) | (conf > SCORE_MAX))
    if bad.any():
        raise RecordProblem(BAD_SCORE, f"joint confidence(s) {conf[bad].tolist()} at joints "
                                       f"{np.flatnonzero(bad).tolist()} are neither -1 nor in [0, {SCORE_MAX}]")
    xyz[flagged & np.all(xyz == 0.0, axis=1)] = np.nan
    return BodyPerson(pid, xyz, conf)


def _header(doc: dict) -> tuple[float | None, float, str | None]:
    """``version``, ``univTime`` (ms, NaN if absent), ``fpsType``; ``RecordProblem`` if mistyped."""
    version, univ, fps = doc.get("version"), doc.get("univTime", math.nan), doc.get("fpsType")
    for key, value in (("version", version), ("univTime", univ)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RecordProblem(WRONG_TYPE, f"{key} {value!r} is not a number")
    if fps is not None and not isinstance(fps, str):
        raise RecordProblem(WRONG_TYPE, f"fpsType {fps!r} is not a string")
    return version, float(univ), fps


def parse_body_document(doc, file: str, frame: int | None = None, sequence: str = "",
                        stage: str = STAGE) -> BodyFrame:
    """Turn an already-parsed body JSON document into bodies and rejections."""
    rejections: list[Rejection] = []

    def reject(reason: str, detail: str, person: int | None = None) -> None:
        rejections.append(Rejection(sequence, stage, frame, person, None, file, reason, detail))

    if not isinstance(doc, dict) or "bodies" not in doc:
        got = f"keys {sorted(doc)}" if isinstance(doc, dict) else f"a {type(doc).__name__}"
        reject(MISSING_KEY, f"no 'bodies' list at the top level (got {got})")
        return BodyFrame(file, frame, rejections=rejections)
    try:
        version, univ_time, fps_type = _header(doc)
    except RecordProblem as p:
        reject(p.reason, p.detail)
        return BodyFrame(file, frame, rejections=rejections)
    if not isinstance(doc["bodies"], list):
        reject(WRONG_TYPE, f"'bodies' is a {type(doc['bodies']).__name__}, expected a list")
        return BodyFrame(file, frame, version, univ_time, fps_type, rejections=rejections)
    kept = parse_person_records(doc["bodies"], "bodies", _parse_body, reject)
    return BodyFrame(file, frame, version, univ_time, fps_type, kept, rejections)


def read_body_frame(path: str | Path, sequence: str = "", stage: str = STAGE) -> BodyFrame:
    """Read one ``body3DScene_%08d.json``; problems come back as ``BodyFrame.rejections``."""
    path = Path(path)
    return read_body_file(str(path), BODY_FILE.parse(path.name), sequence, stage)


def read_body_file(file: str, frame: int | None, sequence: str = "", stage: str = STAGE) -> BodyFrame:
    """``read_body_frame`` of a path given as its normal string (``str(Path(file)) == file``)
    and frame number: no path objects, no name parsing (the ingest loop calls this)."""
    return read_frame_file(file, lambda doc, raw: _fast_body_frame(doc, raw, file, frame, sequence, stage),
                           lambda: _read_body_frame_exact(Path(file), frame, sequence, stage))


def _read_body_frame_exact(path: Path, frame: int | None, sequence: str, stage: str) -> BodyFrame:
    """The reference reader: the standard ``json`` parser and the per-body checks above."""
    try:
        doc = read_json(path)
    except PanopticFormatError as err:
        return BodyFrame(str(path), frame, rejections=[
            Rejection(sequence, stage, frame, None, None, str(path), err.reason, err.detail)])
    return parse_body_document(doc, str(path), frame, sequence, stage)


# --- fast path --------------------------------------------------------------------------------
# As in ``faces``: a file whose header and identified bodies are all plainly valid is parsed
# with orjson and checked per file with numpy; anything else takes the exact reader, so the
# result is always the exact reader's.
_INT64_BOUND = 2.0 ** 63   # orjson reads an integer beyond 64 bits as a float at least this big


def _fast_number(value) -> bool:
    """An int or float (not a bool) below 2**63 in magnitude: a number ``_header`` accepts
    and orjson reads as the standard parser does."""
    return type(value) in (int, float) and abs(value) < _INT64_BOUND


def _fast_body_frame(doc, data: bytes, file: str, frame: int | None, sequence: str,
                     stage: str) -> BodyFrame | None:
    """The ``BodyFrame`` of an orjson-parsed file whose identified bodies are all valid
    (bodies with id < 0 are rejected as unidentified, as the exact reader does); else None."""
    if type(doc) is not dict or type(doc.get("bodies")) is not list or b"true" in data or b"false" in data:
        return None
    version, fps = doc.get("version"), doc.get("fpsType")
    univ = doc.get("univTime", math.nan)          # present, it must be a number (null is not)
    if not ((version is None or _fast_number(version)) and (univ is math.nan or _fast_number(univ))
            and (fps is None or type(fps) is str)):
        return None
    rejections, kept, joints = [], [], []
    records = plain_person_records(doc["bodies"], "bodies", lambda reason, detail, pid: rejections.append(
        Rejection(sequence, stage, frame, pid, None, file, reason, detail)))
    if records is None:
        return None
    for pid, body in records:
        values = body.get("joints19")
        if type(values) is not list:
            return None
        kept.append(pid)
        joints.append(values)
    out = BodyFrame(file, frame, version, float(univ), fps, [], rejections)
    if not kept:
        return out
    # One np.array over all bodies infers what numeric_vector infers per body (kind i or f):
    # the file holds no booleans, and strings, nulls, objects or nesting give another kind,
    # an object array or a ragged error.
    try:
        arr = np.array(joints)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.dtype.kind not in "if" or arr.shape != (len(kept), 4 * N_JOINTS):
        return None
    arr = arr.astype(np.float64, copy=False).reshape(len(kept), N_JOINTS, 4)
    xyz, conf = arr[..., :3].copy(), arr[..., 3].copy()
    flagged = conf == MISSING_CONFIDENCE
    # orjson yields no NaN/inf, and these bounds keep out 64-bit-overflowing integers too.
    if not (np.abs(xyz).max() <= ABSURD_CM and (flagged | ((conf >= 0) & (conf <= SCORE_MAX))).all()):
        return None
    xyz[flagged & np.all(xyz == 0.0, axis=2)] = np.nan
    out.bodies.extend(BodyPerson(pid, xyz[k], conf[k]) for k, pid in enumerate(kept))
    return out


def _joints_json(pid: int, joints: np.ndarray) -> list[float]:
    arr = np.array(joints, dtype=np.float64)
    if arr.shape != (N_JOINTS, 4):
        raise ValueError(f"body {pid}: joints must have shape ({N_JOINTS}, 4), got {arr.shape}")
    missing = ~np.all(np.isfinite(arr[:, :3]), axis=1)
    conf = arr[:, 3]
    if np.any(missing & ~(np.isnan(conf) | (conf == MISSING_CONFIDENCE))):
        raise ValueError(f"body {pid}: joints {np.flatnonzero(missing).tolist()} have NaN coordinates; "
                         f"a missing joint needs confidence -1 (or NaN)")
    arr[missing] = (0.0, 0.0, 0.0, MISSING_CONFIDENCE)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"body {pid}: confidences must be finite")
    return arr.reshape(-1).tolist()


def body_frame_document(bodies: Sequence[tuple[int, np.ndarray]], univ_time: float = 0.0,
                        version: float = FILE_VERSION, fps_type: str = FPS_TYPE) -> dict:
    """The JSON document of one body file; NaN joints are written as (0, 0, 0, -1)."""
    return {"version": version, "univTime": float(univ_time), "fpsType": fps_type,
            "bodies": [{"id": int(pid), "joints19": _joints_json(int(pid), joints)}
                       for pid, joints in bodies]}


def write_body_frame(path: str | Path, bodies: Sequence[tuple[int, np.ndarray]],
                     univ_time: float = 0.0, version: float = FILE_VERSION,
                     fps_type: str = FPS_TYPE) -> Path:
    """Write one ``body3DScene_%08d.json`` in the real format, atomically, full precision.

    bodies: ``(id, joints)`` pairs, joints (19, 4) ``(x, y, z, confidence)`` in cm, world;
    a missing joint is NaN coordinates with confidence -1 (or NaN). univ_time: ms.
    """
    return write_panoptic_json(path, body_frame_document(bodies, univ_time, version, fps_type))
