"""One int64 key per (frame, person) row, and matching rows of two tables by it.

Tables here are keyed by (frame, person) (per camera or per sequence). Packing the pair
into one int64 lets numpy sort and match rows (``np.searchsorted``), several times faster
than pandas MultiIndex joins on the per-camera tables of the dataset stage. Keys sort as
(frame, person) for any int32 person, -1 (unclaimed) included.
"""
from __future__ import annotations

import numpy as np


def frame_person_keys(frame: np.ndarray, person: np.ndarray) -> np.ndarray:
    """(N,) int64 keys ordered as (frame, person): frame * 2**32 + person."""
    return (np.asarray(frame, dtype=np.int64) << 32) + np.asarray(person, dtype=np.int64)


def match_keys(keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each wanted key sits in ``keys`` (N,) (unique, any order).

    Returns (pos (M,) int64, found (M,) bool): ``keys[pos[i]] == wanted[i]`` where found[i];
    pos is 0 where not found.
    """
    keys, wanted = np.asarray(keys, dtype=np.int64), np.asarray(wanted, dtype=np.int64)
    by_key = np.argsort(keys, kind="stable")
    sorted_keys = keys[by_key]
    at = np.searchsorted(sorted_keys, wanted)
    found = at < len(sorted_keys)
    found[found] = sorted_keys[at[found]] == wanted[found]
    if not len(keys):
        return np.zeros(len(wanted), np.int64), found
    return by_key[np.where(found, at, 0)], found
