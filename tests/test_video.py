"""Frame-accurate decoding: every frame of a test video carries its own index as a pattern."""
from fractions import Fraction

import av
import numpy as np
import pytest

from annotate.media.jpeg import encode_jpeg_rgb
from annotate.media.video import (CORRUPT_VIDEO, MISSING_IMAGE, MISSING_VIDEO, UNREADABLE_VIDEO, VideoError,
                                  iter_camera_frames, iter_image_frames, iter_video_frames, missing_frames,
                                  probe_video, select_frames)

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


def test_seek_lands_on_the_right_frames(video):
    # seek_threshold=1 forces the key-frame seek and pts numbering for any start > 0.
    for wanted in ([29, 30, 45], [9], [17, 59], [8, 16]):
        frames = list(iter_video_frames(video, wanted, seek_threshold=1))
        assert [f.index for f in frames] == wanted
        assert [read_index(f.rgb()) for f in frames] == wanted


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
