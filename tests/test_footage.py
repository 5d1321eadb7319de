"""Camera-like footage (annotate.synth.footage) and the YUV entry of the video writer."""
import json
from fractions import Fraction

import av
import numpy as np
import pytest

from annotate.media.video import iter_video_frames
from annotate.media.video_writer import VideoWriter
from annotate.synth.footage import (TexturedScene, add_luma_noise, camera_like_copy, reencode_camera_like,
                                    textured_plane, write_textured_video)
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


def test_textured_plane_spans_its_range_with_detail_at_fine_scales():
    t = textured_plane(np.random.default_rng(0), 96, 128, 40, 200)
    assert t.shape == (96, 128) and t.dtype == np.uint8 and t.min() == 40 and t.max() >= 199
    assert np.abs(np.diff(t.astype(int), axis=1)).mean() > 1.0          # not one smooth ramp


def test_textured_scene_draws_heads_at_their_boxes_over_a_static_room():
    scene = TexturedScene(160, 96, seed=1, noise_sigma=2.0, people=2)
    box = np.array([[40.0, 20.0, 72.0, 52.0]])
    y0, u0, _ = scene.planes(np.array([0]), box)
    y1, _, _ = scene.planes(np.array([0]), box + [60, 0, 60, 0])
    empty, _, _ = scene.planes(np.array([], int), np.zeros((0, 4)))
    room = scene.room[0].astype(int)
    assert y0.shape == (96, 160) and u0.shape == (48, 80)
    # The head's centre is the head texture, not the room; moved with the box; the corner
    # far from any person stays the room plus noise that changes every picture.
    assert np.abs(y0[30:42, 50:62].astype(int) - room[30:42, 50:62]).mean() > 5
    assert np.abs(y1[30:42, 50:62].astype(int) - room[30:42, 50:62]).mean() < 3
    corner = (slice(0, 12), slice(140, 160))
    noise0, noise1 = y0[corner].astype(int) - room[corner], empty[corner].astype(int) - room[corner]
    assert 1.0 < noise0.std() < 3.0 and np.abs(noise0 - noise1).mean() > 0.5


def test_textured_video_has_its_frames_and_key_frames(tmp_path):
    path = tmp_path / "hd_00_02.mp4"
    pictures = [(np.array([0]), np.array([[20.0 + k, 10.0, 52.0 + k, 42.0]])) for k in range(20)]
    assert write_textured_video(path, pictures, 128, 64, seed=0, preset="ultrafast", keyint=8) == 20
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        keys = [round(p.pts * s.time_base * RATE) for p in c.demux(s) if p.size and p.is_keyframe]
    assert keys[:3] == [0, 8, 16]
    assert [f.index for f in iter_video_frames(path)] == list(range(20))
