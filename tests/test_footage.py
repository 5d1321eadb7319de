"""Camera-like footage (annotate.synth.footage) and the YUV entry of the video writer."""
import json
from fractions import Fraction

import av
import numpy as np
import pytest

from annotate.media.video import iter_video_frames
from annotate.media.video_writer import VideoWriter
from annotate.synth.footage import add_luma_noise, camera_like_copy, reencode_camera_like
from tests.test_video import NUM_FRAMES, encode, read_index

RATE = Fraction(30000, 1001)


def random_planes(rng, w=64, h=48):
    """Limited-range BT.601 planes Y (h, w), U, V (h/2, w/2)."""
    return (rng.integers(16, 236, (h, w), dtype=np.uint8), rng.integers(16, 241, (h // 2, w // 2), dtype=np.uint8),
            rng.integers(16, 241, (h // 2, w // 2), dtype=np.uint8))


def test_write_yuv420_round_trip_is_exact_when_lossless(tmp_path):
    rng = np.random.default_rng(3)
    frames = [random_planes(rng) for _ in range(4)]
    path = tmp_path / "hd_00_00.mp4"
    writer = VideoWriter(path, 64, 48, RATE, crf=0, preset="ultrafast")        # crf 0: x264 lossless
    for planes in frames:
        writer.write_yuv420(*planes)
    writer.close()
    decoded = [[np.array(p) for p in f.yuv420()] for f in iter_video_frames(path)]
    assert len(decoded) == len(frames)
    for want, got in zip(frames, decoded):
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b)


def test_write_yuv420_rejects_planes_of_another_size(tmp_path):
    writer = VideoWriter(tmp_path / "hd_00_00.mp4", 64, 48, RATE, crf=18, preset="ultrafast")
    y, u, v = random_planes(np.random.default_rng(0), w=64, h=48)
    with pytest.raises(ValueError, match="do not fit a 64x48"):
        writer.write_yuv420(y, u[:, :-2], v)
    writer.abort()
    assert not list(tmp_path.iterdir())                     # nothing left behind


def test_luma_noise_has_the_asked_spread_and_stays_in_range():
    rng = np.random.default_rng(0)
    grey = np.full((400, 400), 128, np.uint8)
    diff = add_luma_noise(grey, 2.0, rng).astype(float) - 128
    assert abs(diff.mean()) < 0.05 and abs(diff.std() - 2.0) < 0.1
    assert add_luma_noise(np.full((8, 8), 255, np.uint8), 5.0, rng).max() == 255      # clipped, no wrap
    assert add_luma_noise(np.zeros((8, 8), np.uint8), 5.0, rng).min() == 0


def test_camera_like_reencode_has_b_frames_and_keeps_every_frame_number(tmp_path):
    """The High-profile re-encode reorders frames (B-frames); frame k must still be picture k."""
    path = tmp_path / "hd_00_07.mp4"
    encode(path, range(NUM_FRAMES))
    assert reencode_camera_like(path, noise_sigma=1.0) == NUM_FRAMES
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        assert cc.profile == "High" and cc.has_b_frames
    got = [(f.index, read_index(f.rgb())) for f in iter_video_frames(path)]
    assert got == [(k, k) for k in range(NUM_FRAMES)]


def test_camera_like_copy_leaves_the_source_untouched(tmp_path):
    src = tmp_path / "src" / "seq_a"
    (src / "hdVideos").mkdir(parents=True)
    (src / "calibration_seq_a.json").write_text(json.dumps({"cameras": []}))
    encode(src / "hdVideos" / "hd_00_07.mp4", range(12))
    before = (src / "hdVideos" / "hd_00_07.mp4").read_bytes()
    dst = camera_like_copy(src, tmp_path / "dst", n_jobs=1)
    assert dst == tmp_path / "dst" / "seq_a" and (dst / "calibration_seq_a.json").is_file()
    assert (src / "hdVideos" / "hd_00_07.mp4").read_bytes() == before      # a hard link is replaced, not written
    assert (dst / "hdVideos" / "hd_00_07.mp4").read_bytes() != before
    assert [f.index for f in iter_video_frames(dst / "hdVideos" / "hd_00_07.mp4")] == list(range(12))


def test_camera_like_copy_needs_videos(tmp_path):
    src = tmp_path / "seq_b"
    src.mkdir()
    (src / "calibration_seq_b.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no hdVideos"):
        camera_like_copy(src, tmp_path / "dst", n_jobs=1)
