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

from annotate.panoptic.errors import (parse_person_records, ABSURD_VALUE, BAD_SCORE, MISSING_KEY,
                                      UNSUPPORTED_LAYOUT, WRONG_TYPE,
                                      PanopticFormatError, RecordProblem, Rejection,
                                      numeric_vector)
from annotate.panoptic.layout import BODY_FILE, read_json, write_json_atomic

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
    frame = BODY_FILE.parse(path.name)
    try:
        doc = read_json(path)
    except PanopticFormatError as err:
        return BodyFrame(str(path), frame, rejections=[
            Rejection(sequence, stage, frame, None, None, str(path), err.reason, err.detail)])
    return parse_body_document(doc, str(path), frame, sequence, stage)


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
    return write_json_atomic(path, body_frame_document(bodies, univ_time, version, fps_type))
