"""Captures with a calibration and images or videos only: ingest takes the frames from the media.

Two captures: the real Panoptic frames in tests/data/haggling_demo (5 HD cameras, frames 4500
and 9348, no 3D files), and a rig of one's own made from the synthetic generator: its
calibration written as an aniposelib calibration.toml (cameras named A..D, translations in
mm), converted back with ``convert_calibration``, its frames as hdImgs JPEGs decoded from the
rendered videos, or its videos alone.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotate.core.tables import read_table
from annotate.media.jpeg import encode_jpeg_rgb
from annotate.media.video import count_video_frames, iter_camera_frames
from annotate.panoptic import errors as E
from annotate.panoptic.calibration import read_calibration
from annotate.panoptic.ingest import TABLE_FILES, ingest_sequence
from annotate.panoptic.tables import load_cameras, load_frames
from annotate.panoptic.layout import SequenceLayout
from annotate.panoptic.media_frames import NoFramesError
from annotate.panoptic.rigs import convert_calibration
from annotate.synth.generate import generate_sequence
from annotate.synth.scene import SceneConfig

DATA = Path(__file__).parent / "data"
HAGGLING = "haggling_demo"
HAGGLING_CAMERAS = ["00_03", "00_06", "00_12", "00_13", "00_23"]


def rejections(out: Path) -> list[tuple]:
    rows = read_table(out / TABLE_FILES["rejections"], "rejections").to_pylist()
    return sorted(((r["reason"], r["stage"], r["frame"], r["camera"], r["file"]) for r in rows), key=repr)


def frames(out: Path) -> list[tuple]:
    rows = read_table(out / TABLE_FILES["frames"], "frames").to_pylist()
    listed = load_frames(out / TABLE_FILES["frames"])
    assert listed.frame.tolist() == [r["frame"] for r in rows]
    assert listed.from_media == all(r["cameras_with_media"] is not None for r in rows)
    return [(r["frame"], r["face_file"], r["body_file"], r["cameras_with_media"]) for r in rows]


@pytest.fixture
def haggling(tmp_path) -> Path:
    """A writable copy of tests/data/haggling_demo under tmp_path/data."""
    root = tmp_path / "data"
    shutil.copytree(DATA / HAGGLING, root / HAGGLING)
    return root


def test_real_panoptic_frames_without_3d_files(tmp_path):
    out = tmp_path / "out"
    s = ingest_sequence(DATA, HAGGLING, out)
    assert s.frames_from == "media" and s.frame_range == (4500, 9348) and s.frames_selected == 2
    assert s.media_cameras == {"images": 5, "video": 0} and s.without_media == []
    assert frames(out) == [(4500, False, False, 5), (9348, False, False, 5)]
    assert load_cameras(out / TABLE_FILES["cameras"]).names == tuple(HAGGLING_CAMERAS)
    assert s.rows["faces3d"] == 0 and s.rows["bodies"] == 0 and rejections(out) == []
    text = str(s)
    assert "2 selected from the media: 5 cameras with hdImgs/, 0 with a video" in text
    # frame numbering: every 5th from 4500 does not reach 9348 (9348 - 4500 = 4848)
    s5 = ingest_sequence(DATA, HAGGLING, tmp_path / "step5", frame_step=5)
    assert frames(tmp_path / "step5") == [(4500, False, False, 5)] and s5.frames_selected == 1
    s6 = ingest_sequence(DATA, HAGGLING, tmp_path / "from6000", frame_start=6000)
    assert s6.frame_range == (9348, 9348)


def test_cameras_without_media_and_stray_entries_are_named(haggling, tmp_path):
    lay = SequenceLayout(haggling, HAGGLING)
    shutil.rmtree(lay.image_dir("00_12"))
    (lay.image_dir("00_06") / lay.image_file("00_06", 9348).name).unlink()
    (lay.image_dir("00_06") / "thumbs.db").write_text("")
    (lay.image_root / "camA").mkdir()
    out = tmp_path / "out"
    s = ingest_sequence(haggling, HAGGLING, out)
    assert s.without_media == ["00_12"] and "no media:   1 camera(s) give no views: 00_12" in str(s)
    assert frames(out) == [(4500, False, False, 4), (9348, False, False, 3)]
    assert load_cameras(out / TABLE_FILES["cameras"]).names == tuple(HAGGLING_CAMERAS)
    assert rejections(out) == sorted([
        (E.MISSING_MEDIA, "ingest.media", None, "00_12", f"{HAGGLING}/hdImgs/00_12"),
        (E.UNEXPECTED_FILE, "ingest.media", None, "00_06", f"{HAGGLING}/hdImgs/00_06/thumbs.db"),
        (E.UNEXPECTED_FILE, "ingest.media", None, None, f"{HAGGLING}/hdImgs/camA"),
    ], key=repr)
    # the same with on_error="raise": these are facts about the capture, not file defects
    assert ingest_sequence(haggling, HAGGLING, tmp_path / "raise", on_error="raise").frames_selected == 2


def test_a_gap_inside_a_cameras_frames_is_a_missing_frame(haggling, tmp_path):
    lay = SequenceLayout(haggling, HAGGLING)
    shutil.copy(lay.image_file("00_03", 4500), lay.image_file("00_03", 7000))
    out = tmp_path / "out"
    ingest_sequence(haggling, HAGGLING, out)
    assert frames(out) == [(4500, False, False, 5), (7000, False, False, 1), (9348, False, False, 5)]
    missing = [r for r in rejections(out) if r[0] == E.MISSING_FRAME]
    assert [(r[2], r[3]) for r in missing] == [(7000, c) for c in HAGGLING_CAMERAS[1:]]
    assert missing[0][4] == f"{HAGGLING}/hdImgs/00_06/00_06_00007000.jpg"


def test_nothing_found_says_what_was_searched(haggling, tmp_path):
    lay = SequenceLayout(haggling, HAGGLING)
    shutil.rmtree(lay.image_root)
    (lay.image_root / "A").mkdir(parents=True)
    shutil.copy(DATA / HAGGLING / "hdImgs" / "00_03" / "00_03_00004500.jpg", lay.image_root / "A" / "A_0001.jpg")
    out = tmp_path / "out"
    with pytest.raises(NoFramesError) as err:
        ingest_sequence(haggling, HAGGLING, out)
    msg = str(err.value)
    for part in ("no frames found", "hdFace3d/ (absent)", "hdPose3d_stage1_coco19/ (absent)",
                 "hdImgs/<camera>/<camera>_%08d.jpg", "hdVideos/hd_<camera>.mp4",
                 "calibration_haggling_demo.json (00_03, 00_06, 00_12, 00_13, 00_23)", f"{HAGGLING}/hdImgs/A",
                 "not cameras of the calibration", "docs/captures.md"):
        assert part in msg, part
    assert not out.exists()                                   # nothing half-written
    shutil.rmtree(lay.image_root)
    with pytest.raises(NoFramesError, match="none present"):
        ingest_sequence(haggling, HAGGLING, out)
    with pytest.raises(NoFramesError, match=r"holds frames 4500..9348 .*select none"):
        ingest_sequence(DATA, HAGGLING, out, frame_start=9349)


# --- a rig of one's own, from the synthetic generator ---------------------------------------
SYNTH = "synth_src"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A 4-camera, 4-frame synthetic sequence with rendered videos (small images)."""
    root = tmp_path_factory.mktemp("synth")
    generate_sequence(root, SYNTH, SceneConfig(num_frames=4, num_cameras=4, num_people=2, image_size=(320, 240)),
                      render_video=True, n_jobs=1)
    return root / SYNTH


