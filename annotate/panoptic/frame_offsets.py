"""Cameras that are not in step: which picture of each camera shows a capture frame.

A capture's frame ``f`` is one instant seen by every camera. Panoptic's cameras are
triggered together, so picture ``f`` of every camera is frame ``f``. On a rig whose cameras
are started by hand (phones, action cameras) they are not: camera ``c``'s picture
``f + offset_c`` shows frame ``f``, that is ``hdImgs/<c>/<c>_%08d.jpg`` with the number
``f + offset_c`` and picture ``f + offset_c`` (counted from 0) of ``hdVideos/hd_<c>.mp4``.

``ingest.frame_offsets`` gives ``offset_c`` per camera (0 for cameras not named); ingest
records it in ``cameras.parquet`` (column ``frame_offset``), and every stage that reads
pictures takes it from there. Frame numbers stay >= 0: a camera's pictures before frame 0
(``picture < offset_c``) are outside the capture, and a camera started late (negative
offset) has no picture for the first frames.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from annotate.core.names import check_camera_mapping

SETTING = "ingest.frame_offsets"


def parse_frame_offsets(setting, camera_names: Sequence[str]) -> dict[str, int]:
    """Every camera's offset (pictures) from ``ingest.frame_offsets``: a mapping camera name ->
    integer (cameras not named: 0), or None / {} for none. Unknown names, unquoted YAML names
    and non-integers raise ValueError naming them."""
    if setting is None:
        setting = {}
    if not isinstance(setting, Mapping):
        raise ValueError(f"{SETTING} must be a mapping of camera names to picture offsets "
                         f"(e.g. {{'00_03': 12}}), got {setting!r}")
    setting = check_camera_mapping(setting, camera_names, SETTING)
    for name, value in setting.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{SETTING}[{name!r}] must be a whole number of pictures, got {value!r}")
    return {name: int(setting.get(name, 0)) for name in camera_names}


def pictures_of(frames, offset: int) -> np.ndarray:
    """(F,) int64 picture numbers of capture ``frames`` for a camera at ``offset``
    (negative where the camera has no picture of that frame)."""
    return np.asarray(frames, dtype=np.int64) + int(offset)


def frames_of(pictures, offset: int) -> np.ndarray:
    """(F',) int64 capture frames shown by ``pictures`` (sorted picture numbers) of a camera at
    ``offset``; pictures before frame 0 are left out."""
    frames = np.asarray(pictures, dtype=np.int64) - int(offset)
    return frames[frames >= 0]
