"""JPEG encoding and decoding (libjpeg-turbo through simplejpeg).

simplejpeg was the fastest codec measured on this project's machines (docs/benchmarks.md), and it
can encode straight from YUV 4:2:0 planes: the crop stage hands it the planes it cut out
of the decoded video and never builds an RGB image. JPEG (JFIF) stores full-range BT.601
YCbCr, so limited-range planes are stretched with a lookup table first. The encoders
release the GIL (simplejpeg runs libjpeg-turbo under ``nogil``), so camera threads encode
in parallel.
"""
from __future__ import annotations

import cv2
import numpy as np
import simplejpeg

# Limited ("TV", Y 16..235, C 16..240) to full range ("PC", 0..255), as lookup tables.
Y_TO_FULL_RANGE = np.clip(np.round((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)
C_TO_FULL_RANGE = np.clip(np.round((np.arange(256) - 128) * 255.0 / 224.0 + 128), 0, 255).astype(np.uint8)
# libjpeg-turbo's fast integer DCT for encoding (simplejpeg's planes encoder defaults to the
# accurate one): a few percent faster, deterministic, no visible difference at quality 90.
FASTDCT = True


def encode_jpeg_rgb(image_rgb: np.ndarray, quality: int = 90) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes, 4:2:0 chroma subsampling."""
    return simplejpeg.encode_jpeg(np.ascontiguousarray(image_rgb), quality=int(quality), colorspace="RGB",
                                  colorsubsampling="420", fastdct=FASTDCT)


def encode_jpeg_yuv420(y: np.ndarray, u: np.ndarray, v: np.ndarray, quality: int = 90,
                       full_range: bool = False) -> bytes:
    """BT.601 YUV 4:2:0 planes Y (H, W), U and V (H/2, W/2) uint8 -> JPEG bytes.

    full_range: the planes already use JPEG's 0..255 range; otherwise they are video
    ("limited") range and are stretched to full range first.
    """
    if not full_range:
        y, u, v = cv2.LUT(y, Y_TO_FULL_RANGE), cv2.LUT(u, C_TO_FULL_RANGE), cv2.LUT(v, C_TO_FULL_RANGE)
    return simplejpeg.encode_jpeg_yuv_planes(np.ascontiguousarray(y), np.ascontiguousarray(u),
                                             np.ascontiguousarray(v), quality=int(quality), fastdct=FASTDCT)


def decode_jpeg_rgb(data: bytes, fastdct: bool = False) -> np.ndarray:
    """JPEG bytes -> (H, W, 3) uint8 RGB. Raises ValueError on data that is not a whole JPEG."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not JPEG data (no start-of-image marker)")
    if not simplejpeg.is_jpeg(data):
        raise ValueError(f"truncated JPEG ({len(data)} bytes, no end-of-image marker)")
    return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=fastdct, fastupsample=fastdct)


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG header without decoding."""
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    return int(width), int(height)
