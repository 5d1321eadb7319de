"""H.264 video writing in the Panoptic HD layout (``hdVideos/hd_00_XX.mp4``).

``VideoWriter`` encodes RGB frames with libx264 (yuv420p, BT.601 limited range, tagged so
decoders convert back with the right matrix) into a temporary file that ``close()`` renames
into place, so a reader never sees a half-written video. Used by the synthetic renderer
(``annotate.synth.videos.render_videos``).
"""
from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from annotate.core.atomic import clear_leftovers, temporary_sibling


def video_path(seq_dir: str | os.PathLike, camera_name: str) -> Path:
    """``seq_dir/hdVideos/hd_00_XX.mp4`` for camera ``"00_XX"`` (Panoptic HD naming)."""
    return Path(seq_dir) / "hdVideos" / f"hd_00_{camera_name.split('_')[-1]}.mp4"


def video_rate(fps: float) -> Fraction:
    """Exact frame rate: 29.97 -> 30000/1001 (NTSC, as Panoptic's HD cameras), else as given."""
    if abs(fps - 30000 / 1001) < 1e-3:
        return Fraction(30000, 1001)
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """H.264 (libx264, yuv420p, BT.601 limited range) mp4 written to a temporary name and
    renamed into place by ``close()``; ``abort()`` removes the temporary file. ``keyint``:
    the longest run of frames between key frames (None: libx264's default, 250).

    The YUV buffer and the AVFrame are allocated once and reused: libx264 copies each
    picture into its own frame pool during ``encode``, and fresh 1080p buffers per frame
    cost page faults that rival the encoding itself.
    """

    def __init__(self, path: Path, width: int, height: int, rate: Fraction, crf: int, preset: str,
                 keyint: int | None = None):
        import av
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even image sizes, got {width}x{height}")
        self.path = path
        clear_leftovers(path)
        self.tmp_path = temporary_sibling(path)
        self.width, self.height = width, height
        self._container = av.open(str(self.tmp_path), mode="w", format="mp4")
        try:
            options = {"crf": str(crf), "preset": preset}
            if keyint is not None:
                options["g"] = str(int(keyint))          # key frame at least every keyint frames
            stream = self._container.add_stream("libx264", rate=rate, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            # One thread per encoder: the parallelism is many encoders at once.
            stream.codec_context.thread_count = 1
            # Tag what cv2's I420 conversion produces (FFmpeg enums: AVCOL_RANGE_MPEG = 1,
            # AVCOL_SPC/PRI/TRC_SMPTE170M = 6, i.e. BT.601), so players and decoders that
            # would assume BT.709 for HD convert back with the right matrix.
            stream.codec_context.color_range = 1
            stream.codec_context.colorspace = 6
            stream.codec_context.color_primaries = 6
            stream.codec_context.color_trc = 6
        except BaseException:
            self._container.close()
            self.tmp_path.unlink(missing_ok=True)
            raise
        self._stream = stream
        self._yuv = np.empty((height * 3 // 2, width), dtype=np.uint8)
        self._frame = av.VideoFrame(width, height, "yuv420p")
        self._count = 0

    def _plane_views(self) -> list[np.ndarray]:
        """Writable (h, w) views of the AVFrame's Y, U, V planes (rows may be padded)."""
        views = []
        for plane in self._frame.planes:
            buf = np.frombuffer(plane, dtype=np.uint8)
            views.append(buf.reshape(plane.height, plane.line_size)[:, :plane.width])
        return views

    def write(self, image_rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        import cv2
        # OpenCV's I420 conversion is BT.601 limited range (FFmpeg's default when decoding)
        # and several times faster than swscale from rgb24.
        cv2.cvtColor(image_rgb, cv2.COLOR_RGB2YUV_I420, dst=self._yuv)
        h, w = self.height, self.width
        q = h * w // 4
        chroma = self._yuv[h:].reshape(-1)
        self.write_yuv420(self._yuv[:h], chroma[:q].reshape(h // 2, w // 2), chroma[q:].reshape(h // 2, w // 2))

    def write_yuv420(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Append one frame given as BT.601 limited-range planes Y (H, W), U and V (H/2, W/2) uint8."""
        h, w = self.height, self.width
        if y.shape != (h, w) or u.shape != (h // 2, w // 2) or v.shape != (h // 2, w // 2):
            raise ValueError(f"planes {y.shape}, {u.shape}, {v.shape} do not fit a {w}x{h} yuv420p frame")
        self._frame.make_writable()                 # copies only if the encoder kept a ref
        y_plane, u_plane, v_plane = self._plane_views()
        y_plane[:] = y
        u_plane[:] = u
        v_plane[:] = v
        self._frame.pts = self._count
        self._count += 1
        self._container.mux(self._stream.encode(self._frame))

    def close(self) -> None:
        """Flush the encoder, finish the file and move it to its final name."""
        self._container.mux(self._stream.encode(None))
        self._container.close()
        os.replace(self.tmp_path, self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        try:
            self._container.close()
        except Exception:                                      # noqa: BLE001 (already broken)
            pass
        self.tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def rewrite_video(path: str | os.PathLike, crf: int, preset: str) -> Iterator[VideoWriter]:
    """A ``VideoWriter`` for a new version of the video at ``path``: same size and frame rate
    (29.97 when the container does not say), written beside it and renamed over it when the
    block ends; dropped if the block raises. The old file can be read inside the block, and
    a hard link to it is replaced, never written through.
    """
    from annotate.media.video import probe_video

    path = Path(path)
    info = probe_video(path)
    writer = VideoWriter(path, info.width, info.height, info.rate if info.rate else video_rate(29.97), crf, preset)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    writer.close()
