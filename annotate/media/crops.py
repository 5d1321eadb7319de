"""Square head crops with an exact full-frame -> crop affine transform.

A crop is defined by one 2x3 float64 matrix ``crop_from_image`` that maps a full-frame
pixel position (u, v) (OpenCV convention: pixel (col, row) has its centre at (col, row)) to
the crop's pixel position: ``[x, y] = crop_from_image @ [u, v, 1]``. The same matrix does
the resampling (see below), so boxes and landmarks mapped through it land exactly
where the pixels went.

Geometry: the square is centred on the head box (``box_unclipped``, so a head cut by the
image edge keeps its centre), its side is ``max(box width, box height) * (1 + 2 * margin)``;
side and corner are snapped to even pixel numbers, so the window is whole pixels of the
luma plane *and* of the 4:2:0 chroma planes. It is then resized to ``size x size``
(``cv2.resize``), which is several times faster than a general warp and exactly the stored
scale + translation. Enlarging (most heads) is bilinear. Shrinking by a factor f is bilinear
up to ``k * size`` (k = ceil(f)) followed by k x k pixel-area averaging: OpenCV's area
resize is fast only for whole factors (its general path costs about ten times a bilinear
one), and the two steps compose to the same transform. Parts outside the image are padded
with a constant colour.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from annotate.media.jpeg import C_TO_FULL_RANGE, Y_TO_FULL_RANGE

@dataclass(frozen=True)
class CropSpec:
    """size: output side, px (even, for 4:2:0 chroma); margin: added on each side as a
    fraction of the box side; pad_rgb: colour outside the image."""

    size: int = 256
    margin: float = 0.15
    pad_rgb: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        if self.size < 2 or self.size % 2:
            raise ValueError(f"crop size must be an even number >= 2, got {self.size}")
        if self.margin < 0:
            raise ValueError(f"crop margin must be >= 0, got {self.margin}")


def square_windows(boxes: np.ndarray, margin: float) -> np.ndarray:
    """(N, 3) float64 [x0, y0, side] of the even-aligned square window around each box.

    boxes: (N, 4) (x0, y0, x1, y1) px. The window covers source pixels x0 .. x0 + side - 1
    (x0, y0, side even integers, side >= 2); NaN rows stay NaN.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * (1.0 + 2.0 * margin)
    side = np.maximum(2.0 * np.round(0.5 * side), 2.0)
    corner = 2.0 * np.round(0.5 * (centre - 0.5 * side[:, None]))
    return np.column_stack([corner, side])


def crop_transforms(boxes: np.ndarray, spec: CropSpec) -> np.ndarray:
    """(N, 2, 3) float64 ``crop_from_image`` for each (x0, y0, x1, y1) box (N, 4), px.

    The window's outer pixel edges (x0 - 0.5 .. x0 + side - 0.5) map onto the crop's
    (-0.5 .. size - 0.5): x_crop = s * (u - x0 + 0.5) - 0.5 with s = size / side.
    """
    win = square_windows(boxes, spec.margin)
    s = spec.size / win[:, 2]
    A = np.zeros((len(win), 2, 3))
    A[:, 0, 0] = A[:, 1, 1] = s
    A[:, 0, 2] = s * (0.5 - win[:, 0]) - 0.5
    A[:, 1, 2] = s * (0.5 - win[:, 1]) - 0.5
    return A


