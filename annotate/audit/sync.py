"""Is each camera's video in step with the labels? Image motion against label motion.

A video shifted by s frames shows at frame k what happened at k + s, so its crops are cut
around where the head was, not where it is. We measure, for every labelled person and
every pair of consecutive frames (k, k+1), how the image content inside the head box moved
(phase correlation of the two pictures' patches at the frame-k box), and compare it with
how the labels say the visible face moved (the mean motion of the fitted landmarks visible
in both frames, or of the box centre for a back view). If the video is in step, image
motion at k matches label motion at k; if it is shifted by s, it matches label motion at
k + s. The lag L minimising the median |image motion(k) - label motion(k + L)| over all
pairs is the camera's estimate; ``score`` = that median over the one at L = 0 (1 = lag 0
explains the images as well as any lag).

This reads the videos (or hdImgs), so it costs about one decode of every labelled frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DOWNSAMPLE = 2           # patches are cut from the luma plane at half resolution
PATCH_PX = 48            # phase-correlation patch side
MIN_BOX_PX = 24          # smaller boxes (at full resolution) carry too little texture
MIN_PAIRS = 20           # fewer motion pairs: no estimate


@dataclass(frozen=True)
class SyncEstimate:
    """lag_frames: best lag (None when not measurable); score: median error at that lag over
    the one at lag 0 (NaN when not measurable); pairs: motion pairs used; errors_px: the
    median error per lag tried (lags -max_lag..max_lag)."""

    lag_frames: int | None
    score: float
    pairs: int
    errors_px: tuple[float, ...] = ()


def label_motion_px(fitted_px: np.ndarray, visible: np.ndarray, box_centre: np.ndarray) -> np.ndarray:
    """(K-1, 2) px: how the labels move between consecutive rows of one track.

    fitted_px: (K, 70, 2) landmarks of consecutive frames; visible: (K, 70) bool; box_centre
    (K, 2). The mean motion of the landmarks visible in both frames (what the image
    texture does), or the box centre's motion when fewer than 3 are.
    """
    both = visible[:-1] & visible[1:]
    step = fitted_px[1:] - fitted_px[:-1]
    count = both.sum(axis=1)
    mean = np.where(both[..., None], step, 0.0).sum(axis=1) / np.maximum(count, 1)[:, None]
    centre = box_centre[1:] - box_centre[:-1]
    return np.where((count >= 3)[:, None], mean, centre)


def _patch(image: np.ndarray, centre_px: np.ndarray, side_px: float) -> np.ndarray:
    """A PATCH_PX square float32 patch of ``image`` (downsampled luma) around a full-res
    centre and side; borders are replicated (getRectSubPix)."""
    import cv2

    side = max(int(round(side_px / DOWNSAMPLE)), 8)
    cut = cv2.getRectSubPix(image, (side, side), (float(centre_px[0]) / DOWNSAMPLE, float(centre_px[1]) / DOWNSAMPLE))
    return cv2.resize(cut, (PATCH_PX, PATCH_PX), interpolation=cv2.INTER_AREA)


def image_motion_px(previous: np.ndarray, current: np.ndarray, centre_px: np.ndarray, side_px: float) -> np.ndarray:
    """(2,) px at full resolution: the shift of the content of the box (centre, side) from
    ``previous`` to ``current`` (float32 downsampled luma planes), by phase correlation."""
    import cv2

    window = _hanning()
    a, b = _patch(previous, centre_px, side_px), _patch(current, centre_px, side_px)
    (dx, dy), _ = cv2.phaseCorrelate(a, b, window)
    unit = max(int(round(side_px / DOWNSAMPLE)), 8) / PATCH_PX * DOWNSAMPLE
    return np.array([dx, dy]) * unit


_WINDOW: list = []


def _hanning() -> np.ndarray:
    import cv2

    if not _WINDOW:
        _WINDOW.append(cv2.createHanningWindow((PATCH_PX, PATCH_PX), cv2.CV_32F))
    return _WINDOW[0]


def best_lag(image_motion: dict, label_motion: dict, max_lag: int) -> SyncEstimate:
    """The lag that best matches image motion to label motion.

    image_motion / label_motion: {(person, frame): (2,) px} for the pair (frame, frame+1).
    """
    lags = range(-max_lag, max_lag + 1)
    errors, counts = [], []
    for lag in lags:
        d = [np.linalg.norm(v - label_motion[(p, f + lag)]) for (p, f), v in image_motion.items()
             if (p, f + lag) in label_motion]
        errors.append(float(np.median(d)) if len(d) >= MIN_PAIRS else np.nan)
        counts.append(len(d))
    errors_arr = np.asarray(errors)
    zero = errors_arr[max_lag]
    if not np.isfinite(zero):
        return SyncEstimate(None, float("nan"), counts[max_lag], tuple(errors))
    k = int(np.nanargmin(errors_arr))
    score = float(errors_arr[k] / zero) if zero > 0 else 1.0
    return SyncEstimate(k - max_lag, score, counts[max_lag], tuple(errors))


def camera_sync(seq_dir: str | Path, camera: str, frame: np.ndarray, person: np.ndarray, box: np.ndarray,
                fitted_px: np.ndarray, visible: np.ndarray, max_lag: int = 5, source: str = "video",
                threads: int = 1) -> SyncEstimate:
    """Estimate one camera's video lag from its labels.

    frame, person: (N,); box: (N, 4) unclipped head boxes px; fitted_px: (N, 70, 2);
    visible: (N, 70) bool, all of this camera's valid labels. Raises the video reader's
    ``VideoError`` for an unreadable video (the caller records it).
    """
    from annotate.media.video import iter_camera_frames

    order = np.lexsort((frame, person))
    frame, person, box = frame[order], person[order], box[order]
    fitted_px, visible = fitted_px[order], visible[order]
    centre = (box[:, :2] + box[:, 2:]) / 2
    side = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    label_motion: dict = {}
    pair_rows: dict = {}                      # frame -> rows whose (frame, frame+1) pair is labelled
    for p in np.unique(person):
        rows = np.flatnonzero(person == p)
        consecutive = np.diff(frame[rows]) == 1
        motion = label_motion_px(fitted_px[rows], visible[rows], centre[rows])
        for i in np.flatnonzero(consecutive):
            r = rows[i]
            label_motion[(int(p), int(frame[r]))] = motion[i]
            if side[r] >= MIN_BOX_PX:
                pair_rows.setdefault(int(frame[r]), []).append(r)
    if not pair_rows:
        return SyncEstimate(None, float("nan"), 0)
    wanted = sorted(set(pair_rows) | {f + 1 for f in pair_rows})
    image_motion: dict = {}
    previous, previous_frame = None, None
    for decoded in iter_camera_frames(seq_dir, camera, wanted, source=source, threads=threads):
        luma = _luma(decoded)
        if previous is not None and previous_frame == decoded.index - 1:
            for r in pair_rows.get(previous_frame, ()):
                image_motion[(int(person[r]), previous_frame)] = image_motion_px(previous, luma, centre[r], side[r])
        previous, previous_frame = luma, decoded.index
    return best_lag(image_motion, label_motion, max_lag)


def _luma(decoded) -> np.ndarray:
    """The picture's luma at 1/DOWNSAMPLE resolution, float32."""
    planes = decoded.yuv420()
    if planes is not None:
        y = planes[0]
    else:
        import cv2

        y = cv2.cvtColor(decoded.rgb(), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(y[::DOWNSAMPLE, ::DOWNSAMPLE], dtype=np.float32)
