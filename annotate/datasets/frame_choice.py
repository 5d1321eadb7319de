"""Which frame of each window of ``frame_step`` frames becomes a sample.

``exact`` keeps frames ``start, start + step, ...``. ``cheapest_to_decode`` keeps, per
camera and per window ``[start + k * step, start + (k + 1) * step)``, the labelled frame
that costs its video least to decode:

1. a key frame (decodes from one picture), else
2. a reference picture: the decoder needs it anyway for any later frame of its chain, so
   keeping it costs nothing more, while a non-reference picture (a B-frame nothing predicts
   from) would be decoded for itself alone; else
3. frame ``start + k * step``, as ``exact``.

Among several of the cheapest kind, the frame with the most valid labels, then the
earliest (an earlier frame ends the chain sooner before a key frame). Frame numbers stay
the true ones; cameras may keep different frames (their videos are encoded apart).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

FRAME_CHOICES = ("exact", "cheapest_to_decode")
KEY, REFERENCE, OTHER = 0, 1, 2                  # frame kinds, cheapest first
KIND_NAMES = {KEY: "key", REFERENCE: "reference", OTHER: "other"}

# (sequence, camera) -> (key frames, reference frames or None = not known), sorted frame numbers.
FrameKindsOf = Callable[[str, str], tuple[np.ndarray, np.ndarray | None]]


def frame_kind(frame: np.ndarray, key_frames: np.ndarray, reference_frames: np.ndarray | None) -> np.ndarray:
    """(n,) int8 KEY, REFERENCE or OTHER for each frame number (n,)."""
    f = np.asarray(frame, dtype=np.int64)
    kind = np.full(len(f), OTHER, dtype=np.int8)
    if reference_frames is not None:
        kind[np.isin(f, reference_frames)] = REFERENCE
    kind[np.isin(f, key_frames)] = KEY
    return kind


def in_range(frame: np.ndarray, start: int, end: int | None) -> np.ndarray:
    """(n,) bool: start <= frame <= end (end None = no end)."""
    f = np.asarray(frame, dtype=np.int64)
    ok = f >= start
    if end is not None:
        ok &= f <= end
    return ok


def exact_frames(frame: np.ndarray, start: int, end: int | None, step: int) -> np.ndarray:
    """(n,) bool: the rows of frames start, start + step, ... <= end."""
    f = np.asarray(frame, dtype=np.int64)
    return in_range(f, start, end) & ((f - start) % step == 0)


def describe_windows(key: int, reference: int, other: int, unknown: list[str]) -> str:
    """One line of the windows kept per kind (plan summary, dataset card)."""
    return (f"{key} camera windows at a key frame, {reference} at a reference picture, {other} at "
            f"frame_start + k * frame_step" + (f"; not known for {', '.join(unknown)}" if unknown else ""))


def cheapest_to_decode(frame: np.ndarray, kind: np.ndarray, start: int, end: int | None, step: int
                       ) -> tuple[np.ndarray, dict[str, int]]:
    """The rows of one camera that ``cheapest_to_decode`` keeps (module docstring).

    frame: (n,) frame number of each valid label row; kind: (n,) its frame's kind
    (``frame_kind``). Returns ((n,) bool kept, windows kept per kind name).
    """
    f = np.asarray(frame, dtype=np.int64)
    kind = np.asarray(kind, dtype=np.int64)
    inside = in_range(f, start, end)
    window = (f - start) // step
    keep = exact_frames(f, start, end, step)
    candidates = np.flatnonzero(inside & (kind < OTHER))
    # One row per (window, frame): its kind and how many label rows it has.
    table, rows = np.unique(np.stack([window[candidates], kind[candidates], f[candidates]], axis=1).reshape(-1, 3),
                            axis=0, return_counts=True)
    # Per window: the cheapest kind, then the most rows, then the earliest frame.
    table = table[np.lexsort((table[:, 2], -rows, table[:, 1], table[:, 0]))]
    first = np.r_[True, table[1:, 0] != table[:-1, 0]] if len(table) else np.zeros(0, dtype=bool)
    chosen = table[first]                                    # (w, 3): window, kind, frame; sorted by window
    decided = inside & np.isin(window, chosen[:, 0])
    keep[decided] = f[decided] == chosen[np.searchsorted(chosen[:, 0], window[decided]), 2]
    counts = {KIND_NAMES[k]: int((chosen[:, 1] == k).sum()) for k in (KEY, REFERENCE)}
    counts[KIND_NAMES[OTHER]] = len(np.unique(window[keep & ~decided]))
    return keep, counts