def apply_transform(crop_from_image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map full-frame px points into crops; NaN stays NaN.

    crop_from_image (2, 3) with points (..., 2), or (N, 2, 3) with points (N, ..., 2)
    (one transform per sample).
    """
    A = np.asarray(crop_from_image, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    if A.ndim == 2:
        return p @ A[:, :2].T + A[:, 2]
    flat = p.reshape(len(A), -1, 2)                     # (N, M, 2)
    # Written out per output coordinate: numpy's batched matmul of 2x2 matrices is several
    # times slower than these elementwise products.
    x, y = flat[..., 0], flat[..., 1]
    out = np.empty_like(flat)
    out[..., 0] = A[:, 0, 0, None] * x + A[:, 0, 1, None] * y + A[:, 0, 2, None]
    out[..., 1] = A[:, 1, 0, None] * x + A[:, 1, 1, None] * y + A[:, 1, 2, None]
    return out.reshape(p.shape)


def transform_boxes(crop_from_image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Map (N, 4) axis-aligned boxes through (N, 2, 3) scale+translation transforms."""
    A = np.asarray(crop_from_image, dtype=np.float64)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lo = np.einsum("nij,nj->ni", A[:, :, :2], b[:, :2]) + A[:, :, 2]
    hi = np.einsum("nij,nj->ni", A[:, :, :2], b[:, 2:]) + A[:, :, 2]
    return np.concatenate([np.minimum(lo, hi), np.maximum(lo, hi)], axis=1)


def crop_fraction_inside(crop_from_image: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """(N,) share of each crop's area that shows image pixels (the rest is padding)."""
    A = np.asarray(crop_from_image, dtype=np.float64).reshape(-1, 2, 3)
    s = A[:, 0, 0]
    # Image edges (-0.5 .. W - 0.5) in crop coordinates, clipped to the crop (-0.5 .. size - 0.5).
    x0 = np.clip(s * -0.5 + A[:, 0, 2], -0.5, size - 0.5)
    x1 = np.clip(s * (width - 0.5) + A[:, 0, 2], -0.5, size - 0.5)
    y0 = np.clip(s * -0.5 + A[:, 1, 2], -0.5, size - 0.5)
    y1 = np.clip(s * (height - 0.5) + A[:, 1, 2], -0.5, size - 0.5)
    return (x1 - x0) * (y1 - y0) / float(size * size)


def rgb_to_yuv601_limited(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """One RGB colour in the BT.601 limited-range YUV that H.264 video planes hold."""
    r, g, b = (float(c) for c in rgb)
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return tuple(int(np.clip(round(c), 0, 255)) for c in (y, u, v))


@functools.lru_cache(maxsize=16)
def pad_colour_yuv(pad_rgb: tuple, full_range: bool) -> tuple[int, int, int]:
    """The padding colour as (Y, U, V) in the planes' range (computed once per colour)."""
    if not full_range:
        return rgb_to_yuv601_limited(pad_rgb)
    r, g, b = (float(c) for c in pad_rgb)
    return (int(round(0.299 * r + 0.587 * g + 0.114 * b)), int(round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b)),
            int(round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b)))


def window_of(crop_from_image: np.ndarray, size: int) -> tuple[int, int, int]:
    """(x0, y0, side) source window, px, of one (2, 3) transform made by ``crop_transforms``."""
    A = np.asarray(crop_from_image, dtype=np.float64)
    s = float(A[0, 0])
    return (int(round(0.5 - (float(A[0, 2]) + 0.5) / s)), int(round(0.5 - (float(A[1, 2]) + 0.5) / s)),
            int(round(size / s)))


def crop_windows(crop_from_image: np.ndarray, size: int) -> np.ndarray:
    """(N, 3) int64 (x0, y0, side) source windows, px, of (N, 2, 3) ``crop_transforms``.

    The inverse of ``crop_transforms``' x_crop = s (u - x0 + 0.5) - 0.5, s = size / side;
    computed once per camera so the per-crop loop does no float work.
    """
    A = np.asarray(crop_from_image, dtype=np.float64).reshape(-1, 2, 3)
    s = A[:, 0, 0]
    return np.rint(np.column_stack([0.5 - (A[:, 0, 2] + 0.5) / s, 0.5 - (A[:, 1, 2] + 0.5) / s,
                                    size / s])).astype(np.int64)


def _resize_window(plane: np.ndarray, x0: int, y0: int, side: int, size: int, pad,
                   lut: np.ndarray | None = None) -> np.ndarray:
    """plane[y0:y0+side, x0:x0+side] (padded with ``pad`` where outside) resized to size x size.

    cv2.resize maps pixel centres as x_out = s (x_in + 0.5) - 0.5 (s = size / side): the
    transform of ``crop_transforms``. lut: a uint8 (256,) value map applied to the window
    first (``pad`` is in the mapped range); heads are mostly enlarged, so mapping before
    resizing touches several times fewer pixels.
    """
    h, w = plane.shape[:2]
    window = plane[max(y0, 0):min(y0 + side, h), max(x0, 0):min(x0 + side, w)]
    if lut is not None:
        window = cv2.LUT(window, lut)
    if window.shape[0] != side or window.shape[1] != side:
        window = cv2.copyMakeBorder(window, max(-y0, 0), max(y0 + side - h, 0), max(-x0, 0),
                                    max(x0 + side - w, 0), cv2.BORDER_CONSTANT, value=pad)
    return _resize_square(window, size)


def _resize_square(window: np.ndarray, size: int) -> np.ndarray:
    """A (side, side[, C]) uint8 window resized to (size, size[, C]), pixel centres mapped as
    x_out = (size / side) (x_in + 0.5) - 0.5.

    Enlarging: bilinear. Shrinking by f = side / size: bilinear to k * size (k = ceil(f),
    an enlargement), then k x k area averaging, OpenCV's fast whole-factor path; the two
    maps compose to the one above.
    """
    side = window.shape[0]
    if side == size:
        return np.ascontiguousarray(window)
    if side < size:
        return cv2.resize(window, (size, size), interpolation=cv2.INTER_LINEAR)
    k = -(-side // size)
    if side != k * size:
        window = cv2.resize(window, (k * size, k * size), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(window, (size, size), interpolation=cv2.INTER_AREA)


def crop_rgb(image_rgb: np.ndarray, crop_from_image: np.ndarray, spec: CropSpec) -> np.ndarray:
    """(size, size, 3) uint8 crop of an (H, W, 3) RGB image."""
    x0, y0, side = window_of(crop_from_image, spec.size)
    return _resize_window(image_rgb, x0, y0, side, spec.size, tuple(int(c) for c in spec.pad_rgb))


def crop_yuv420(planes: tuple[np.ndarray, np.ndarray, np.ndarray], crop_from_image: np.ndarray,
                spec: CropSpec, full_range: bool = False, to_full_range: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop BT.601 4:2:0 planes Y (H, W), U, V (H/2, W/2) -> Y (size, size), U, V (size/2, size/2).

    Only the crop's pixels are computed: no RGB frame is ever built. The even-aligned window
    is whole chroma samples too (chroma sample (i, j) covers luma 2i..2i+1, 2j..2j+1), so the
    chroma planes get the same scale + translation. full_range: the planes are full range
    (else video range, Y 16..235); to_full_range: stretch video range to full range (what
    JPEG stores). The padding is ``spec.pad_rgb`` in the output's range.
    """
    return crop_yuv420_window(planes, window_of(crop_from_image, spec.size), spec, full_range, to_full_range)


def crop_yuv420_window(planes: tuple[np.ndarray, np.ndarray, np.ndarray], window, spec: CropSpec,
                       full_range: bool = False, to_full_range: bool = False
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``crop_yuv420`` for a precomputed (x0, y0, side) window (a row of ``crop_windows``).

    The range stretch is a lookup table on the source window, before resizing: most heads
    are enlarged, so that maps several times fewer pixels than the output has.
    """
    x0, y0, side = (int(c) for c in window)
    stretch = to_full_range and not full_range
    pad = pad_colour_yuv(tuple(spec.pad_rgb), full_range or stretch)
    luts = (Y_TO_FULL_RANGE, C_TO_FULL_RANGE) if stretch else (None, None)
    half = spec.size // 2
    y = _resize_window(planes[0], x0, y0, side, spec.size, pad[0], luts[0])
    u = _resize_window(planes[1], x0 // 2, y0 // 2, side // 2, half, pad[1], luts[1])
    v = _resize_window(planes[2], x0 // 2, y0 // 2, side // 2, half, pad[2], luts[1])
    return y, u, v
