"""Problems found in Panoptic-layout files: one exception type, one rejection record.

Two ways a problem leaves a reader:

- ``PanopticFormatError`` (a ``ValueError``) when nothing sensible can continue: a broken
  calibration, a requested camera that does not exist, or ``on_error="raise"``. Its message
  always starts with the file and says what is wrong.
- a ``Rejection`` record when one sample (a person in a frame, a whole frame file) is skipped
  and the rest goes on. Nothing is dropped silently: every skipped person, file or frame gets
  one. Rejections become rows of the ``rejections`` table (``schemas/rejections.schema.yaml``).

Reason codes are plain strings (constants below) so that tables stay readable without this
module. ``ERROR_REASONS`` are defects of a file's content; ``on_error="raise"`` turns those
into exceptions. ``FACT_REASONS`` describe the data as published (a frame file absent in the
middle of a sequence, a face not associated with any person) and are always recorded.
"""
from __future__ import annotations

from collections import Counter

from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

# --- reason codes -------------------------------------------------------------------------
UNREADABLE_FILE = "unreadable_file"          # the OS could not read the file
INVALID_JSON = "invalid_json"                # not parseable as JSON
MISSING_KEY = "missing_key"                  # a required key is absent
WRONG_TYPE = "wrong_type"                    # a value of the wrong JSON type
WRONG_LENGTH = "wrong_length"                # an array of the wrong length / shape
NON_FINITE = "non_finite"                    # NaN or infinity where a number is required
ABSURD_VALUE = "absurd_value"                # a finite number far outside any plausible range
BAD_SCORE = "bad_score"                      # a score / confidence outside its valid range
BAD_VISIBILITY = "bad_visibility"            # a camera index that is not a camera of the rig
DUPLICATE_PERSON = "duplicate_person"        # one person id twice in one frame
UNSUPPORTED_LAYOUT = "unsupported_layout"    # e.g. a ``face_coco`` face instead of ``face70``
UNIDENTIFIED_PERSON = "unidentified_person"  # id < 0: Panoptic's "not associated" marker
MISSING_FRAME = "missing_frame"              # a frame file absent while its neighbours exist
UNEXPECTED_FILE = "unexpected_file"          # a file in a data folder with an unexpected name
MISSING_MEDIA = "missing_media"              # a camera with neither images nor a video
BAD_CALIBRATION = "bad_calibration"          # used in PanopticFormatError for calibrations
MISSING_CAMERA = "missing_camera"            # a requested camera is not in the calibration

ERROR_REASONS = frozenset({
    UNREADABLE_FILE, INVALID_JSON, MISSING_KEY, WRONG_TYPE, WRONG_LENGTH, NON_FINITE,
    ABSURD_VALUE, BAD_SCORE, BAD_VISIBILITY, DUPLICATE_PERSON, UNSUPPORTED_LAYOUT,
    BAD_CALIBRATION, MISSING_CAMERA,
})
FACT_REASONS = frozenset({UNIDENTIFIED_PERSON, MISSING_FRAME, UNEXPECTED_FILE, MISSING_MEDIA})
ALL_REASONS = ERROR_REASONS | FACT_REASONS


class PanopticFormatError(ValueError):
    """A Panoptic file that cannot be used. ``str(err)`` is ``"<file>: <what is wrong>"``.

    Attributes: ``file`` (str), ``reason`` (a reason code), ``detail`` (str).
    """

    def __init__(self, file, reason: str, detail: str):
        self.file = str(file)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.file}: {reason}: {detail}")


@dataclass(frozen=True)
class Rejection:
    """One skipped sample, file or frame; a row of the ``rejections`` table.

    sequence: sequence name (``""`` until the caller knows it).
    stage: pipeline stage that rejected it, e.g. ``"ingest.faces"``.
    frame / person / camera: what was skipped, ``None`` where not applicable
    (a whole file has no person; a frame file has no camera).
    file: the file the problem is in (or the expected path of a missing file).
    reason: one of the reason codes of this module. detail: human-readable specifics.
    """

    sequence: str
    stage: str
    frame: int | None
    person: int | None
    camera: str | None
    file: str
    reason: str
    detail: str

    def __post_init__(self) -> None:
        if self.reason not in ALL_REASONS:
            raise ValueError(f"unknown rejection reason {self.reason!r}; known: {sorted(ALL_REASONS)}")

    @property
    def is_error(self) -> bool:
        """True for defects of a file (what ``on_error="raise"`` refuses)."""
        return self.reason in ERROR_REASONS

    def _located_detail(self) -> str:
        where = ", ".join(f"{k} {v}" for k, v in
                          (("frame", self.frame), ("person", self.person), ("camera", self.camera))
                          if v is not None)
        return f"{where}: {self.detail}" if where else self.detail

    def message(self) -> str:
        """``"<file>: <reason>: [frame F, person P, camera C: ]<detail>"``."""
        return f"{self.file}: {self.reason}: {self._located_detail()}"

    def to_error(self) -> PanopticFormatError:
        """The same problem as an exception (same file, reason and located detail)."""
        return PanopticFormatError(self.file, self.reason, self._located_detail())


