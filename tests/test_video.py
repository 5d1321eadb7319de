"""Frame-accurate decoding: every frame of a test video carries its own index as a pattern."""
from collections import Counter
from fractions import Fraction

import av
import numpy as np
import pytest

from annotate.media.jpeg import encode_jpeg_rgb
from annotate.media.video import (CORRUPT_VIDEO, MISSING_IMAGE, MISSING_VIDEO, UNREADABLE_IMAGE, UNREADABLE_VIDEO,
                                  DecodeCounts, VideoError, iter_camera_frames, iter_image_frames, iter_video_frames,
                                  frame_kinds, missing_frames, probe_video, select_frames)

W, H, BLOCK, BITS = 160, 48, 16, 8
NUM_FRAMES = 60
GOP = 8                        # key frame every 8 frames: seeks land between them


def index_image(k: int) -> np.ndarray:
    """(H, W, 3) RGB: bit b of k as a black/white 16 px block in the top row, plus noise
    below so the encoder has real content to predict."""
    img = np.full((H, W, 3), 60, np.uint8)
    for b in range(BITS):
        if (k >> b) & 1:
            img[:BLOCK, b * BLOCK + 2:(b + 1) * BLOCK - 2] = 255
    rng = np.random.default_rng(k)
    img[32:] = rng.integers(0, 255, (H - 32, W, 3), dtype=np.uint8)
    return img


