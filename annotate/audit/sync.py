"""Is each camera's video in step with the labels? Where the heads are in the pictures.

A video shifted by s frames shows at frame k what happened at k + s, so its crops are cut
around where the head was, not where it is. Velocities cannot tell (a head moving steadily
looks the same shifted); positions can. Per camera:

1. The static background: the per-pixel median of up to ``BACKGROUND_FRAMES`` pictures
   spread over the labelled frames, in luma at 1/``DOWNSAMPLE`` resolution (people move,
   so the median is the empty scene; where someone never moves, a shift does no harm).
2. In every labelled frame, the centroid of the foreground (|picture - background| above
   ``FOREGROUND_LEVEL``) inside each person's head box: where the head is in the image.
3. For lags L in -max_lag..max_lag, the median distance between the foreground centroid of
   frame k and the label's head centre (the box centre) of frame k + L, after removing the
   median offset (a body below the head, the centre convention). An in-step video fits
   best at L = 0; a video shifted by s at L = s.

``score`` = error at the best lag / error at lag 0 (1 = lag 0 fits as well as any).
This reads each window of the video twice (background, centroids): by default 3 windows of
150 frames, so the cost does not grow with the video's length.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DOWNSAMPLE = 4            # luma at 1/4 resolution
BACKGROUND_FRAMES = 64    # pictures in the background median
FOREGROUND_LEVEL = 12     # grey levels
MIN_FOREGROUND_PX = 12    # fewer foreground pixels (at 1/4 resolution) in a box: no centroid
MIN_PAIRS = 20            # fewer (label, picture) pairs at a lag: not measured


@dataclass(frozen=True)
class SyncEstimate:
    """lag_frames: best lag (None when not measurable); score: error at that lag over the
    error at lag 0 (NaN when not measurable); pairs: labels with a foreground centroid;
    errors_px: median error per lag tried (-max_lag..max_lag)."""

    lag_frames: int | None
    score: float
    pairs: int
    errors_px: tuple[float, ...] = ()


def best_lag(image_centre: dict, label_centre: dict, max_lag: int) -> SyncEstimate:
    """The lag that best matches where the heads are to where the labels put them.

    image_centre / label_centre: {(person, frame): (2,) px}.
    """
    errors = []
    for lag in range(-max_lag, max_lag + 1):
        keys = [k for k in image_centre if (k[0], k[1] + lag) in label_centre]
        if len(keys) < MIN_PAIRS:
            errors.append(np.nan)
            continue
        d = np.array([image_centre[k] - label_centre[(k[0], k[1] + lag)] for k in keys])
        d -= np.median(d, axis=0)
        errors.append(float(np.median(np.linalg.norm(d, axis=1))))
    errors_arr = np.asarray(errors)
    zero = errors_arr[max_lag]
    if not np.isfinite(zero):
        return SyncEstimate(None, float("nan"), len(image_centre), tuple(errors))
    k = int(np.nanargmin(errors_arr))
    return SyncEstimate(k - max_lag, float(errors_arr[k] / zero) if zero > 0 else 1.0, len(image_centre),
                        tuple(errors))


def foreground_centroid(luma: np.ndarray, background: np.ndarray, box_px: np.ndarray) -> np.ndarray | None:
    """(2,) full-resolution px: centroid of the foreground inside a box (x0, y0, x1, y1)
    full-res px, or None with too little foreground. luma, background: 1/DOWNSAMPLE planes."""
    h, w = luma.shape
    x0, y0, x1, y1 = (np.asarray(box_px, np.float64) / DOWNSAMPLE).tolist()
    c0, r0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    c1, r1 = min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h)
    if c1 - c0 < 2 or r1 - r0 < 2:
        return None
    diff = np.abs(luma[r0:r1, c0:c1].astype(np.int16) - background[r0:r1, c0:c1].astype(np.int16))
    rows, cols = np.nonzero(diff > FOREGROUND_LEVEL)
    if len(rows) < MIN_FOREGROUND_PX:
        return None
    return (np.array([cols.mean() + c0, rows.mean() + r0]) + 0.5) * DOWNSAMPLE - 0.5


def sync_windows(frames: np.ndarray, windows: int, length: int) -> list[np.ndarray]:
    """The labelled frames (sorted (F,)) inside up to ``windows`` runs of ``length``
    consecutive frame numbers spread evenly over their range: one list per window (all
    frames in one window when they span no more than windows x length)."""
    first, last = int(frames[0]), int(frames[-1])
    if last - first + 1 <= windows * length:
        return [frames]
    starts = np.linspace(first, last - length + 1, windows).astype(np.int64)
    return [frames[(frames >= s) & (frames < s + length)] for s in starts]


def camera_sync(seq_dir: str | Path, camera: str, frame: np.ndarray, person: np.ndarray, box: np.ndarray,
                max_lag: int = 5, source: str = "video", threads: int = 1, windows: int = 3,
                window_frames: int = 150, offset: int = 0) -> SyncEstimate:
    """Estimate one camera's video lag from its labels.

    frame, person: (N,); box: (N, 4) unclipped head boxes px (their centre is the projected
    head centre), all of this camera's valid labels. Only ``windows`` windows of
    ``window_frames`` frames spread over the video are read (a shift is usually the same
    all along; this bounds the cost on long videos, each window starting at a seek).
    offset: the camera's picture number of frame 0 (``ingest.frame_offsets``), already
    applied: the lag found is what is left.
    Raises the video reader's ``VideoError`` for an unreadable video (the caller records it).
    """
    parts = [w for w in sync_windows(np.unique(frame), windows, window_frames) if len(w)]
    frames = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if len(frames) < MIN_PAIRS:
        return SyncEstimate(None, float("nan"), 0)
    background = _background(seq_dir, camera, parts, source, threads, offset)
    label_centre = {(int(p), int(f)): (b[:2] + b[2:]) / 2 for p, f, b in zip(person, frame, box)}
    rows_of: dict = {}
    for i, f in enumerate(frame.tolist()):
        rows_of.setdefault(f, []).append(i)
    image_centre: dict = {}
    for decoded in _frames(seq_dir, camera, parts, source, threads, offset):
        luma = _luma(decoded)
        for i in rows_of.get(decoded.index, ()):
            c = foreground_centroid(luma, background, box[i])
            if c is not None:
                image_centre[(int(person[i]), decoded.index)] = c
    return best_lag(image_centre, label_centre, max_lag)


def _frames(seq_dir, camera, parts: list[np.ndarray], source, threads, offset: int = 0):
    """The pictures of each window's frames, window after window (each read from a seek)."""
    from annotate.media.video import iter_camera_frames

    for frames in parts:
        yield from iter_camera_frames(seq_dir, camera, frames.tolist(), source=source, threads=threads, offset=offset)


def _background(seq_dir, camera: str, parts: list[np.ndarray], source: str, threads: int,
                offset: int = 0) -> np.ndarray:
    """Per-pixel median luma of up to BACKGROUND_FRAMES pictures spread over the windows."""
    per_window = max(BACKGROUND_FRAMES // len(parts), 1)
    picks = [w[np.unique(np.linspace(0, len(w) - 1, min(per_window, len(w))).astype(int))] for w in parts]
    stack = np.stack([_luma(d) for d in _frames(seq_dir, camera, picks, source, threads, offset)])
    return np.median(stack, axis=0).astype(np.uint8)


def _luma(decoded) -> np.ndarray:
    """The picture's luma at 1/DOWNSAMPLE resolution, uint8."""
    planes = decoded.yuv420()
    if planes is not None:
        y = planes[0]
    else:
        import cv2

        y = cv2.cvtColor(decoded.rgb(), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(y[DOWNSAMPLE // 2::DOWNSAMPLE, DOWNSAMPLE // 2::DOWNSAMPLE])
