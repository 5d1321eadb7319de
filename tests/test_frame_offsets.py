"""Cameras not in step: ingest.frame_offsets, from the setting to every reader of pictures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotate.config import ConfigError, resolve_config, stage_config
from annotate.datasets.build import _decoded_frames
from annotate.media.jpeg import encode_jpeg_rgb
from annotate.media.video import MISSING_IMAGE, iter_camera_frames
from annotate.panoptic.frame_offsets import frames_of, parse_frame_offsets, pictures_of
from annotate.panoptic.ingest import ingest_sequence
from annotate.panoptic.tables import load_frame_offsets, load_frames
from annotate.stages.dataset import VideoFrameKinds
from haggling_variants import write_renumbered_sequence
from test_video import H, W, encode, index_image, read_index

NAMES = ("00_03", "00_06", "00_12")


def test_the_setting_gives_every_camera_an_offset():
    assert parse_frame_offsets(None, NAMES) == {"00_03": 0, "00_06": 0, "00_12": 0}
    assert parse_frame_offsets({"00_12": -7}, NAMES) == {"00_03": 0, "00_06": 0, "00_12": -7}
    assert parse_frame_offsets({"00_12": np.int64(3)}, NAMES)["00_12"] == 3


@pytest.mark.parametrize("setting, says", [
    ({"00_99": 3}, r"00_99.*00_03"),                   # not a camera of the calibration: its cameras listed
    ({10: 3}, "quote them"),                          # YAML's reading of an unquoted 00_12
    ({"00_12": 2.5}, "whole number"),
    ({"00_12": True}, "whole number"),
    (5, "mapping"),
])
def test_bad_settings_are_refused_naming_the_setting(setting, says):
    with pytest.raises(ValueError, match=says) as err:
        parse_frame_offsets(setting, NAMES)
    assert "ingest.frame_offsets" in str(err.value)


def test_pictures_and_frames():
    assert pictures_of([0, 5, 10], -3).tolist() == [-3, 2, 7]
    assert frames_of([0, 1, 2, 7], 2).tolist() == [0, 5]           # pictures before frame 0 are not frames


def test_config_names_sequences_and_each_sequence_sees_its_own():
    with pytest.raises(ConfigError, match="other_seq"):
        resolve_config({"ingest": {"frame_offsets": {"other_seq": {"00_01": 2}}}})
    cfg = resolve_config({"source": "panoptic", "panoptic": {"root": "/data", "sequences": ["a", "b"]},
                          "ingest": {"frame_offsets": {"a": {"00_01": 2}}}})
    # A per-sequence rule's params hold its own entry only: changing a's offsets reruns a alone.
    assert stage_config(cfg, "ingest", "a")["ingest"]["frame_offsets"] == {"a": {"00_01": 2}}
    assert stage_config(cfg, "ingest", "b")["ingest"]["frame_offsets"] == {}
    assert stage_config(cfg, "audit")["ingest"]["frame_offsets"] == {"a": {"00_01": 2}}


def test_ingest_lists_capture_frames_and_records_the_offsets(tmp_path):
    shifts = {"00_12": 7, "00_23": -4500}
    write_renumbered_sequence(tmp_path, shifts)
    plain = ingest_sequence(tmp_path, "haggling_demo", tmp_path / "plain")
    assert load_frames(tmp_path / "plain" / "frames.parquet").frame.tolist() == [0, 4500, 4507, 4848, 9348, 9355]
    assert plain.frame_offsets == {}
    summary = ingest_sequence(tmp_path, "haggling_demo", tmp_path / "out", frame_offsets=shifts)
    frames = load_frames(tmp_path / "out" / "frames.parquet")
    assert frames.frame.tolist() == [4500, 9348] and frames.cameras_with_media.tolist() == [5, 5]
    assert summary.frame_offsets == shifts and "picture = frame + 7 (00_12)" in str(summary)
    offsets = load_frame_offsets(tmp_path / "out" / "cameras.parquet")
    assert offsets == {"00_03": 0, "00_06": 0, "00_12": 7, "00_13": 0, "00_23": -4500}
    with pytest.raises(ValueError, match="00_99"):
        ingest_sequence(tmp_path, "haggling_demo", tmp_path / "bad", frame_offsets={"00_99": 1})


def test_readers_hand_over_capture_frames(tmp_path):
    seq = tmp_path / "seq"
    folder = seq / "hdImgs" / "00_03"
    folder.mkdir(parents=True)
    for k in range(3, 9):
        (folder / f"00_03_{k:08d}.jpg").write_bytes(encode_jpeg_rgb(index_image(k), 95))
    video = seq / "hdVideos" / "hd_00_04.mp4"
    video.parent.mkdir(parents=True)
    encode(video, range(20))
    # Images: picture = frame + 3.
    got = [(f.index, read_index(f.rgb())) for f in iter_camera_frames(seq, "00_03", [0, 2, 5], "images", offset=3)]
    assert got == [(0, 3), (2, 5), (5, 8)]
    # Video: picture = frame + 4, and frame - 2 (a camera started late: frames 0, 1 have none).
    got = [(f.index, read_index(f.rgb())) for f in iter_camera_frames(seq, "00_04", [0, 3, 10], offset=4)]
    assert got == [(0, 4), (3, 7), (10, 14)]
    got = [(f.index, read_index(f.rgb())) for f in iter_camera_frames(seq, "00_04", [0, 1, 2, 9], offset=-2)]
    assert got == [(2, 0), (9, 7)]
    # The dataset stage's reader: the same, and a frame without a picture is rejected with its reason.
    rejected = []
    for source, camera, offset in (("images", "00_03", 3), ("video", "00_04", -3)):
        frames = list(_decoded_frames(seq, camera, np.array([1, 4]), source, 1,
                                      lambda *r: rejected.append(r), (W, H), offset))
        assert [(f.index, read_index(f.rgb())) for f in frames] == ([(1, 4), (4, 7)] if offset == 3 else [(4, 1)])
    assert len(rejected) == 1 and rejected[0][0] == 1 and rejected[0][1] == MISSING_IMAGE
    assert "frame + -3" in rejected[0][3]


def test_key_frames_are_counted_in_capture_frames(tmp_path):
    video = tmp_path / "seq" / "hdVideos" / "hd_00_04.mp4"
    video.parent.mkdir(parents=True)
    encode(video, range(20), gop=8)
    plain, _ = VideoFrameKinds(tmp_path, show_progress=False)("seq", "00_04")
    shifted, _ = VideoFrameKinds(tmp_path, show_progress=False, offsets={"seq": {"00_04": 5}})("seq", "00_04")
    assert plain.tolist() == [0, 8, 16] and shifted.tolist() == [3, 11]


def test_the_triangulation_reader_and_the_crop_fingerprint_follow_the_offset(tmp_path):
    import pandas as pd

    from annotate.datasets.build import BuildConfig, fingerprint
    from annotate.labels.frame_views import CameraImages

    seq = tmp_path / "seq"
    for camera in ("00_03", "00_04"):
        folder = seq / "hdImgs" / camera
        folder.mkdir(parents=True)
        for k in range(0, 4):
            (folder / f"{camera}_{k:08d}.jpg").write_bytes(encode_jpeg_rgb(index_image(k), 95))
    images = CameraImages(seq, ("00_03", "00_04"), np.array([0, 2]), "images", {"00_04": -1})
    assert read_index(images.image(0, 2)) == 2 and read_index(images.image(1, 2)) == 1
    assert images.image(1, 0) is None
    reason, message = images.missing[1]
    assert reason == MISSING_IMAGE and "no picture of frame 0" in message and "ingest.frame_offsets" in message
    # Crops already cut from other pictures are not taken as done when the offset changes.
    rows = pd.DataFrame({"frame": [1, 2], "person": [0, 0], "sample_weight": [1.0, 1.0], "yaw": [0.0, 5.0],
                         "split": ["train", "train"]})
    digests = {fingerprint(BuildConfig(), "seq", "00_04", rows, offset) for offset in (0, 0, 2, -2)}
    assert len(digests) == 3