def raise_on_errors(rejections: Iterable[Rejection]) -> None:
    """Raise the first rejection whose reason is a content error as ``PanopticFormatError``."""
    for r in rejections:
        if r.is_error:
            raise r.to_error()


REJECTION_COLUMNS = ("sequence", "stage", "frame", "person", "camera", "file", "reason", "detail")


def rejection_columns(rejections: Iterable[Rejection]) -> dict[str, list]:
    """Rejections as columns for ``tables.to_arrow(..., "rejections")`` (``None`` = null)."""
    cols: dict[str, list] = {c: [] for c in REJECTION_COLUMNS}
    for r in rejections:
        row = asdict(r)
        for c in REJECTION_COLUMNS:
            cols[c].append(row[c])
    return cols


# --- value checks shared by the frame readers ------------------------------------------------
class RecordProblem(Exception):
    """Raised inside a reader for one record (person, body); becomes a ``Rejection``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def require_key(record: dict, key: str, what: str):
    """``record[key]``, or ``RecordProblem(missing_key)``."""
    if key not in record:
        raise RecordProblem(MISSING_KEY, f"{what} has no {key!r} (keys: {sorted(record)})")
    return record[key]


def person_id(record) -> int:
    """The ``id`` of a person/body record: an int (not a bool), else ``RecordProblem``."""
    if not isinstance(record, dict):
        raise RecordProblem(WRONG_TYPE, f"entry is a {type(record).__name__}, expected an object")
    value = require_key(record, "id", "entry")
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordProblem(WRONG_TYPE, f"id {value!r} is not an integer")
    return value


def numeric_vector(value, length: int, what: str) -> np.ndarray:
    """A flat JSON array of ``length`` finite numbers as float64, else ``RecordProblem``.

    Strings, booleans and nulls are ``wrong_type`` (never coerced); NaN/inf are
    ``non_finite``; a nested or wrong-sized array is ``wrong_length``.
    """
    if not isinstance(value, list):
        raise RecordProblem(WRONG_TYPE, f"{what} is a {type(value).__name__}, expected a list")
    try:
        arr = np.array(value)
    except ValueError:
        raise RecordProblem(WRONG_LENGTH, f"{what} is a ragged nested list") from None
    if arr.size and arr.dtype.kind not in "iuf":
        raise RecordProblem(WRONG_TYPE, f"{what} holds non-numbers (as {arr.dtype}); all must be numbers")
    if arr.ndim != 1 or arr.shape[0] != length:
        raise RecordProblem(WRONG_LENGTH, f"{what} has shape {arr.shape}, expected ({length},)")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise RecordProblem(NON_FINITE, f"{what} holds {int(bad.sum())} non-finite value(s) "
                                        f"at index {np.flatnonzero(bad)[:5].tolist()}")
    return arr


def parse_person_records(records: list, label: str, parse_one, reject) -> list:
    """Parse the per-person records of one frame file (faces or bodies).

    ``parse_one(record, pid)`` returns the parsed record or raises ``RecordProblem``;
    ``reject(reason, detail, person)`` records a rejection. A person with an id below 0 is
    rejected as unidentified; an id that appears more than once is rejected in every copy
    (none can be trusted). Returns the kept records in file order.
    """
    parsed = []
    for i, record in enumerate(records):
        pid = None
        try:
            pid = person_id(record)
            if pid < 0:
                reject(UNIDENTIFIED_PERSON, _unidentified(label, i, pid), pid)
                continue
            parsed.append((pid, parse_one(record, pid)))
        except RecordProblem as p:
            reject(p.reason, f"{label}[{i}]: {p.detail}", pid)
            if pid is not None and pid >= 0:
                parsed.append((pid, None))
    counts = Counter(pid for pid, _ in parsed)
    kept = []
    for pid, rec in parsed:
        if counts[pid] > 1:
            if rec is not None:
                reject(DUPLICATE_PERSON, f"id {pid} appears {counts[pid]} times in the frame; none of them is kept", pid)
        elif rec is not None:
            kept.append(rec)
    return kept


def _unidentified(label: str, index: int, pid: int) -> str:
    return f"{label}[{index}] has id {pid} (not associated with a person)"


def plain_person_records(records: list, label: str, reject) -> list | None:
    """The fast readers' ``parse_person_records``: ``(pid, record)`` of the identified records
    of one frame file, in file order, when every record is an object with a plain integer
    id and no id repeats; ids below 0 are rejected as unidentified, worded as the exact
    reader words them. None when anything else holds: the exact reader then says what.
    """
    kept, seen = [], set()
    for i, record in enumerate(records):
        if type(record) is not dict or type(record.get("id")) is not int:
            return None
        pid = record["id"]
        if pid < 0:
            reject(UNIDENTIFIED_PERSON, _unidentified(label, i, pid), pid)
            continue
        if pid in seen:
            return None
        seen.add(pid)
        kept.append((pid, record))
    return kept
