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

    from annotate.synth.faults import copy_sequence

    seq_dir = Path(seq_dir)
    dst = copy_sequence(seq_dir, dst_root, name or seq_dir.name)
    videos = sorted((dst / "hdVideos").glob("*.mp4"))
    if not videos:
        raise FileNotFoundError(f"{seq_dir}: no hdVideos/*.mp4 to re-encode")
    Parallel(n_jobs=n_jobs)(delayed(reencode_camera_like)(p, noise_sigma, crf, preset, seed)
                            for seed, p in enumerate(videos))
    return dst


# ---------------------------------------------------------------------- textured footage

def textured_plane(rng: np.random.Generator, height: int, width: int, low: int = 30, high: int = 220,
                   octaves: int = 6) -> np.ndarray:
    """(height, width) uint8 texture: smooth noise summed over ``octaves`` scales (4 px up,
    each half as strong as the next coarser), stretched to ``low..high``. Detail at every
    scale, as walls, clothes and hair have, so an encoder spends bits on it as on a
    recording."""
    import cv2

    total = np.zeros((height, width), np.float32)
    for octave in range(octaves):
        cell = 4 << octave
        grid = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
        total += cv2.resize(grid, (grid.shape[1] * cell, grid.shape[0] * cell),
                            interpolation=cv2.INTER_CUBIC)[:height, :width] * np.float32(1.6 ** octave)
    total -= total.min()
    return (low + total * ((high - low) / max(float(total.max()), 1e-6))).astype(np.uint8)


class TexturedScene:
    """Camera-like YUV 4:2:0 pictures of people moving in a room, for speed measurements.

    A static textured room (its own per camera, ``seed``) and, per person, a textured body
    (a rectangle 2.4 head widths wide, 5 tall, under the head) and a textured head (an
    ellipse filling the head box) drawn where the given head boxes are, plus luma sensor
    noise that differs every picture. Pictures are BT.601 limited range, as
    ``VideoWriter`` writes them.
    """

    NOISE_FIELDS = 4
    NOISE_MARGIN = 64                 # px: each picture's noise is a field shifted by up to this

    def __init__(self, width: int, height: int, seed: int, noise_sigma: float = CAMERA_NOISE_SIGMA,
                 people: int = 16):
        self.width, self.height, self.noise_sigma = width, height, noise_sigma
        self.rng = np.random.default_rng(seed)
        self.room = [textured_plane(self.rng, height, width, 40, 200),
                     textured_plane(self.rng, height // 2, width // 2, 116, 140),
                     textured_plane(self.rng, height // 2, width // 2, 118, 138)]
        # Drawing 2 M normal samples per picture costs more than encoding it: each picture
        # takes one of a few noise fields at a random shift instead. No encoder finds that
        # shift (the room behind does not move with it), so to it the noise is fresh.
        m = self.NOISE_MARGIN
        self.noise = [np.rint(self.rng.standard_normal((height + m, width + m)) * noise_sigma).astype(np.int16)
                      for _ in range(self.NOISE_FIELDS if noise_sigma > 0 else 0)]
        # Per person: (Y, U, V) textures of the body and of the head, 256 px squares.
        self.looks = [[(textured_plane(self.rng, 256, 256, lo, hi), textured_plane(self.rng, 128, 128, 104, 152),
                        textured_plane(self.rng, 128, 128, 104, 152)) for lo, hi in ((30, 180), (60, 230))]
                      for _ in range(people)]

    def _paste(self, planes: list[np.ndarray], look, x0: float, y0: float, x1: float, y1: float,
               ellipse: bool) -> None:
        """Draw ``look`` scaled into the pixel box [x0, x1) x [y0, y1) (clipped to the picture)."""
        import cv2

        for i, (plane, texture) in enumerate(zip(planes, look)):
            s = 1 if i == 0 else 2                              # chroma planes are half size
            a, b = int(round(x0 / s)), int(round(y0 / s))
            w, h = max(int(round((x1 - x0) / s)), 2), max(int(round((y1 - y0) / s)), 2)
            ca, cb = max(a, 0), max(b, 0)
            cw, ch = min(a + w, plane.shape[1]) - ca, min(b + h, plane.shape[0]) - cb
            if cw <= 0 or ch <= 0:
                continue
            patch = cv2.resize(texture, (w, h), interpolation=cv2.INTER_LINEAR)[cb - b:cb - b + ch, ca - a:ca - a + cw]
            target = plane[cb:cb + ch, ca:ca + cw]
            if ellipse:
                mask = np.zeros((h, w), np.uint8)
                cv2.ellipse(mask, (w // 2, h // 2), (w // 2, h // 2), 0, 0, 360, 1, -1)
                mask = mask[cb - b:cb - b + ch, ca - a:ca - a + cw].astype(bool)
                target[mask] = patch[mask]
            else:
                target[:] = patch

    def planes(self, persons: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One picture: Y (H, W), U and V (H/2, W/2) uint8 with each person's body and head
        at ``boxes`` (k, 4) x0, y0, x1, y1 px (head boxes; ``persons`` (k,) their ids)."""
        planes = [p.copy() for p in self.room]
        for person, (x0, y0, x1, y1) in zip(persons, boxes):
            body, head = self.looks[int(person) % len(self.looks)]
            side = x1 - x0
            cx = (x0 + x1) / 2
            self._paste(planes, body, cx - 1.2 * side, y1 - 0.1 * side, cx + 1.2 * side, y1 + 5 * side, False)
            self._paste(planes, head, x0, y0, x1, y1, True)
        if self.noise:
            import cv2

            field = self.noise[self.rng.integers(len(self.noise))]
            dx, dy = self.rng.integers(0, self.NOISE_MARGIN, 2)
            planes[0] = cv2.add(planes[0], field[dy:dy + self.height, dx:dx + self.width], dtype=cv2.CV_8U)
        return planes[0], planes[1], planes[2]


def write_textured_video(path: str | os.PathLike, persons_boxes, width: int, height: int, seed: int,
                         rate=None, crf: int = CAMERA_CRF, preset: str = CAMERA_PRESET,
                         keyint: int | None = None, noise_sigma: float = CAMERA_NOISE_SIGMA) -> int:
    """Encode a ``TexturedScene`` video at ``path``: one picture per item of ``persons_boxes``
    (an iterable of (persons (k,), head boxes (k, 4) px)), libx264 ``preset``/``crf``, a key
    frame at least every ``keyint`` frames; 29.97 fps unless ``rate``. Returns the frame count.
    """
    from annotate.media.video_writer import VideoWriter, video_rate

    scene = TexturedScene(width, height, seed, noise_sigma)
    writer = VideoWriter(Path(path), width, height, rate or video_rate(29.97), crf, preset, keyint)
    count = 0
    try:
        for persons, boxes in persons_boxes:
            writer.write_yuv420(*scene.planes(np.asarray(persons), np.asarray(boxes, dtype=np.float64)))
            count += 1
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return count
