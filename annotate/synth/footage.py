"""A camera-like copy of a synthetic sequence: same pictures, real-camera decoding cost.

The synthetic renderer writes flat-shaded pictures with x264's 'ultrafast' preset
(Constrained Baseline: CAVLC, no deblocking filter, no B-frames), which decodes about
2-3x faster per frame than simple synthetic 1080p footage measured with PyAV and OpenCV
(240-340 frames/s per core) and faster still than real camera footage. Any throughput
figure measured *relative to decoding* (the crop stage's) is therefore pessimistic on it.

``camera_like_copy`` writes a copy of a sequence whose videos carry the same pictures
plus temporal sensor noise (Gaussian, on luma, ``noise_sigma`` code values, a fresh
pattern each frame, as a real sensor's read and shot noise) encoded the way FFmpeg
encodes H.264 by default (libx264 preset 'medium', CRF 23: High profile, CABAC, in-loop
deblocking, B-frames): the stream features a real recording has and the synthetic
defaults skip. Labels and calibration are unchanged (hard links), so every stage runs on
the copy as on the original.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# FFmpeg's libx264 defaults: what `ffmpeg -i in -c:v libx264 out.mp4` writes.
CAMERA_PRESET = "medium"
CAMERA_CRF = 23
CAMERA_NOISE_SIGMA = 2.0


def add_luma_noise(y: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) uint8 luma plus N(0, sigma^2) noise, rounded and clipped to 0..255 (a new array)."""
    noisy = y.astype(np.float32) + rng.standard_normal(y.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def reencode_camera_like(path: str | os.PathLike, noise_sigma: float = CAMERA_NOISE_SIGMA,
                         crf: int = CAMERA_CRF, preset: str = CAMERA_PRESET, seed: int = 0) -> int:
    """Re-encode one video in place (new file renamed over it): its pictures plus sensor noise,
    libx264 ``preset``/``crf``. Returns the number of frames written.

    A hard-linked source is never written through: the new file replaces the link.
    """
    from annotate.media.video import iter_video_frames
    from annotate.media.video_writer import rewrite_video

    path = Path(path)
    rng = np.random.default_rng(seed)
    count = 0
    with rewrite_video(path, crf, preset) as writer:
        for frame in iter_video_frames(path, threads=1):
            planes = frame.yuv420()
            if planes is None or frame.colour.full_range:
                raise ValueError(f"{path}: expected limited-range yuv420p video, frame {frame.index} is not")
            y, u, v = planes
            writer.write_yuv420(add_luma_noise(y, noise_sigma, rng) if noise_sigma > 0 else y, u, v)
            count += 1
    return count


def camera_like_copy(seq_dir: str | os.PathLike, dst_root: str | os.PathLike, name: str | None = None,
                     noise_sigma: float = CAMERA_NOISE_SIGMA, crf: int = CAMERA_CRF,
                     preset: str = CAMERA_PRESET, n_jobs: int = 2) -> Path:
    """Copy the sequence folder ``seq_dir`` to ``<dst_root>/<name>/`` (default: same name)
    and re-encode every ``hdVideos/*.mp4`` there camera-like; return the new folder.

    Parallel over videos (joblib processes, one encoder thread each). Each video gets its
    own noise seed (its position in sorted order), so the copy is reproducible.
    """
    from joblib import Parallel, delayed

    from annotate.audit.faults import copy_sequence

    seq_dir = Path(seq_dir)
    dst = copy_sequence(seq_dir, dst_root, name or seq_dir.name)
    videos = sorted((dst / "hdVideos").glob("*.mp4"))
    if not videos:
        raise FileNotFoundError(f"{seq_dir}: no hdVideos/*.mp4 to re-encode")
    Parallel(n_jobs=n_jobs)(delayed(reencode_camera_like)(p, noise_sigma, crf, preset, seed)
                            for seed, p in enumerate(videos))
    return dst