def aniposelib_toml(calibration: Path, names: list[str], mm_per_cm: float = 10.0) -> str:
    """The Panoptic calibration as aniposelib's CameraGroup.dump would write it (t in mm)."""
    cams = json.loads(calibration.read_text())["cameras"]
    lines = []
    for i, (cam, name) in enumerate(zip(cams, names)):
        rvec = cv2.Rodrigues(np.asarray(cam["R"], dtype=np.float64))[0].ravel()
        tvec = np.ravel(cam["t"]) * mm_per_cm
        lines += [f"[cam_{i}]", f'name = "{name}"', f"size = {cam['resolution']}", f"matrix = {cam['K']}",
                  f"distortions = {cam['distCoef']}", f"rotation = {rvec.tolist()}",
                  f"translation = {tvec.tolist()}", ""]
    return "\n".join(lines + ["[metadata]", "adjusted = false", ""])


def test_capture_from_an_aniposelib_calibration_and_images(synthetic, tmp_path):
    capture = SequenceLayout(tmp_path / "captures", "rig_capture")
    capture.directory.mkdir(parents=True)
    toml = tmp_path / "calibration.toml"
    toml.write_text(aniposelib_toml(SequenceLayout(synthetic.parent, SYNTH).calibration, ["A", "B", "C", "D"]))
    conv = convert_calibration("aniposelib", [toml], capture.calibration, "mm")
    names = list(conv.source_names)
    assert names == ["00_00", "00_01", "00_02", "00_03"]
    for cam in names:                                         # the frames, as hdImgs JPEGs
        capture.image_dir(cam).mkdir(parents=True)
        for decoded in iter_camera_frames(synthetic, cam, range(4)):
            capture.image_file(cam, decoded.index).write_bytes(encode_jpeg_rgb(decoded.rgb(), quality=95))
    out = tmp_path / "out"
    s = ingest_sequence(capture.root, capture.sequence, out)
    assert s.frames_from == "media" and s.frame_range == (0, 3) and rejections(out) == []
    assert frames(out) == [(f, False, False, 4) for f in range(4)]
    truth = read_calibration(SequenceLayout(synthetic.parent, SYNTH).calibration)
    rig = load_cameras(out / TABLE_FILES["cameras"])
    points = np.random.default_rng(0).uniform([-60, -200, -60], [60, -120, 60], (50, 3))
    assert rig.names == truth.names
    assert np.abs(rig.project_world(points) - truth.project_world(points)).max() < 1e-6


