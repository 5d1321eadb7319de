"""Frame-accurate decoding of a Panoptic camera's frames (video or extracted JPEGs).

Frame numbering is Panoptic's: frame k of ``hdVideos/hd_00_XX.mp4`` is the k-th picture in
presentation order (0-based, the k-th a sequential decoder hands over) and is the same
instant as ``hdFace3d/faceRecon3D_hd%08d.json`` with number k and
``hdImgs/00_XX/00_XX_%08d.jpg`` with number k.

Why PyAV rather than OpenCV's VideoCapture:

- frame-accurate indexing: every packet's pts is read (one demuxing pass, nothing decoded)
  and frame k is the packet with the k-th smallest pts, so a frame is found by its pts
  wherever decoding starts; VideoCapture's ``CAP_PROP_POS_FRAMES`` seeks are approximate on
  H.264 in several FFmpeg builds;
- decoding only what is needed: FFmpeg's per-packet ``skip_frame`` drops pictures nothing
  refers to, undecoded (``annotate.media.frame_plan``); ``VideoCapture.grab()`` still
  decodes every picture;
- threads: ``thread_type='AUTO'`` turns on FFmpeg's frame and slice threading, and the
  decoder releases the GIL, so other Python threads (cropping, JPEG encoding) run alongside;
- zero-copy access to the decoder's YUV 4:2:0 planes: the crop stage warps the planes of the
  head region only and never converts a whole 1080p frame to RGB;
- corrupt pictures are flagged (``is_corrupt``) and errors carry FFmpeg's message.

Selection: ``frames`` is any iterable of frame numbers (``select_frames(start, end, step)``
builds the usual every-N-th / range selection). For each selected frame the decoder gets
the packets from the closed-GOP key frame before it up to it; packets of frames that are not
selected are decoded only if a picture refers to them, and stretches before a key frame
that starts a selected frame's chain are read and dropped. The pictures handed over are
bit for bit those of decoding every frame.

Pictures are handed over as players show them: a video whose container carries a display
matrix (phones record portrait video as landscape pictures with one) has its pictures
turned by the matrix's quarter turn, as FFmpeg's and OpenCV's readers do by default, so a
calibration made on the shown pictures (aniposelib, OpenCV) fits them. ``expect_size`` is
the shown size. A display matrix that mirrors the pictures or turns them by other than a
quarter turn is refused (UNREADABLE_VIDEO).

Failures raise ``VideoError`` with a reason code (``MISSING_VIDEO``, ``UNREADABLE_VIDEO``,
``VIDEO_SIZE_MISMATCH`` with ``expect_size``, ``CORRUPT_VIDEO``), after the frames decoded so
far were yielded, so a caller keeps those and records the rest. A complete video that ends
before a selected frame simply stops yielding: ``missing_frames`` tells the caller which
selected frames never came (``VIDEO_TOO_SHORT``).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from annotate.geometry.image_turns import TURNS_CW_DEG, turn_image
from annotate.media.frame_plan import clean_starts, complete_prefix, decode_segments, presentation_ranks
from annotate.media.nal import picture_is_referenced, stream_framing
from annotate.panoptic.frame_offsets import pictures_of
from annotate.panoptic.layout import SequenceLayout, image_file_pattern

# Reason codes of the rejections a decoding problem produces (annotate.datasets rejections).
MISSING_VIDEO = "missing_video"
UNREADABLE_VIDEO = "unreadable_video"
CORRUPT_VIDEO = "corrupt_video"
VIDEO_TOO_SHORT = "video_too_short"
VIDEO_SIZE_MISMATCH = "video_size_mismatch"
MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"

# FFmpeg colour enums (AVColorSpace / AVColorRange) that matter here.
_BT601_SPACES = {2, 5, 6}          # unspecified (FFmpeg's decoders assume BT.601), BT470BG, SMPTE170M
_FULL_RANGE = 2                    # AVCOL_RANGE_JPEG

class VideoError(RuntimeError):
    """A camera's video (or image) could not be read; ``reason`` is a rejection reason code."""

    def __init__(self, reason: str, path: str | Path, detail: str, frames_read: int = 0):
        super().__init__(f"{path}: {reason}: {detail}")
        self.reason = reason
        self.path = str(path)
        self.detail = detail
        self.frames_read = frames_read


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the first video stream (frame_count may be 0 = unknown)."""

    width: int
    height: int
    frame_count: int
    rate: Fraction
    codec: str
    pix_fmt: str


@dataclass(frozen=True)
class ColourInfo:
    """How a YUV picture's samples map to RGB: BT.601 matrix or not, full or limited range."""

    bt601: bool = True
    full_range: bool = False


