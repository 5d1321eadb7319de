"""Label-preserving augmentation of head crops (numpy and OpenCV, in the loader workers).

A *sample* is a dict:

- ``image``: (H, W, 3) uint8 RGB;
- ``euler_deg``: (3,) [yaw, pitch, roll] in degrees (docs/conventions.md convention);
- ``R``: (3, 3) R_cam_head;
- optional ``landmarks``: (70, 2) pixel coordinates in ``image`` (pixel centres at
  integers, as OpenCV), NaN where unknown; ``visible``: (70,) 1 / 0 / NaN (unknown).

Every geometric change moves the labels with the pixels:

- the crop (random scale and shift around the stored crop's centre, then a resize to the
  training size) is one affine warp, applied to the image and the landmarks alike;
- a horizontal flip mirrors the camera's x axis and the head's x axis (the left ear becomes
  the right): ``R -> S R S`` with ``S = diag(-1, 1, 1)``, which negates yaw and roll and
  keeps pitch; landmark x becomes ``W - 1 - x`` and the indices swap left for right
  (``FLIP_PERMUTATION_70``).

Colour jitter (one 3x3 colour matrix: brightness, saturation, hue rotation in YIQ, then
contrast about the mean grey) and Gaussian blur change no label.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from annotate.head.face70 import FLIP_PERMUTATION_70, flip_permutation_70  # noqa: F401 (re-exported)

MIRROR_X = np.diag([-1.0, 1.0, 1.0])


def flip_rotation(R: np.ndarray) -> np.ndarray:
    """R_cam_head (..., 3, 3) of the mirrored image: ``S R S``, S = diag(-1, 1, 1)."""
    return MIRROR_X @ R @ MIRROR_X


def flip_sample(sample: dict) -> dict:
    """Mirror a sample left-right, labels included (see the module docstring)."""
    out = dict(sample)
    image = sample["image"]
    width = image.shape[1]
    out["image"] = np.ascontiguousarray(image[:, ::-1])
    out["R"] = flip_rotation(sample["R"])
    # S R S in Euler angles: (-yaw, pitch, -roll), yaw kept in (-180, 180].
    yaw, pitch, roll = sample["euler_deg"]
    out["euler_deg"] = np.array([180.0 if yaw in (180.0, -180.0) else -yaw, pitch, -roll])
    if sample.get("landmarks") is not None:
        lm = sample["landmarks"][FLIP_PERMUTATION_70].copy()
        lm[:, 0] = (width - 1) - lm[:, 0]
        out["landmarks"] = lm
    if sample.get("visible") is not None:
        out["visible"] = sample["visible"][FLIP_PERMUTATION_70]
    return out


def crop_affine(centre_xy: tuple[float, float], side: float, out_size: int) -> np.ndarray:
    """(2, 3) affine taking the square of ``side`` px centred at ``centre_xy`` onto (out_size, out_size).

    Pixel-centre convention (integers at pixel centres, as cv2.warpAffine): the square's
    edges ``centre -+ side / 2`` go to ``-0.5`` and ``out_size - 0.5``.
    """
    k = out_size / side
    cx, cy = centre_xy
    return np.array([[k, 0.0, (side / 2 - cx) * k - 0.5],
                     [0.0, k, (side / 2 - cy) * k - 0.5]])


def warp_sample(sample: dict, M: np.ndarray, out_size: int) -> dict:
    """Apply the affine ``M`` (2, 3) to the image (bilinear, black outside) and the landmarks."""
    out = dict(sample)
    out["image"] = cv2.warpAffine(sample["image"], M, (out_size, out_size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    if sample.get("landmarks") is not None:
        lm = np.asarray(sample["landmarks"], dtype=np.float64)
        out["landmarks"] = (lm @ M[:, :2].T + M[:, 2]).astype(np.float32)
    return out


def _image_centre(image: np.ndarray) -> tuple[float, float]:
    h, w = image.shape[:2]
    return (w - 1) / 2.0, (h - 1) / 2.0


_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def colour_matrix(brightness: float, saturation: float, hue_deg: float) -> np.ndarray:
    """(3, 3) RGB -> RGB: scale by ``brightness``, chroma by ``saturation``, rotate hue by ``hue_deg``."""
    h = np.deg2rad(hue_deg)
    yiq = np.array([[1.0, 0.0, 0.0],
                    [0.0, saturation * np.cos(h), -saturation * np.sin(h)],
                    [0.0, saturation * np.sin(h), saturation * np.cos(h)]])
    return brightness * (_YIQ_TO_RGB @ yiq @ _RGB_TO_YIQ)


def colour_jitter(image: np.ndarray, brightness: float, contrast: float, saturation: float,
                  hue_deg: float) -> np.ndarray:
    """(H, W, 3) uint8 -> uint8: the colour matrix, then contrast about the mean grey.

    Both are linear, so they fold into one 3x4 affine applied by ``cv2.transform``
    (saturating to 0..255): ``out = c M x + (1 - c) g``, g the mean grey of ``M x``.
    """
    M = colour_matrix(brightness, saturation, hue_deg)
    mean_rgb = np.asarray(cv2.mean(image)[:3])
    grey = float(_RGB_TO_YIQ[0] @ (M @ mean_rgb))
    affine = np.hstack([contrast * M, np.full((3, 1), (1.0 - contrast) * grey)])   # cv2 rounds
    return cv2.transform(image, affine)


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation; each factor is drawn uniformly from its range.

    flip: probability of a horizontal flip; scale: crop side as a multiple of the nominal
    crop; shift: centre offset as a fraction of the crop side (each axis);
    brightness / contrast / saturation: factor in [1 - v, 1 + v]; hue: degrees +-;
    blur_prob with sigma in blur_sigma (output pixels).
    """

    flip: float = 0.5
    scale: tuple[float, float] = (0.85, 1.05)
    shift: float = 0.05
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.0
    blur_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.3, 1.5)

    @classmethod
    def from_config(cls, cfg: dict) -> "AugmentConfig":
        d = dict(cfg)
        d["scale"], d["blur_sigma"] = tuple(d["scale"]), tuple(d["blur_sigma"])
        return cls(**d)