def test_capture_from_videos_alone(synthetic, tmp_path):
    capture = SequenceLayout(tmp_path, "videos_only")
    capture.video_dir.mkdir(parents=True)
    shutil.copy(SequenceLayout(synthetic.parent, SYNTH).calibration, capture.calibration)
    for cam in ("00_00", "00_01", "00_02"):
        shutil.copy(synthetic / "hdVideos" / f"hd_{cam}.mp4", capture.video_file(cam))
    assert count_video_frames(capture.video_file("00_00")) == 4
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="count_video_frames"):
        ingest_sequence(capture.root, capture.sequence, out)
    s = ingest_sequence(capture.root, capture.sequence, out, count_video_frames=count_video_frames, frame_step=2)
    assert s.media_cameras == {"images": 0, "video": 3} and s.without_media == ["00_03"]
    assert frames(out) == [(0, False, False, 3), (2, False, False, 3)]
    assert [r[:4] for r in rejections(out)] == [(E.MISSING_MEDIA, "ingest.media", None, "00_03")]



def test_a_sequence_without_synthetic_ground_truth_gets_a_real_detector(synthetic):
    from annotate.config import ConfigError, detect_backend, resolve_config, with_detect_backend
    from annotate.labels.frame_views import make_backend

    configs = Path(__file__).resolve().parents[1] / "pipelines" / "config"
    for config in (None, configs / "panoptic.yaml", configs / "default.yaml"):
        cfg = resolve_config(config)
        assert cfg["detect"]["backend"] == "auto"
        assert detect_backend(cfg, DATA / HAGGLING) == "facemesh"
        assert detect_backend(cfg, synthetic) == "synthetic"
    rig = read_calibration(DATA / HAGGLING / f"calibration_{HAGGLING}.json")
    assert make_backend(with_detect_backend(cfg, DATA / HAGGLING), DATA / HAGGLING, rig).name == "facemesh"
    assert cfg["detect"]["backend"] == "auto"                      # the config itself is not changed
    explicit = resolve_config({"detect": {"backend": "synthetic"}})
    with pytest.raises(ConfigError, match="has no ground_truth.npz.*real detector"):
        detect_backend(explicit, DATA / HAGGLING)
    assert detect_backend(explicit, synthetic) == "synthetic"
    assert detect_backend(resolve_config({"detect": {"backend": "fan"}}), synthetic) == "fan"