class DecodedFrame:
    """One decoded picture of camera video or image folder, frame number ``index``.

    ``rgb()`` (H, W, 3) uint8 RGB; ``yuv420()`` the (Y (H, W), U (H/2, W/2), V (H/2, W/2))
    planes as zero-copy views of the decoder's buffers, or None for a source without them
    (JPEG images). Pixel (col, row) has its centre at (u, v) = (col, row) (OpenCV).
    width, height: of the picture as decoded; ``turn_cw`` (degrees clockwise, a video's
    display matrix) turns both accessors' pictures (copies then) and ``width``/``height``
    are those of the turned picture.
    """

    def __init__(self, index: int, width: int, height: int, colour: ColourInfo,
                 av_frame=None, image_rgb: np.ndarray | None = None, turn_cw: int = 0):
        if turn_cw not in TURNS_CW_DEG:
            raise ValueError(f"turn_cw must be one of {TURNS_CW_DEG}, got {turn_cw!r}")
        self.index = int(index)
        self.turn_cw = int(turn_cw)
        self._decoded_wh = (int(width), int(height))
        self.width, self.height = self._decoded_wh if turn_cw in (0, 180) else self._decoded_wh[::-1]
        self.colour = colour
        self._av_frame = av_frame
        self._rgb = image_rgb

    def yuv420(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(Y, U, V) uint8 planes of a yuv420p video picture (views of the decoder's buffers,
        turned copies for a turned picture), else None."""
        planes = self._decoded_yuv420()
        if planes is None or not self.turn_cw:
            return planes
        y, u, v = (turn_image(p, self.turn_cw) for p in planes)
        return y, u, v

    def _decoded_yuv420(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        f = self._av_frame
        if f is None or f.format.name not in ("yuv420p", "yuvj420p"):
            return None
        planes = []
        for plane in f.planes:
            buf = np.frombuffer(plane, dtype=np.uint8)
            planes.append(buf.reshape(plane.height, plane.line_size)[:, :plane.width])
        return planes[0], planes[1], planes[2]

    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the whole picture (a new array for video pictures)."""
        rgb = self._rgb if self._rgb is not None else self._decoded_rgb()
        return turn_image(rgb, self.turn_cw) if self.turn_cw else rgb

    def _decoded_rgb(self) -> np.ndarray:
        planes = self._decoded_yuv420()
        if planes is not None and self.colour.bt601 and not self.colour.full_range:
            import cv2

            # cv2's I420 conversion is BT.601 limited range, the inverse of what encoders
            # (and annotate.synth) use, and several times faster than swscale.
            w, h = self._decoded_wh
            i420 = np.concatenate([np.ascontiguousarray(p).reshape(-1) for p in planes])
            return cv2.cvtColor(i420.reshape(h * 3 // 2, w), cv2.COLOR_YUV2RGB_I420)
        return self._av_frame.to_ndarray(format="rgb24")


def select_frames(start: int = 0, end: int | None = None, step: int = 1,
                  available: Iterable[int] | None = None) -> np.ndarray:
    """Sorted frame numbers ``start, start+step, ... <= end`` (end inclusive).

    With ``available`` (e.g. the frames that have labels), keep only those in it; ``end``
    None means up to the last available frame (required when ``available`` is None).
    """
    if step < 1 or start < 0:
        raise ValueError(f"frame selection needs start >= 0 and step >= 1, got start={start}, step={step}")
    avail = None if available is None else np.unique(np.asarray(list(available), dtype=np.int64))
    if end is None:
        if avail is None:
            raise ValueError("select_frames: give end or available frames")
        end = int(avail[-1]) if len(avail) else start - 1
    frames = np.arange(start, end + 1, step, dtype=np.int64)
    return frames if avail is None else frames[np.isin(frames, avail)]


def _wanted(frames: Iterable[int] | None) -> np.ndarray | None:
    if frames is None:
        return None
    wanted = np.unique(np.asarray(list(frames) if not isinstance(frames, np.ndarray) else frames, dtype=np.int64))
    if len(wanted) and wanted[0] < 0:
        raise ValueError(f"negative frame number {wanted[0]}")
    return wanted


def _open(path: Path):
    import av

    if not path.is_file():
        raise VideoError(MISSING_VIDEO, path, "no such file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoError(UNREADABLE_VIDEO, path, f"cannot open: {err}") from err
    if not container.streams.video:
        container.close()
        raise VideoError(UNREADABLE_VIDEO, path, "no video stream")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    """Size, frame count (0 if the container does not say), rate, codec of a video file."""
    path = Path(path)
    container = _open(path)
    try:
        s = container.streams.video[0]
        cc = s.codec_context
        return VideoInfo(int(cc.width), int(cc.height), int(s.frames or 0),
                         Fraction(s.average_rate or 0), cc.name, str(cc.pix_fmt))
    finally:
        container.close()


def count_video_frames(path: str | Path) -> int:
    """Frames of a video: the container's count, else its video packets counted (demuxed,
    not decoded). Frame k of the video is Panoptic frame k (module docstring)."""
    path = Path(path)
    info = probe_video(path)
    if info.frame_count > 0:
        return info.frame_count
    import av

    container = _open(path)
    try:
        return sum(1 for packet in container.demux(video=0) if packet.size)
    except av.FFmpegError as err:
        raise VideoError(CORRUPT_VIDEO, path, f"cannot count its frames: {err}") from err
    finally:
        container.close()


@dataclass(frozen=True)
class FrameKinds:
    """Which frames of a video are cheap to decode.

    key: (k,) sorted frame numbers that decode from one picture, the clean starts
    (annotate.media.frame_plan.clean_starts: a key frame nothing before it is shown after
    and nothing after it is shown before); reference: (r,) sorted frame numbers of the
    reference pictures (key frames included), decoded anyway for any later frame of their
    chain; None when the codec's marks are not read (annotate.media.nal).
    """

    key: np.ndarray
    reference: np.ndarray | None


def frame_kinds(path: str | Path) -> FrameKinds:
    """A video's key frames and reference pictures: one demuxing pass, nothing decoded.

    Both empty when frame numbers cannot come from the packets' pts (see
    ``iter_video_frames``). Raises ``VideoError`` (MISSING_VIDEO, UNREADABLE_VIDEO) when the
    file cannot be read.
    """
    path = Path(path)
    container = _open(path)
    try:
        index = _index_packets(container, container.streams.video[0], with_references=True)
    finally:
        container.close()
    if index is None:
        return FrameKinds(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    reference = None if index.referenced is None else np.sort(index.ranks[index.referenced])
    return FrameKinds(np.sort(index.ranks[index.starts]), reference)


def _colour(av_frame) -> ColourInfo:
    full = av_frame.color_range == _FULL_RANGE or av_frame.format.name == "yuvj420p"
    return ColourInfo(bt601=int(av_frame.colorspace) in _BT601_SPACES, full_range=full)


def display_turn_cw(av_frame, path: Path) -> int:
    """The clockwise quarter turn (degrees) that shows a decoded picture as players do: the
    opposite of its display matrix's counter-clockwise rotation (FFmpeg's
    av_display_rotation_get, PyAV's ``VideoFrame.rotation``); 0 without a matrix. A matrix
    that mirrors the picture or turns it by other than a quarter turn: UNREADABLE_VIDEO."""
    for side in getattr(av_frame, "side_data", ()):
        if "DISPLAYMATRIX" in str(side.type):
            m = np.frombuffer(bytes(side), dtype=np.int32)        # 16.16 fixed point, native order
            if len(m) == 9 and float(m[0]) * m[4] - float(m[1]) * m[3] < 0:
                raise VideoError(UNREADABLE_VIDEO, path, "its display matrix mirrors the pictures: re-encode it "
                                                         "as shown")
    rotation = float(getattr(av_frame, "rotation", 0) or 0)
    shown = -rotation % 360 if np.isfinite(rotation) else np.nan
    turn = int(round(shown / 90)) * 90 % 360 if np.isfinite(shown) else 0
    if not np.isfinite(shown) or abs((shown - turn + 180) % 360 - 180) > 0.5:
        raise VideoError(UNREADABLE_VIDEO, path, f"its display matrix turns the pictures by {rotation} degrees "
                                                 f"counter-clockwise, not a quarter turn: re-encode it upright")
    return turn


def _first_picture_turn(path: Path) -> int | None:
    """``display_turn_cw`` of the video's first picture (one picture decoded); None when it
    cannot be decoded (the frames selected may not need it: decoding errors are reported
    where they are met)."""
    import av

    container = _open(path)
    try:
        for av_frame in container.decode(video=0):
            return display_turn_cw(av_frame, path)
    except av.FFmpegError:
        return None
    finally:
        container.close()
    return 0


def _check_size(stream, expect_size: tuple[int, int] | None, path: Path) -> None:
    """Raise VIDEO_SIZE_MISMATCH when the stream's pictures, as shown (``display_turn_cw``),
    are not expect_size (width, height) px."""
    if expect_size is None:
        return
    w, h = int(stream.codec_context.width), int(stream.codec_context.height)
    turn = _first_picture_turn(path) or 0
    shown = (w, h) if turn in (0, 180) else (h, w)
    if shown != tuple(expect_size):
        turned = (f" as shown (its pictures are {w}x{h}, turned {turn} degrees clockwise for display by its "
                  f"container's display matrix)" if turn else "")
        raise VideoError(VIDEO_SIZE_MISMATCH, path, f"video is {shown[0]}x{shown[1]}{turned}, calibration says "
                                                    f"{expect_size[0]}x{expect_size[1]}")


@dataclass
class DecodeCounts:
    """What decoding a selection took: packets read from the file (the numbering pass not
    counted), packets sent to the decoder, and pictures it decoded and handed over (the
    selected ones and those they predict from; pictures dropped as unreferenced are not)."""

    packets_read: int = 0
    packets_sent: int = 0
    pictures: int = 0


@dataclass(frozen=True)
class _PacketIndex:
    """The video stream's packets in decode order, read without decoding.

    ranks: (n,) frame number of each packet; starts: (n,) bool, where decoding may start
    (annotate.media.frame_plan.clean_starts); frame_of_pts: pts -> frame number;
    cut_short: why the packets end before the file says they should (None if they do not);
    referenced: (n,) bool, the packet's picture is a reference picture (annotate.media.nal),
    None when not read or not known for every packet.
    """

    ranks: np.ndarray
    starts: np.ndarray
    frame_of_pts: dict
    cut_short: str | None
    referenced: np.ndarray | None = None


def _index_packets(container, stream, with_references: bool = False) -> _PacketIndex | None:
    """One demuxing pass (nothing decoded) over ``stream``'s packets; None when frame numbers
    cannot come from the pts (a packet without pts, a repeated pts, or one the container
    says to discard), so frames must be counted as they are decoded. ``with_references``
    also reads each picture's reference mark from its NAL header (H.264, HEVC).

    If demuxing fails or ends before the count the container lists, only the packets
    before the last clean start are kept: a picture after it may be shown after one that
    was never read, so its frame number is not certain.
    """
    import av

    framing = stream_framing(stream.codec_context.name, stream.codec_context.extradata) if with_references else None
    pts, key, referenced, cut_short = [], [], [], None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:                      # the demuxer's closing empty packet
                continue
            if packet.pts is None or packet.is_discard:
                return None
            pts.append(packet.pts)
            key.append(packet.is_keyframe)
            if framing is not None:
                referenced.append(picture_is_referenced(memoryview(packet), framing))
    except av.FFmpegError as err:
        cut_short = f"demuxing failed after {len(pts)} packets: {err}"
    if cut_short is None and stream.frames and len(pts) < stream.frames:
        cut_short = f"the file holds {len(pts)} of the {stream.frames} packets its index lists"
    pts = np.asarray(pts, dtype=np.int64)
    ranks = presentation_ranks(pts)
    if ranks is None:
        return None
    starts = clean_starts(ranks, np.asarray(key, dtype=bool))
    refs = np.asarray(referenced, dtype=bool) if framing is not None and None not in referenced else None
    if cut_short is not None:
        keep = complete_prefix(ranks, starts)
        pts, ranks, starts = pts[:keep], ranks[:keep], starts[:keep]
        refs = None if refs is None else refs[:keep]
    return _PacketIndex(ranks, starts, dict(zip(pts.tolist(), ranks.tolist())), cut_short, refs)


def iter_video_frames(path: str | Path, frames: Iterable[int] | None = None, *, threads: int = 0,
                      skip: bool = True, expect_size: tuple[int, int] | None = None,
                      counts: DecodeCounts | None = None) -> Iterator[DecodedFrame]:
    """Decode the selected frames of ``path`` and yield them in increasing order.

    path: an H.264 (or any FFmpeg-readable) video; frame k = k-th picture in presentation
        order (the k-th picture a sequential decoder hands over).
    frames: frame numbers to yield (any order, duplicates ignored); None yields every frame.
    threads: decoder threads (0 = FFmpeg's choice, one per core), with thread_type 'AUTO'.
    skip: decode only what the selected frames need (annotate.media.frame_plan): pictures
        that are neither selected nor referred to are dropped undecoded, and decoding jumps
        over stretches before a key frame that no selected frame predicts from. False
        decodes every picture up to the last selected one (to compare against).
    expect_size: (width, height) px the stream must have (e.g. the calibration's), checked
        on opening, so a caller needs no separate ``probe_video`` (one open per video).
    counts: a ``DecodeCounts`` to add this call's packets and pictures to.

    The stream's packets are read once without decoding first (their pts number the
    frames); a stream whose packets lack pts is decoded sequentially and its pictures
    counted. Each yielded ``DecodedFrame`` stays valid after the iterator moves on (own
    buffers). Raises ``VideoError`` (MISSING_VIDEO / UNREADABLE_VIDEO / VIDEO_SIZE_MISMATCH
    on opening, CORRUPT_VIDEO on a decoding error, a picture the decoder flags as corrupt
    or a file cut short before a selected frame) after yielding every good frame before
    the problem. Frames past the end of a complete video are not yielded: compare with
    ``missing_frames``.
    """
    path = Path(path)
    wanted = _wanted(frames)
    if wanted is not None and len(wanted) == 0:
        return
    container = _open(path)
    try:
        stream = container.streams.video[0]
        _check_size(stream, expect_size, path)
        index = _index_packets(container, stream)
    finally:
        container.close()
    counts = DecodeCounts() if counts is None else counts
    if index is None:
        yield from _counted_frames(path, wanted, threads, counts)
        return
    n = len(index.ranks)
    selected = np.arange(n) if wanted is None else wanted[wanted < n]
    beyond = None if wanted is None else wanted[wanted >= n]
    if skip:
        segments = decode_segments(index.ranks, index.starts, selected)
    else:
        segments = [(0, int(np.flatnonzero(np.isin(index.ranks, selected)).max()))] if len(selected) else []
    read = yield from _decoded_segments(path, index, selected, segments, threads, counts, drop_unreferenced=skip)
    if index.cut_short is not None and (wanted is None or len(beyond)):
        raise VideoError(CORRUPT_VIDEO, path, f"{index.cut_short}; frames from {n} on cannot be read", read)


def _decoder(path: Path, threads: int):
    """An opened container and its first video stream, set up for threaded decoding."""
    container = _open(path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = int(threads)
    return container, stream


def _decoded_segments(path: Path, index: _PacketIndex, selected: np.ndarray, segments: list[tuple[int, int]],
                      threads: int, counts: DecodeCounts, drop_unreferenced: bool = True):
    """Decode the packet runs ``segments`` (decode order, inclusive) and yield the selected
    frames; returns how many were yielded.

    Packets of selected frames are decoded in full; with ``drop_unreferenced`` the others
    in a run with ``skip_frame = NONREF``, so the decoder drops those no picture refers to. Between runs
    the decoder hands over what it holds and is reset, and the packets in between are read
    and dropped undecoded.
    """
    import av

    if not segments:
        return 0
    wanted_packet = np.isin(index.ranks, selected)
    wanted_frame = set(selected.tolist())
    container, stream = _decoder(path, threads)
    cc = stream.codec_context
    read, expected = 0, set()

    def emit(av_frames):
        nonlocal read
        for av_frame in av_frames:
            counts.pictures += 1
            k = index.frame_of_pts.get(av_frame.pts)
            if k is None:
                raise VideoError(UNREADABLE_VIDEO, path, f"decoder gave a picture with pts {av_frame.pts}, "
                                                         f"which no packet has", read)
            if av_frame.is_corrupt:
                raise VideoError(CORRUPT_VIDEO, path, f"decoder flagged frame {k} as corrupt", read)
            if k in wanted_frame:
                expected.discard(k)
                read += 1
                yield DecodedFrame(k, av_frame.width, av_frame.height, _colour(av_frame), av_frame=av_frame,
                                   turn_cw=display_turn_cw(av_frame, path))

    try:
        packets = (p for p in container.demux(stream) if p.size)
        position = -1                                       # packets read so far - 1
        for first, last in segments:
            if position >= 0 and first > position + 1:
                yield from emit(cc.decode(None))            # drain what the decoder holds,
                cc.flush_buffers()                          # then start afresh at a key frame
                _check_all_came(expected, path, read)
            while position < last:
                packet = next(packets, None)
                if packet is None:
                    raise VideoError(CORRUPT_VIDEO, path, f"the file ended at packet {position + 1}, "
                                                          f"before frame {int(index.ranks[last])}", read)
                position += 1
                counts.packets_read += 1
                if position < first:
                    continue                                # jumped over: read, never decoded
                counts.packets_sent += 1
                if wanted_packet[position]:
                    expected.add(int(index.ranks[position]))
                # Set per packet: frame threads copy it when the packet is handed to them.
                cc.skip_frame = "NONREF" if drop_unreferenced and not wanted_packet[position] else "DEFAULT"
                yield from emit(cc.decode(packet))
        yield from emit(cc.decode(None))
        _check_all_came(expected, path, read)
    except av.FFmpegError as err:
        raise VideoError(CORRUPT_VIDEO, path, f"decoding failed after {read} selected frames: {err}", read) from err
    finally:
        container.close()
    return read


def _check_all_came(expected: set, path: Path, read: int) -> None:
    """Every selected frame sent to the decoder came out: a decoder that swallows one
    (a key frame that does not start a clean chain) is a broken file, not a short one."""
    if expected:
        raise VideoError(CORRUPT_VIDEO, path, f"decoder gave no picture for frame {min(expected)}", read)


def _counted_frames(path: Path, wanted: np.ndarray | None, threads: int, counts: DecodeCounts
                    ) -> Iterator[DecodedFrame]:
    """Every picture decoded in order and counted (streams whose packets do not number the
    frames); yields the wanted ones and stops after the last."""
    import av

    container, stream = _decoder(path, threads)
    read = 0
    last = None if wanted is None else int(wanted[-1])
    keep = None if wanted is None else set(wanted.tolist())
    try:
        for index, av_frame in enumerate(container.decode(stream)):
            counts.pictures += 1
            if av_frame.is_corrupt:
                raise VideoError(CORRUPT_VIDEO, path, f"decoder flagged frame {index} as corrupt", read)
            if keep is None or index in keep:
                read += 1
                yield DecodedFrame(index, av_frame.width, av_frame.height, _colour(av_frame), av_frame=av_frame,
                                   turn_cw=display_turn_cw(av_frame, path))
            if last is not None and index >= last:
                return
    except av.FFmpegError as err:
        raise VideoError(CORRUPT_VIDEO, path, f"decoding failed after {read} selected frames: {err}", read) from err
    finally:
        container.close()


def iter_image_frames(image_dir: str | Path, camera: str, frames: Iterable[int]) -> Iterator[DecodedFrame]:
    """Yield ``image_dir/<camera>_%08d.jpg`` (Panoptic ``hdImgs/00_XX/``) for each selected frame.

    A missing or undecodable image raises ``VideoError`` (MISSING_IMAGE / UNREADABLE_IMAGE)
    after the frames before it were yielded; to skip single bad images instead, call
    ``read_image_frame`` per frame.
    """
    wanted = _wanted(frames)
    for k in ([] if wanted is None else wanted):
        yield read_image_frame(image_dir, camera, int(k))


def read_image_frame(image_dir: str | Path, camera: str, frame: int) -> DecodedFrame:
    """One extracted frame ``image_dir/<camera>_%08d.jpg`` as a DecodedFrame (RGB)."""
    path = Path(image_dir) / image_file_pattern(camera).name(frame)
    if not path.is_file():
        raise VideoError(MISSING_IMAGE, path, "no such file")
    from annotate.media.jpeg import decode_jpeg_rgb

    try:
        rgb = decode_jpeg_rgb(path.read_bytes())
    except (ValueError, OSError) as err:
        raise VideoError(UNREADABLE_IMAGE, path, f"cannot decode: {err}") from err
    return DecodedFrame(frame, rgb.shape[1], rgb.shape[0], ColourInfo(True, True), image_rgb=rgb)


def missing_frames(wanted: Iterable[int], yielded: Iterable[int]) -> np.ndarray:
    """Selected frame numbers that were never yielded (e.g. past the end of a short video)."""
    return np.setdiff1d(np.asarray(list(wanted), dtype=np.int64), np.asarray(list(yielded), dtype=np.int64))


def camera_video_path(seq_dir: str | Path, camera: str) -> Path:
    """``<seq_dir>/hdVideos/hd_<camera>.mp4``."""
    seq_dir = Path(seq_dir)
    return SequenceLayout(seq_dir.parent, seq_dir.name).video_file(camera)


def camera_image_dir(seq_dir: str | Path, camera: str) -> Path:
    """``<seq_dir>/hdImgs/<camera>/``."""
    seq_dir = Path(seq_dir)
    return SequenceLayout(seq_dir.parent, seq_dir.name).image_dir(camera)


FRAME_SOURCES = ("auto", "video", "images")


def camera_frame_source(seq_dir: str | Path, camera: str, source: str) -> str:
    """'video' or 'images': where one camera's pictures are read from. ``source`` 'auto' takes
    the camera's video when it exists, else its image folder when that exists, else 'video'
    (whose absence is then reported as a missing video); 'video' and 'images' are kept."""
    if source not in FRAME_SOURCES:
        raise ValueError(f"unknown frame source {source!r} ({', '.join(FRAME_SOURCES)})")
    if source != "auto":
        return source
    if camera_video_path(seq_dir, camera).is_file():
        return "video"
    return "images" if camera_image_dir(seq_dir, camera).is_dir() else "video"


def iter_camera_frames(seq_dir: str | Path, camera: str, frames: Iterable[int] | None = None,
                       source: str = "video", threads: int = 0, offset: int = 0) -> Iterator[DecodedFrame]:
    """The selected frames of one camera of a Panoptic sequence folder.

    source: 'video' reads ``hdVideos/hd_<camera>.mp4``; 'images' reads
    ``hdImgs/<camera>/<camera>_%08d.jpg`` (frames must then be given); 'auto' picks per
    ``camera_frame_source``. offset: the camera's picture number of capture frame 0
    (``annotate.panoptic.frame_offsets``): frame f is read from picture f + offset, and every
    DecodedFrame's ``index`` is the capture frame; frames the camera has no picture of
    (f + offset < 0) are not yielded.
    """
    source = camera_frame_source(seq_dir, camera, source)
    pictures = None
    if frames is not None:
        pictures = pictures_of(list(frames), offset)
        pictures = pictures[pictures >= 0].tolist()
    if source == "video":
        decoded = iter_video_frames(camera_video_path(seq_dir, camera), pictures, threads=threads)
    elif pictures is None:
        raise ValueError("reading hdImgs needs the selected frame numbers")
    else:
        decoded = iter_image_frames(camera_image_dir(seq_dir, camera), camera, pictures)
    return as_capture_frames(decoded, offset) if offset else decoded


def as_capture_frames(decoded: Iterator[DecodedFrame], offset: int) -> Iterator[DecodedFrame]:
    """The pictures numbered as capture frames (picture - offset); those before frame 0 left out."""
    for frame in decoded:
        frame.index -= offset
        if frame.index >= 0:
            yield frame
