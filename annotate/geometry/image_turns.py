"""Quarter turns of an image and of its pixel coordinates (OpenCV pixel centres).

A turn is given in degrees clockwise, one of ``TURNS_CW_DEG``. Used where a picture is
handed on turned: a camera mounted on its side (``annotate.detect.orientation``), a video
whose container says how to turn its pictures for display (``annotate.media.video``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

TURNS_CW_DEG = (0, 90, 180, 270)


def quarter_turns_ccw(degrees_cw: int) -> int:
    """np.rot90's k (counter-clockwise quarter turns) of a clockwise turn in degrees."""
    if degrees_cw not in TURNS_CW_DEG:
        raise ValueError(f"an image turn must be one of {TURNS_CW_DEG} degrees clockwise, got {degrees_cw!r}")
    return (-degrees_cw // 90) % 4


def turn_image(image: np.ndarray, degrees_cw: int) -> np.ndarray:
    """The (H, W, ...) image turned clockwise by degrees_cw, as a contiguous array."""
    return np.ascontiguousarray(np.rot90(image, quarter_turns_ccw(degrees_cw)))


def turn_points(points_px: np.ndarray, degrees_cw: int, size_wh: Sequence[int]) -> np.ndarray:
    """Pixels (..., 2) of an image of size (width, height) -> the same points in that image
    turned clockwise by degrees_cw (``turn_image``). NaN stays NaN."""
    p = np.array(points_px, dtype=np.float64, copy=True)
    w, h = int(size_wh[0]), int(size_wh[1])
    for _ in range(quarter_turns_ccw(degrees_cw)):
        # One counter-clockwise quarter turn (np.rot90, k=1): the turned image's pixel
        # (col, row) = (y, W-1-x), and it is H wide and W high.
        p = np.stack([p[..., 1], (w - 1) - p[..., 0]], axis=-1)
        w, h = h, w
    return p


def unturn_points(points_px: np.ndarray, degrees_cw: int, size_wh: Sequence[int]) -> np.ndarray:
    """Inverse of ``turn_points``: pixels (..., 2) of the turned image -> pixels of the
    original image of size (width, height)."""
    w, h = int(size_wh[0]), int(size_wh[1])
    turned_size = (w, h) if degrees_cw in (0, 180) else (h, w)
    return turn_points(points_px, (360 - degrees_cw) % 360, turned_size)


def turn_boxes(boxes_px: np.ndarray, degrees_cw: int, size_wh: Sequence[int], inverse: bool = False) -> np.ndarray:
    """Boxes (N, 4) x0, y0, x1, y1 -> the boxes of their corners in the turned image
    (``inverse``: from the turned image back to the original of size (width, height))."""
    b = np.asarray(boxes_px, dtype=np.float64).reshape(-1, 4)
    corners = b.reshape(-1, 2, 2)
    moved = (unturn_points if inverse else turn_points)(corners, degrees_cw, size_wh)
    return np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
