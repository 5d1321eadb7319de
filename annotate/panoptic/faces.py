"""Read and write Panoptic ``hdFace3d/faceRecon3D_hd%08d.json`` (3D face landmarks per frame).

The real format (Panoptic's ``SaveFaceReconResult_json``)::

    {"version": 0.5,
     "people": [{"id": 3,
                 "face70": {"landmarks": [210 floats],      # 70 x (x, y, z), cm, world
                            "averageScore": [70 floats],    # mean 2D detection score
                            "averageReproError": [70 floats],  # mean reprojection error, px
                            "visibility": [70 lists of HD camera indices]}}]}

Points 0-67 follow iBUG 68, 68 and 69 are the pupils. Panoptic marks a landmark it did not
reconstruct with score 0 and reprojection error 1e5 (its defaults); such a landmark whose
coordinates are exactly (0, 0, 0) is read as NaN coordinates. Some files mark missing points
with a *negative* score instead: such scores are read as 0 (missing) and counted in
``FacePerson.negative_scores``; the coordinates are kept unless they are (0, 0, 0).

A person with a problem (a wrong length, NaN/inf, a coordinate beyond 1e4 cm, a score
outside [0, ``SCORE_MAX``], a negative reprojection error, a malformed visibility list, an id
used twice in the frame, a ``face_coco`` face instead of ``face70``) is returned as a
``Rejection``, as is a person with id < 0 (Panoptic's "not associated with anyone"). A file
that is not JSON or has no ``people`` list is one whole-file rejection. The reader never
raises for content; ``errors.raise_on_errors`` makes any content defect an exception.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Sequence

import numpy as np

from annotate.head.head_frame import NUM_LANDMARKS
from annotate.panoptic.errors import (parse_person_records, plain_person_records, ABSURD_VALUE, BAD_SCORE, BAD_VISIBILITY, MISSING_KEY, UNSUPPORTED_LAYOUT,
                                      WRONG_LENGTH, WRONG_TYPE, PanopticFormatError,
                                      RecordProblem, Rejection, numeric_vector, require_key)
from annotate.panoptic.layout import FACE_FILE, read_json, read_frame_file, write_panoptic_json

N_LANDMARKS = NUM_LANDMARKS          # Panoptic's face70
ABSURD_CM = 1e4          # |coordinate| beyond 100 m is not a person in a 5.5 m dome
SCORE_MAX = 1.5          # detector heatmap peaks overshoot 1 slightly; far beyond is corrupt
MAX_CAMERA_INDEX = 32767  # visibility indices are stored as int16
FILE_VERSION = 0.5        # what Panoptic's writer puts in ``version``
STAGE = "ingest.faces"


@dataclass(frozen=True, eq=False)
class FacePerson:
    """One person's face in one frame.

    id: Panoptic person id (>= 0).
    landmarks: (70, 3) float64, cm, world frame; NaN rows = not reconstructed.
    score: (70,) float64 mean detection score in [0, SCORE_MAX]; 0 = not detected.
    repro_error: (70,) float64 mean reprojection error in pixels (1e5 = Panoptic's
        "not reconstructed").
    visibility: 70 lists of HD camera indices (position in the name-sorted HD cameras)
        that saw each landmark.
    negative_scores: how many scores were negative in the file (read as 0).
    visibility_arrays: the same lists as ``(counts (70,) int64, cameras (K,) int64)``
        (``visibility`` flattened), set by the reader's fast path; None otherwise.
    """

    id: int
    landmarks: np.ndarray
    score: np.ndarray
    repro_error: np.ndarray
    visibility: list[list[int]]
    negative_scores: int = 0
    visibility_arrays: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def max_camera_index(self) -> int:
        """The largest camera index in ``visibility``, -1 when every list is empty."""
        if self.visibility_arrays is not None:
            cameras = self.visibility_arrays[1]
            return int(cameras.max()) if len(cameras) else -1
        return max(chain.from_iterable(self.visibility), default=-1)


@dataclass(frozen=True, eq=False)
class FaceFrame:
    """The content of one face file: accepted people and the rejections, in file order.

    frame: the frame number parsed from the file name (None when the name does not fit).
    """

    file: str
    frame: int | None
    people: list[FacePerson] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def _visibility(value) -> list[list[int]]:
    """70 lists of camera indices (ints in [0, MAX_CAMERA_INDEX]), else ``RecordProblem``."""
    if not isinstance(value, list):
        raise RecordProblem(WRONG_TYPE, f"visibility is a {type(value).__name__}, expected a list")
    if len(value) != N_LANDMARKS:
        raise RecordProblem(WRONG_LENGTH, f"visibility has {len(value)} entries, expected {N_LANDMARKS}")
    lists = all(type(cams) is list for cams in value)
    flat = list(chain.from_iterable(value)) if lists else []
    if not lists or not {type(c) for c in flat} <= {int}:
        i = next(i for i, cams in enumerate(value) if type(cams) is not list
                 or any(type(c) is not int for c in cams))
        raise RecordProblem(WRONG_TYPE, f"visibility[{i}] = {value[i]!r} is not a list of integers")
    if flat and (min(flat) < 0 or max(flat) > MAX_CAMERA_INDEX):
        i = next(i for i, cams in enumerate(value) if any(c < 0 or c > MAX_CAMERA_INDEX for c in cams))
        raise RecordProblem(BAD_VISIBILITY, f"visibility[{i}] = {value[i]!r} holds an index outside "
                                            f"[0, {MAX_CAMERA_INDEX}]")
    return value


def _face70(person: dict) -> dict:
    if "face70" not in person:
        other = [k for k in person if k.startswith("face")]
        if other:
            raise RecordProblem(UNSUPPORTED_LAYOUT, f"face stored as {other}, only 'face70' is supported")
        raise RecordProblem(MISSING_KEY, f"person has no 'face70' (keys: {sorted(person)})")
    face = person["face70"]
    if not isinstance(face, dict):
        raise RecordProblem(WRONG_TYPE, f"face70 is a {type(face).__name__}, expected an object")
    return face


def _parse_person(person: dict, pid: int) -> FacePerson:
    """Validate one ``people[]`` entry whose id is ``pid`` (>= 0)."""
    face = _face70(person)
    flat = numeric_vector(require_key(face, "landmarks", "face70"), 3 * N_LANDMARKS, "landmarks")
    landmarks = flat.reshape(N_LANDMARKS, 3)
    far = np.abs(landmarks).max()
    if far > ABSURD_CM:
        raise RecordProblem(ABSURD_VALUE, f"a landmark coordinate is {far:.6g} cm from the origin "
                                          f"(limit {ABSURD_CM:g} cm)")
    score = numeric_vector(require_key(face, "averageScore", "face70"), N_LANDMARKS, "averageScore")
    if score.max() > SCORE_MAX:
        raise RecordProblem(BAD_SCORE, f"averageScore max {score.max():.6g} exceeds {SCORE_MAX}")
    repro = numeric_vector(require_key(face, "averageReproError", "face70"), N_LANDMARKS,
                           "averageReproError")
    if repro.min() < 0:
        raise RecordProblem(ABSURD_VALUE, f"averageReproError has a negative value {repro.min():.6g}")
    visibility = _visibility(require_key(face, "visibility", "face70"))
    negative = score < 0
    score = np.where(negative, 0.0, score)
    missing = (score <= 0) & np.all(landmarks == 0.0, axis=1)
    landmarks[missing] = np.nan
    return FacePerson(pid, landmarks, score, repro, visibility, int(negative.sum()))


def parse_face_document(doc, file: str, frame: int | None = None, sequence: str = "",
                        stage: str = STAGE) -> FaceFrame:
    """Turn an already-parsed face JSON document into people and rejections."""
    out = FaceFrame(file, frame)

    def reject(reason: str, detail: str, person: int | None = None) -> None:
        out.rejections.append(Rejection(sequence, stage, frame, person, None, file, reason, detail))

    if not isinstance(doc, dict) or "people" not in doc:
        got = f"keys {sorted(doc)}" if isinstance(doc, dict) else f"a {type(doc).__name__}"
        reject(MISSING_KEY, f"no 'people' list at the top level (got {got})")
        return out
    if not isinstance(doc["people"], list):
        reject(WRONG_TYPE, f"'people' is a {type(doc['people']).__name__}, expected a list")
        return out
    out.people.extend(parse_person_records(doc["people"], "people", _parse_person, reject))
    return out


def read_face_frame(path: str | Path, sequence: str = "", stage: str = STAGE) -> FaceFrame:
    """Read one ``faceRecon3D_hd%08d.json``; problems come back as ``FaceFrame.rejections``.

    An unreadable or non-JSON file gives one rejection with ``person=None``.
    """
    path = Path(path)
    return read_face_file(str(path), FACE_FILE.parse(path.name), sequence, stage)


def read_face_file(file: str, frame: int | None, sequence: str = "", stage: str = STAGE) -> FaceFrame:
    """``read_face_frame`` of a path given as its normal string (``str(Path(file)) == file``)
    and frame number: no path objects, no name parsing (the ingest loop calls this)."""
    return read_frame_file(file, lambda doc, raw: _fast_face_frame(doc, raw, file, frame, sequence, stage),
                           lambda: _read_face_frame_exact(Path(file), frame, sequence, stage))


def _read_face_frame_exact(path: Path, frame: int | None, sequence: str, stage: str) -> FaceFrame:
    """The reference reader: the standard ``json`` parser and the per-person checks above."""
    try:
        doc = read_json(path)
    except PanopticFormatError as err:
        return FaceFrame(str(path), frame, [], [
            Rejection(sequence, stage, frame, None, None, str(path), err.reason, err.detail)])
    return parse_face_document(doc, str(path), frame, sequence, stage)


# --- fast path --------------------------------------------------------------------------------
# A file whose identified people are all plainly valid is parsed with orjson and checked with a
# few numpy operations per file. Anything else (any defect, a repeated id, a value orjson reads
# differently from the standard parser) sends the whole file to ``_read_face_frame_exact``,
# which words every rejection: the fast path only decides *that* a file is clean, never *why*
# one is not, so its output is the exact reader's output.
_INT64_BOUND = 2.0 ** 63   # orjson reads an integer beyond 64 bits as a float at least this big


def _fast_numbers(lists: list[list], length: int) -> np.ndarray | None:
    """(P, length) float64 of P number lists, or None unless each holds ints/floats only.

    One ``np.array`` over all P lists infers what ``numeric_vector`` infers per list (kind i
    or f) because the file holds no booleans (checked on its bytes): any string, null,
    object or nested list gives another kind, an object array or a ragged error."""
    try:
        arr = np.array(lists)
    except (ValueError, TypeError, OverflowError):  # ragged nesting
        return None
    if arr.dtype.kind not in "if" or arr.shape != (len(lists), length):
        return None
    return arr.astype(np.float64, copy=False)


def _fast_face_frame(doc, data: bytes, file: str, frame: int | None, sequence: str,
                     stage: str) -> FaceFrame | None:
    """The ``FaceFrame`` of an orjson-parsed file whose identified people are all valid
    (people with id < 0 are rejected as unidentified, as the exact reader does); else None."""
    if type(doc) is not dict or type(doc.get("people")) is not list or b"true" in data or b"false" in data:
        return None
    L = N_LANDMARKS
    rejections, kept, marks, scores, repros, lists = [], [], [], [], [], []
    records = plain_person_records(doc["people"], "people", lambda reason, detail, pid: rejections.append(
        Rejection(sequence, stage, frame, pid, None, file, reason, detail)))
    if records is None:
        return None
    for pid, person in records:
        face = person.get("face70")
        if type(face) is not dict:
            return None
        lm, sc, rp, vis = (face.get("landmarks"), face.get("averageScore"), face.get("averageReproError"),
                           face.get("visibility"))
        if not (type(lm) is list and type(sc) is list and type(rp) is list and type(vis) is list
                and len(vis) == L):
            return None
        kept.append((pid, vis))
        marks.append(lm)
        scores.append(sc)
        repros.append(rp)
        lists += vis
    out = FaceFrame(file, frame, rejections=rejections)
    if not kept:
        return out
    n = len(kept)
    landmarks, score, repro = _fast_numbers(marks, 3 * L), _fast_numbers(scores, L), _fast_numbers(repros, L)
    if landmarks is None or score is None or repro is None or set(map(type, lists)) != {list}:
        return None
    try:   # ints only: floats, strings, nulls, lists and ints beyond 64 bits raise (no booleans here)
        cameras = np.frombuffer(array("q", chain.from_iterable(lists)), dtype=np.int64)
    except (TypeError, OverflowError):
        return None
    # orjson yields no NaN/inf (such files take the exact path), so finiteness holds; the
    # bounds at 2**63 keep out floats that were integers too big for 64 bits.
    if not (np.abs(landmarks).max() <= ABSURD_CM
            and score.max() <= SCORE_MAX and score.min() > -_INT64_BOUND
            and repro.min() >= 0 and repro.max() < _INT64_BOUND
            and (len(cameras) == 0 or (cameras.min() >= 0 and cameras.max() <= MAX_CAMERA_INDEX))):
        return None
    landmarks = landmarks.reshape(n, L, 3)
    negative = score < 0
    score = np.where(negative, 0.0, score)
    landmarks[(score <= 0) & np.all(landmarks == 0.0, axis=2)] = np.nan
    negatives = negative.sum(axis=1).tolist()
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=n * L).reshape(n, L)
    ends = np.cumsum(counts.sum(axis=1)).tolist()
    for k, (pid, vis) in enumerate(kept):
        cams = cameras[ends[k - 1] if k else 0:ends[k]]
        out.people.append(FacePerson(pid, landmarks[k], score[k], repro[k], vis, negatives[k], (counts[k], cams)))
    return out


def _person_json(p: FacePerson) -> dict:
    landmarks = np.array(p.landmarks, dtype=np.float64).reshape(N_LANDMARKS, 3)
    score = np.asarray(p.score, dtype=np.float64).reshape(N_LANDMARKS)
    repro = np.asarray(p.repro_error, dtype=np.float64).reshape(N_LANDMARKS)
    if len(p.visibility) != N_LANDMARKS:
        raise ValueError(f"person {p.id}: visibility needs {N_LANDMARKS} lists, got {len(p.visibility)}")
    unseen = ~np.all(np.isfinite(landmarks), axis=1)
    if np.any(score[unseen] > 0):
        raise ValueError(f"person {p.id}: landmarks {np.flatnonzero(unseen & (score > 0)).tolist()} "
                         f"are NaN but have a positive score; a missing landmark needs score 0")
    if not (np.all(np.isfinite(score)) and np.all(np.isfinite(repro))):
        raise ValueError(f"person {p.id}: score and repro_error must be finite")
    landmarks[unseen] = 0.0
    return {"id": int(p.id),
            "face70": {"landmarks": landmarks.reshape(-1).tolist(),
                       "averageScore": score.tolist(),
                       "averageReproError": repro.tolist(),
                       "visibility": [[int(c) for c in cams] for cams in p.visibility]}}


def face_frame_document(people: Sequence[FacePerson]) -> dict:
    """The JSON document of one face file (NaN landmarks written as (0, 0, 0), score 0).

    Exposed so a generator can corrupt a document on purpose before writing it.
    """
    return {"version": FILE_VERSION, "people": [_person_json(p) for p in people]}


def write_face_frame(path: str | Path, people: Sequence[FacePerson]) -> Path:
    """Write one ``faceRecon3D_hd%08d.json`` in the real format, atomically, full precision."""
    return write_panoptic_json(path, face_frame_document(people))