def read_index(rgb: np.ndarray) -> int:
    row = rgb[BLOCK // 2, :, :].mean(axis=1)
    return sum(1 << b for b in range(BITS) if row[b * BLOCK + BLOCK // 2] > 160)


def encode(path, frames: range, gop: int = GOP) -> None:
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=Fraction(30000, 1001), options={"g": str(gop), "preset": "ultrafast",
                                                                        "crf": "18"})
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for k in frames:
            f = av.VideoFrame.from_ndarray(index_image(k), format="rgb24")
            f.pts = k - frames.start
            c.mux(s.encode(f))
        c.mux(s.encode(None))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "hd_00_07.mp4"
    encode(path, range(NUM_FRAMES))
    return path


def test_index_pattern_survives_encoding(video):
    info = probe_video(video)
    assert (info.width, info.height, info.frame_count, info.codec) == (W, H, NUM_FRAMES, "h264")
    got = [(f.index, read_index(f.rgb())) for f in iter_video_frames(video)]
    assert got == [(k, k) for k in range(NUM_FRAMES)]


@pytest.mark.parametrize("threads", [1, 0])
def test_every_nth_frame_and_range(video, threads):
    wanted = select_frames(5, 40, 7)
    assert wanted.tolist() == [5, 12, 19, 26, 33, 40]
    frames = list(iter_video_frames(video, wanted, threads=threads))
    assert [f.index for f in frames] == wanted.tolist()
    assert [read_index(f.rgb()) for f in frames] == wanted.tolist()


def test_jumps_to_key_frames_land_on_the_right_frames(video):
    for wanted in ([29, 30, 45], [9], [17, 59], [8, 16]):
        frames = list(iter_video_frames(video, wanted))
        assert [f.index for f in frames] == wanted
        assert [read_index(f.rgb()) for f in frames] == wanted


# ---------------------------------------------------------------- decoding only what is needed

LONG = 250                     # frames (the 8 index bits count to 255)
_PAN = np.random.default_rng(1).integers(0, 255, (H - 32, 4 * W, 3), dtype=np.uint8)
_PAN[:] = np.repeat(np.repeat(_PAN[::4, ::4], 4, axis=0), 4, axis=1)[:H - 32, :4 * W]
# libx264 settings: closed GOPs with B-frames (a B-pyramid: some B-frames are references, the
# others not), the same with open GOPs (leading B-frames after each key frame predict from
# the GOP before), and P-frames only.
ENCODINGS = {
    "b_frames": {"g": "24", "bf": "3", "preset": "medium", "crf": "18", "sc_threshold": "0"},
    "open_gop": {"g": "24", "bf": "3", "preset": "medium", "crf": "18", "x264-params": "open-gop=1:scenecut=0"},
    "key_every_10": {"g": "10", "bf": "0", "preset": "ultrafast", "crf": "18", "sc_threshold": "0"},
}


def panning_index_image(k: int) -> np.ndarray:
    """``index_image``'s bits over a texture that pans 2 px a frame: motion an encoder predicts
    (B-frames pay off) instead of fresh noise."""
    img = index_image(k)
    img[32:] = np.roll(_PAN, 2 * k, axis=1)[:, :W]
    return img


def encode_long(path, options: dict, container_options: dict | None = None, codec: str = "libx264",
                fmt: str = "mp4") -> None:
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as c:
        s = c.add_stream(codec, rate=Fraction(30000, 1001), options=options)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for k in range(LONG):
            f = av.VideoFrame.from_ndarray(panning_index_image(k), format="rgb24")
            f.pts = k
            c.mux(s.encode(f))
        c.mux(s.encode(None))


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory):
    """encoding -> (path, {frame: Y plane} from decoding every frame)."""
    out = {}
    for name, options in ENCODINGS.items():
        path = tmp_path_factory.mktemp("long") / f"{name}.mp4"
        encode_long(path, options)
        full = list(iter_video_frames(path, skip=False))
        assert [f.index for f in full] == [read_index(f.rgb()) for f in full] == list(range(LONG))
        out[name] = path, {f.index: np.array(f.yuv420()[0]) for f in full}
    return out


def _stream_shape(path) -> tuple[Counter, list[int], int]:
    """(picture types, key frame pts in frames, pictures left after dropping unreferenced ones)."""
    with av.open(str(path)) as c:
        types = Counter("?IPB"[int(f.pict_type)] for f in c.decode(video=0))      # FFmpeg's AVPictureType
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        keys = sorted(int(p.pts * s.time_base * Fraction(30000, 1001) + Fraction(1, 2))
                      for p in c.demux(s) if p.size and p.is_keyframe)
    with av.open(str(path)) as c:
        c.streams.video[0].codec_context.skip_frame = "NONREF"
        referenced = sum(1 for _ in c.decode(video=0))
    return types, keys, referenced


def test_the_test_videos_have_the_structure_they_are_named_for(long_videos):
    types, keys, referenced = _stream_shape(long_videos["b_frames"][0])
    assert types["B"] > LONG // 2 and keys == list(range(0, LONG, 24)) and referenced < LONG * 3 // 4
    types, keys, _ = _stream_shape(long_videos["open_gop"][0])
    assert types["B"] > LONG // 2 and len(keys) >= LONG // 24
    types, keys, referenced = _stream_shape(long_videos["key_every_10"][0])
    assert "B" not in types and keys == list(range(0, LONG, 10)) and referenced == LONG


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("step", [1, 5, 60])
@pytest.mark.parametrize("start", [0, 1, 7, 13])
def test_every_nth_frame_is_the_frame_asked_for(long_videos, encoding, step, start):
    """Each decoded picture shows the number of the frame asked for, and is bit for bit the
    picture decoding every frame gives (nothing it predicts from was left out)."""
    path, full = long_videos[encoding]
    wanted = select_frames(start, LONG - 1, step).tolist()
    for threads in (1, 0):
        frames = list(iter_video_frames(path, wanted, threads=threads))
        assert [f.index for f in frames] == wanted
        assert [read_index(f.rgb()) for f in frames] == wanted
        for f in frames:
            assert np.array_equal(f.yuv420()[0], full[f.index]), (encoding, step, start, threads, f.index)


def test_unreferenced_pictures_and_stretches_before_key_frames_are_not_decoded(long_videos):
    wanted = select_frames(7, LONG - 1, 60)                  # 7, 67, 127, 187, 247
    counts = {}
    for name in ENCODINGS:
        path = long_videos[name][0]
        every, needed = DecodeCounts(), DecodeCounts()
        assert len(list(iter_video_frames(path, wanted, skip=False, counts=every))) == len(wanted)
        assert len(list(iter_video_frames(path, wanted, counts=needed))) == len(wanted)
        assert every.pictures == every.packets_sent >= wanted[-1] + 1
        counts[name] = every, needed
    every, needed = counts["b_frames"]
    # Closed GOPs of 24: each wanted frame needs its GOP's pictures up to it, no more.
    assert needed.packets_sent < every.packets_sent // 2 and needed.pictures < every.pictures // 3
    every, needed = counts["open_gop"]
    # No clean key frame to jump to: every packet is sent, unreferenced B-frames dropped.
    assert needed.packets_sent == every.packets_sent and needed.pictures < every.pictures * 3 // 4
    every, needed = counts["key_every_10"]
    # P-frames only: 8 pictures per wanted frame (key frame 0 .. 7, 60 .. 67, ...).
    assert needed.pictures == 8 * len(wanted)


def test_key_frames_decode_from_one_picture(long_videos):
    """frame_kinds lists the clean key frames (never an open GOP's key frames, whose leading
    pictures predict from the GOP before); each decodes as one picture, bit for bit."""
    assert frame_kinds(long_videos["b_frames"][0]).key.tolist() == list(range(0, LONG, 24))
    assert frame_kinds(long_videos["key_every_10"][0]).key.tolist() == list(range(0, LONG, 10))
    assert frame_kinds(long_videos["open_gop"][0]).key.tolist() == [0]
    path, full = long_videos["b_frames"]
    counts = DecodeCounts()
    frames = list(iter_video_frames(path, frame_kinds(path).key, counts=counts))
    assert counts.pictures == len(frames) == len(range(0, LONG, 24))
    assert all(np.array_equal(f.yuv420()[0], full[f.index]) for f in frames)
    with pytest.raises(VideoError) as err:
        frame_kinds(path.parent / "absent.mp4")
    assert err.value.reason == MISSING_VIDEO


def _kept_by_nonref_skip(path) -> list[int]:
    """Frame numbers of the pictures FFmpeg decodes with skip_frame NONREF (every packet sent)."""
    with av.open(str(path)) as c:
        pts = sorted(p.pts for p in c.demux(video=0) if p.size)
    with av.open(str(path)) as c:
        c.streams.video[0].codec_context.skip_frame = "NONREF"
        return sorted(pts.index(f.pts) for f in c.decode(video=0))


@pytest.mark.parametrize("codec, fmt", [("libx264", "mp4"), ("libx264", "mpegts"), ("libx265", "mp4")])
def test_reference_pictures_are_those_the_decoder_keeps(tmp_path, codec, fmt):
    """The reference marks read from the NAL headers (length-prefixed H.264 and HEVC, Annex B
    H.264 in MPEG-TS) name exactly the pictures FFmpeg's NONREF skip keeps."""
    path = tmp_path / f"v.{'ts' if fmt == 'mpegts' else 'mp4'}"
    options = ({"g": "24", "bf": "3", "preset": "medium", "crf": "18", "sc_threshold": "0"} if codec == "libx264"
               else {"g": "24", "preset": "fast", "x265-params": "bframes=3:b-pyramid=1:keyint=24:log-level=error"})
    encode_long(path, options, codec=codec, fmt=fmt)
    kinds = frame_kinds(path)
    kept = _kept_by_nonref_skip(path)
    assert kinds.reference is not None and kinds.reference.tolist() == kept
    assert 0 < len(kept) < LONG * 3 // 4 and set(kinds.key.tolist()) <= set(kept)


def test_a_file_cut_short_yields_the_frames_it_holds_then_says_so(long_videos, tmp_path):
    path = tmp_path / "faststart.mp4"
    encode_long(path, ENCODINGS["b_frames"], {"movflags": "faststart"})     # index first: it opens
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 3 // 5])
    got = []
    with pytest.raises(VideoError) as err:
        for f in iter_video_frames(cut, select_frames(0, LONG - 1, 5)):
            got.append((f.index, read_index(f.rgb())))
    assert err.value.reason == CORRUPT_VIDEO and "packets" in err.value.detail
    assert got and all(k == shown for k, shown in got) and [k for k, _ in got] == list(range(0, 5 * len(got), 5))


def test_frames_kept_after_iterating_are_intact(video):
    frames = list(iter_video_frames(video, [3, 4, 50]))
    assert [read_index(f.rgb()) for f in frames] == [3, 4, 50]
    y, u, v = frames[0].yuv420()
    assert y.shape == (H, W) and u.shape == v.shape == (H // 2, W // 2)


def test_frames_past_the_end_are_reported_missing(video):
    wanted = [10, NUM_FRAMES - 1, NUM_FRAMES, NUM_FRAMES + 5]
    got = [f.index for f in iter_video_frames(video, wanted)]
    assert got == [10, NUM_FRAMES - 1]
    assert missing_frames(wanted, got).tolist() == [NUM_FRAMES, NUM_FRAMES + 5]


def test_selection_helpers():
    assert select_frames(0, None, 2, available=[1, 2, 3, 4, 7, 8]).tolist() == [2, 4, 8]
    assert select_frames(3, 3).tolist() == [3]
    with pytest.raises(ValueError):
        select_frames(0, None)
    with pytest.raises(ValueError):
        select_frames(0, 5, 0)


def test_missing_and_garbage_files_raise_with_reasons(tmp_path):
    with pytest.raises(VideoError) as err:
        list(iter_video_frames(tmp_path / "hd_00_01.mp4"))
    assert err.value.reason == MISSING_VIDEO
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoError) as err:
        list(iter_video_frames(junk))
    assert err.value.reason == UNREADABLE_VIDEO


def test_truncated_video_yields_good_frames_then_stops_or_raises(video, tmp_path):
    """A cut file either fails to open (moov at the end) or yields a prefix and then raises
    or ends: never a wrong frame."""
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    frames = []
    try:
        for f in iter_video_frames(cut):
            frames.append((f.index, read_index(f.rgb())))
    except VideoError as err:
        assert err.reason in (UNREADABLE_VIDEO, CORRUPT_VIDEO)
    assert all(k == idx for k, idx in frames)
    assert len(frames) < NUM_FRAMES


def test_extracted_images_as_input(tmp_path):
    seq = tmp_path / "seq"
    folder = seq / "hdImgs" / "00_03"
    folder.mkdir(parents=True)
    for k in (4, 5, 9):
        (folder / f"00_03_{k:08d}.jpg").write_bytes(encode_jpeg_rgb(index_image(k), 95))
    frames = list(iter_camera_frames(seq, "00_03", [4, 9], source="images"))
    assert [(f.index, read_index(f.rgb())) for f in frames] == [(4, 4), (9, 9)]
    assert frames[0].yuv420() is None
    with pytest.raises(VideoError) as err:
        list(iter_image_frames(folder, "00_03", [5, 6]))
    assert err.value.reason == MISSING_IMAGE
    good = (folder / "00_03_00000009.jpg").read_bytes()
    (folder / "00_03_00000009.jpg").write_bytes(good[: len(good) // 2])         # cut short, as by a full disk
    (folder / "00_03_00000005.jpg").write_bytes(b"GIF89a" + good[2:])
    for frame, says in ((9, "truncated JPEG"), (5, "not JPEG data")):
        with pytest.raises(VideoError) as err:
            list(iter_image_frames(folder, "00_03", [frame]))
        assert err.value.reason == UNREADABLE_IMAGE and says in str(err.value) and f"{frame:08d}.jpg" in str(err.value)


def test_other_codecs_give_key_frames_only(tmp_path):
    """A codec whose reference marks are not read (MPEG-4 part 2): key frames, no reference
    pictures, and the plan's reader says so for that camera."""
    from annotate.stages.dataset import VideoFrameKinds

    path = tmp_path / "seq" / "hdVideos" / "hd_00_07.mp4"
    path.parent.mkdir(parents=True)
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("mpeg4", rate=Fraction(30000, 1001), options={"g": "10"})
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for k in range(30):
            f = av.VideoFrame.from_ndarray(index_image(k), format="rgb24")
            f.pts = k
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    kinds = frame_kinds(path)
    assert kinds.key.tolist() == [0, 10, 20] and kinds.reference is None
    reader = VideoFrameKinds(tmp_path, show_progress=False)
    key, reference = reader("seq", "00_07")
    assert key.tolist() == [0, 10, 20] and reference is None
    assert len(reader.unknown) == 1 and "reference pictures not read" in reader.unknown[0]
    key, reference = reader("seq", "00_08")
    assert len(key) == 0 and "missing_video" in reader.unknown[1]


def test_auto_frame_source_takes_each_cameras_video_else_its_images(tmp_path):
    from annotate.media.video import camera_frame_source, camera_image_dir, camera_video_path

    seq = tmp_path / "capture"
    camera_video_path(seq, "00_00").parent.mkdir(parents=True)
    camera_video_path(seq, "00_00").write_bytes(b"")
    camera_image_dir(seq, "00_00").mkdir(parents=True)                  # both: the video
    camera_image_dir(seq, "00_01").mkdir(parents=True)                  # images only
    assert [camera_frame_source(seq, c, "auto") for c in ("00_00", "00_01", "00_02")] == ["video", "images", "video"]
    assert camera_frame_source(seq, "00_01", "video") == "video"        # forced
    with pytest.raises(ValueError, match="unknown frame source"):
        camera_frame_source(seq, "00_00", "frames")


def encode_tagged(path, frames: range, rotation_ccw: float | None, hflip: bool = False) -> None:
    """The index video, losslessly (qp 0), with a display matrix rotating the pictures
    counter-clockwise by rotation_ccw (as phones tag portrait video; hflip: then mirrored),
    or none."""
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=30, options={"g": str(GOP), "preset": "ultrafast", "qp": "0",
                                                      "threads": "1"})
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        if rotation_ccw is not None:
            s.set_display_rotation(rotation_ccw, hflip=hflip)
        for k in frames:
            f = av.VideoFrame.from_ndarray(index_image(k), format="rgb24")
            f.pts = k - frames.start
            c.mux(s.encode(f))
        c.mux(s.encode(None))


@pytest.mark.parametrize("rotation_ccw, turn_cw", [(-90, 90), (90, 270), (180, 180)])
def test_a_video_with_a_display_matrix_is_handed_over_as_players_show_it(tmp_path, rotation_ccw, turn_cw):
    """Pictures are turned as the container's display matrix says, in the direction
    OpenCV's reader (the one calibration tools read videos with) turns them."""
    import cv2

    from annotate.geometry.image_turns import turn_image
    from annotate.media.video import VIDEO_SIZE_MISMATCH

    plain, tagged = tmp_path / "hd_00_01.mp4", tmp_path / "hd_00_02.mp4"
    encode_tagged(plain, range(12), None)
    encode_tagged(tagged, range(12), rotation_ccw)
    shown = (W, H) if turn_cw == 180 else (H, W)
    upright = {f.index: f for f in iter_video_frames(plain, [0, 5, 11])}
    turned = list(iter_video_frames(tagged, [0, 5, 11], expect_size=shown))
    assert [f.index for f in turned] == [0, 5, 11]
    for f in turned:
        assert (f.width, f.height, f.turn_cw) == (*shown, turn_cw)
        for got, want in zip(f.yuv420(), upright[f.index].yuv420()):
            np.testing.assert_array_equal(got, turn_image(want, turn_cw))
        np.testing.assert_array_equal(f.rgb(), turn_image(upright[f.index].rgb(), turn_cw))
        assert f.rgb().shape == (shown[1], shown[0], 3)
    capture = cv2.VideoCapture(str(tagged))
    ok, bgr = capture.read()
    capture.release()
    assert ok and bgr.shape[:2] == turned[0].rgb().shape[:2]
    assert np.abs(bgr[..., ::-1].astype(int) - turned[0].rgb()).mean() < 3     # OpenCV's own YUV -> RGB
    if turn_cw != 180:
        with pytest.raises(VideoError) as err:
            list(iter_video_frames(tagged, [0], expect_size=(W, H)))
        assert err.value.reason == VIDEO_SIZE_MISMATCH and f"turned {turn_cw} degrees clockwise" in str(err.value)


@pytest.mark.parametrize("rotation_ccw, hflip, says", [(30, False, "not a quarter turn"), (90, True, "mirrors")])
def test_a_display_matrix_that_is_not_a_quarter_turn_is_refused(tmp_path, rotation_ccw, hflip, says):
    path = tmp_path / "hd_00_01.mp4"
    encode_tagged(path, range(4), rotation_ccw, hflip)
    with pytest.raises(VideoError) as err:
        list(iter_video_frames(path, [0]))
    assert err.value.reason == UNREADABLE_VIDEO and says in str(err.value) and "hd_00_01.mp4" in str(err.value)