@pytest.fixture(scope="module")
def walking(tmp_path_factory) -> Path:
    """A 4-camera synthetic sequence of 2 people long enough for their heads to move a little
    between frames (the tracker follows heads, not jumps), rendered small."""
    root = tmp_path_factory.mktemp("walking")
    generate_sequence(root, "walk", SceneConfig(seed=5, num_frames=40, num_cameras=4, num_people=2,
                                                image_size=(1280, 720)), render_video=True, n_jobs=1)
    return root / "walk"


@pytest.mark.slow
def test_aniposelib_capture_runs_end_to_end(walking, tmp_path):
    """A capture described by an aniposelib calibration.toml and hdImgs JPEGs, no 3D files and
    no body skeletons: the workflow ingests it, detects and associates the faces across views,
    tracks the people, triangulates them, builds the head model and labels every face in
    every camera. The 2D detector is the synthetic stand-in (its ground truth copied beside
    the images: the test checks the geometry, not a face detector on rendered heads); the
    labels agree with the generator's head rotations."""
    import sys

    from annotate.core.results import ResultsLayout
    from annotate.geometry.rotations import geodesic_distance
    from annotate.synth.generate import GROUND_TRUTH_JSON, GROUND_TRUTH_NPZ, load_ground_truth

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from workflow_runs import label_sequence

    frames_kept = range(8)
    capture = SequenceLayout(tmp_path / "captures", "rig_capture")
    capture.directory.mkdir(parents=True)
    toml = tmp_path / "calibration.toml"
    toml.write_text(aniposelib_toml(SequenceLayout(walking.parent, "walk").calibration, ["A", "B", "C", "D"]))
    convert_calibration("aniposelib", [toml], capture.calibration, "mm")
    for cam in ["00_00", "00_01", "00_02", "00_03"]:
        capture.image_dir(cam).mkdir(parents=True)
        for decoded in iter_camera_frames(walking, cam, frames_kept):
            capture.image_file(cam, decoded.index).write_bytes(encode_jpeg_rgb(decoded.rgb(), quality=95))
    for name in (GROUND_TRUTH_NPZ, GROUND_TRUTH_JSON):
        shutil.copy(walking / name, capture.directory / name)
    assert sorted(p.name for p in capture.directory.iterdir()) == sorted(
        ["calibration_rig_capture.json", "hdImgs", GROUND_TRUTH_NPZ, GROUND_TRUTH_JSON])

    out = label_sequence(capture.root, capture.sequence, tmp_path / "results",
                         {"landmarks3d": "triangulated", "audit": {"enabled": False}})   # frames_from auto: hdImgs
    summary = json.loads(out.triangulate("summary").read_text())
    assert summary["association"] == "cross_view" and summary["frames"] == len(frames_kept), summary
    faces = read_table(out.triangulate("faces3d"), "faces3d").to_pandas()
    labels = read_table(out.labels("labels"), "labels").to_pandas()
    # Both people tracked under two ids over the frames where two views see them.
    assert len(faces) >= len(frames_kept) and sorted(faces["person"].unique()) == [0, 1], faces[["frame", "person"]]
    assert len(labels) == len(faces) * 4 and labels["valid"].mean() > 0.8
    # Match each id to the generator's person by its rotations: one person each, a few degrees.
    truth = load_ground_truth(walking)
    rig = load_cameras(out.ingest("cameras"))
    R_est = np.stack(labels["R_cam_head"].to_numpy()).reshape(-1, 3, 3)
    fi = np.searchsorted(truth.frames, labels["frame"].to_numpy())
    best = {}
    for ours in (0, 1):
        rows = (labels["person"] == ours).to_numpy() & labels["valid"].to_numpy()
        errors = [float(np.median(np.degrees(geodesic_distance(
            R_est[rows], rig.R_cam_world[labels["camera_index"].to_numpy()[rows]] @ truth.R_world_head[fi[rows], t]))))
            for t in range(len(truth.person_ids))]
        best[ours] = (int(np.argmin(errors)), min(errors))
    assert {b[0] for b in best.values()} == {0, 1} and max(b[1] for b in best.values()) < 5.0, best
    assert ResultsLayout(tmp_path / "results").head_model.is_file()
