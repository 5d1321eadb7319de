"""Which packets of a video must be decoded to get a set of frames, and which need not be.

An inter-coded picture (H.264 P or B) can only be decoded after the pictures it predicts
from, back to the key frame its chain starts at; a picture nothing predicts from (a
non-reference B picture) can be left out unless it is wanted itself. So for every
``frame_step``-th frame of a camera video:

- the packets from the key frame before a wanted frame up to that frame are sent to the
  decoder, and those that are not wanted are decoded only if other pictures refer to them
  (FFmpeg's ``skip_frame = NONREF`` drops the rest without decoding them);
- the packets between a wanted frame and the next key frame that starts a wanted frame's
  chain are not sent at all: decoding jumps there (one run of packets, a *segment*, ends
  and the next begins at that key frame).

Everything here works on the stream's packets in decode order, read once without decoding
(``annotate.media.video``): their pts, which are key frames. Frame numbers are presentation
ranks: frame k is the picture with the k-th smallest pts, the k-th picture a sequential
decoder hands over.
"""
from __future__ import annotations

import numpy as np


def presentation_ranks(pts: np.ndarray) -> np.ndarray | None:
    """(n,) int64 frame number of each packet (its rank by pts, packets in decode order).

    pts: (n,) int64 presentation time stamps in decode order. None when the ranks cannot
    number frames exactly: a pts repeats (the order of those pictures is the decoder's).
    """
    pts = np.asarray(pts, dtype=np.int64)
    order = np.argsort(pts, kind="stable")
    if len(pts) > 1 and (np.diff(pts[order]) == 0).any():
        return None
    ranks = np.empty(len(pts), dtype=np.int64)
    ranks[order] = np.arange(len(pts))
    return ranks


def clean_starts(ranks: np.ndarray, key: np.ndarray) -> np.ndarray:
    """(n,) bool: packets where decoding may start afresh (and where the frames before end).

    A clean start is a key frame k whose packets before it (decode order) are exactly
    frames 0..k-1 and which is frame k itself: nothing at or after it is shown before it
    (no leading pictures of an open GOP, which predict from the previous key frame's chain)
    and nothing before it is shown after it. Packet 0 always is one: a sequential decoder
    starts there.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    n = len(ranks)
    position = np.arange(n)
    max_before = np.concatenate([[-1], np.maximum.accumulate(ranks)[:-1]]) if n else ranks
    starts = np.asarray(key, dtype=bool) & (ranks == position) & (max_before == position - 1)
    if n:
        starts[0] = True
    return starts


def decode_segments(ranks: np.ndarray, starts: np.ndarray, wanted: np.ndarray) -> list[tuple[int, int]]:
    """Runs of packets to decode for the wanted frames, decode order, ``(first, last)`` inclusive.

    ranks: (n,) frame number of each packet; starts: (n,) bool ``clean_starts``; wanted:
    frame numbers, each < n. Each wanted frame's packet lies in a run that begins at or
    after the clean start before it: the runs hold every picture the wanted ones predict
    from. Runs are sorted and disjoint; a run begins where the previous one ends (no jump)
    only when the next clean start is right after it.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    position_of_frame = np.empty(len(ranks), dtype=np.int64)
    position_of_frame[ranks] = np.arange(len(ranks))
    positions = np.sort(position_of_frame[np.asarray(wanted, dtype=np.int64)])
    start_at = np.flatnonzero(starts)
    chain = start_at[np.searchsorted(start_at, positions, side="right") - 1]
    segments: list[list[int]] = []
    for first, last in zip(chain.tolist(), positions.tolist()):
        if segments and first <= segments[-1][1] + 1:
            segments[-1][1] = max(segments[-1][1], last)
        else:
            segments.append([first, last])
    return [(a, b) for a, b in segments]


def complete_prefix(ranks: np.ndarray, starts: np.ndarray) -> int:
    """Packets of a cut-short index whose frame numbers are certain: those before its last
    clean start (the pictures after it may be missing earlier-shown ones still unread)."""
    start_at = np.flatnonzero(starts)
    return int(start_at[-1]) if len(start_at) else 0