def eval_transform(sample: dict, out_size: int, crop_fraction: float = 1.0) -> dict:
    """The deterministic view: a centred square of ``crop_fraction`` x the short side, resized."""
    side = crop_fraction * min(sample["image"].shape[:2])
    return warp_sample(sample, crop_affine(_image_centre(sample["image"]), side, out_size), out_size)


def train_transform(sample: dict, out_size: int, crop_fraction: float, aug: AugmentConfig,
                    rng: np.random.Generator) -> dict:
    """Random crop/scale/shift, flip, colour jitter and blur; labels follow (module docstring).

    All randomness comes from ``rng``, so a sample's augmentation depends only on how the
    caller seeds it (the loader seeds it from the run seed, the epoch and the sample index).
    """
    side = crop_fraction * min(sample["image"].shape[:2]) * rng.uniform(*aug.scale)
    cx, cy = _image_centre(sample["image"])
    dx, dy = rng.uniform(-aug.shift, aug.shift, size=2) * side
    out = warp_sample(sample, crop_affine((cx + dx, cy + dy), side, out_size), out_size)
    if rng.random() < aug.flip:
        out = flip_sample(out)
    factors = rng.uniform(-1.0, 1.0, size=4) * [aug.brightness, aug.contrast, aug.saturation, aug.hue]
    if aug.brightness or aug.contrast or aug.saturation or aug.hue:
        out["image"] = colour_jitter(out["image"], 1.0 + factors[0], 1.0 + factors[1], 1.0 + factors[2], factors[3])
    if rng.random() < aug.blur_prob:
        sigma = rng.uniform(*aug.blur_sigma)
        out["image"] = cv2.GaussianBlur(out["image"], (0, 0), sigmaX=sigma)
    return out
