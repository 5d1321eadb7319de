"""Integer image ids of full frames, in DirectMHP's layout for CMU Panoptic.

DirectMHP's CMU converter names every frame ``<id>.jpg`` with ``id = 1 ss FFFFFF cc``:
``10_000_000_000 + s * 100_000_000 + frame * 100 + c`` (s: the sequence's number, from 1;
c: the HD camera's number, ``00_cc``). Its evaluation (``val.py``) takes ``int(file stem)``
as the COCO image id, so ids must be unique integers and the file stems the same integers.
This project's COCO export uses the same layout, with s = the sequence's position (from 1)
in the sorted names of the dataset's sequences and c = the camera's ``camera_index``, so the
ids are unique across splits and decode back to (sequence number, frame, camera).
"""
from __future__ import annotations

BASE = 10_000_000_000
SEQUENCE_STEP = 100_000_000
FRAME_STEP = 100
MAX_FRAME = SEQUENCE_STEP // FRAME_STEP          # frames 0..999_999
MAX_CAMERA = FRAME_STEP                          # cameras 0..99


def image_id(sequence_number: int, frame: int, camera_number: int) -> int:
    """The id of one frame; ValueError if a field does not fit the layout."""
    if not 1 <= sequence_number:
        raise ValueError(f"sequence number {sequence_number} must be >= 1")
    if not 0 <= frame < MAX_FRAME:
        raise ValueError(f"frame {frame} does not fit DirectMHP's image id layout (0..{MAX_FRAME - 1})")
    if not 0 <= camera_number < MAX_CAMERA:
        raise ValueError(f"camera number {camera_number} does not fit DirectMHP's image id layout "
                         f"(0..{MAX_CAMERA - 1})")
    return BASE + sequence_number * SEQUENCE_STEP + frame * FRAME_STEP + camera_number


def decode_image_id(value: int) -> tuple[int, int, int]:
    """(sequence number, frame, camera number) of an id; ValueError if it is not one."""
    value = int(value)
    if value < BASE + SEQUENCE_STEP:
        raise ValueError(f"image id {value} is not in DirectMHP's layout 1 ss FFFFFF cc")
    rest = value - BASE
    return rest // SEQUENCE_STEP, (rest % SEQUENCE_STEP) // FRAME_STEP, rest % FRAME_STEP


def sequence_numbers(sequences) -> dict[str, int]:
    """sequence name -> its number: position (from 1) in the sorted distinct names."""
    return {s: i + 1 for i, s in enumerate(sorted(set(sequences)))}
