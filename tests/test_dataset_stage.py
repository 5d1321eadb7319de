"""The dataset stage end to end on a tiny rendered sequence: crops land on the rendered
face parts, bad media are rejected with reasons, an interrupted build resumes to the same
bytes, and plain pandas/pyarrow read the shards."""
import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from annotate.config import resolve_config
from annotate.datasets.readers import read_columns, shard_paths
from annotate.core.results import ResultsLayout
from annotate.stages.dataset import run_build, run_card, run_plan
from annotate.core.tables import read_table
from annotate.geometry.cameras import project_camera_points
from annotate.head.head_mesh import IRIS, NOSE
from annotate.media.crops import apply_transform
from annotate.media.jpeg import decode_jpeg_rgb
from annotate.media.video import (CORRUPT_VIDEO, MISSING_VIDEO, UNREADABLE_VIDEO, VIDEO_TOO_SHORT, DecodeCounts,
                                  frame_kinds, iter_video_frames)
from annotate.media.video_writer import VideoWriter
from workflow_runs import build_dataset
from annotate.synth.generate import generate_sequence, load_ground_truth, scene_frames
from annotate.synth.render import make_palette, render_frame
from annotate.synth.videos import render_videos
from annotate.synth.scene import SceneConfig, simulate_scene

pytestmark = pytest.mark.slow            # end to end: tens of seconds

SEQ = "synth_000"
SCENE = SceneConfig(seed=1, num_frames=6, num_people=2, num_cameras=4, image_size=(1280, 720))
# Saturated nose and iris colours so that a crop pixel tells which region it shows: Lambert
# shading scales all three channels alike, so the dominant channel survives it.
TEST_PALETTE = {**make_palette(), NOSE: np.array([40, 190, 40], np.uint8), IRIS: np.array([30, 40, 230], np.uint8)}
# landmark -> (region, dominant channel): nose tip 30 and the point above it 29 (the tip
# often sits on the nose region's edge), pupils 68 and 69 (iris centres).
CHECKS = {29: (NOSE, 1), 30: (NOSE, 1), 68: (IRIS, 2), 69: (IRIS, 2)}
PLUS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))
CONFIG = {"dataset": {"split": {"assign": {f"{SEQ}:1": "test"}}, "threads": 1,
                      "shard": {"max_samples": 8, "row_group_samples": 4}}}


class Tiny:
    """A rendered sequence, its labels and its dataset."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        generate_sequence(self.data, SEQ, SCENE, render_video=False, n_jobs=1)
        self.state = simulate_scene(SCENE)
        self.source = scene_frames(self.state)
        self.source.palettes = [TEST_PALETTE] * len(self.source.palettes)
        render_videos(self.data / SEQ, self.state.rig, self.source, SCENE.num_frames, SCENE.fps, n_jobs=1,
                      show_progress=False)
        self.config = resolve_config(CONFIG)
        self.out = root / "results"
        self.ds = build_dataset(self.data, [SEQ], self.out, CONFIG)
        layout = ResultsLayout(self.out).sequence(SEQ)
        self.labels = layout.labels("labels")
        self.cameras = layout.ingest("cameras")
        self.card = json.loads((self.ds / "card.json").read_text())

    def build(self, seq_dir: Path, out_dir: Path, on_shard=None, on_progress=None):
        return run_build(self.config, SEQ, self.ds / "plan.parquet", self.labels, self.cameras, seq_dir, out_dir,
                         on_shard=on_shard, on_progress=on_progress)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return Tiny(tmp_path_factory.mktemp("dataset"))


def test_every_valid_label_is_a_sample_and_the_card_counts_the_rest(tiny):
    labels = read_table(tiny.labels, "labels", columns=["reject_reason"]).column("reject_reason").to_pylist()
    valid = sum(r == "" for r in labels)
    rows = read_columns(tiny.ds, ["sample_id", "split", "subject", "frame"])
    assert rows.num_rows == valid == tiny.card["samples"] > 20
    assert len(set(rows.column("sample_id").to_pylist())) == rows.num_rows
    rejected = {k: labels.count(k) for k in set(labels) - {""}}
    assert tiny.card["labels_not_used"]["rejected_labels_by_reason"] == rejected
    # Subject split: person 1 forced to test, never in train; no subject in two splits.
    subject_split = {}
    for subject, split in zip(rows.column("subject").to_pylist(), rows.column("split").to_pylist()):
        assert subject_split.setdefault(subject, split) == split
    assert subject_split[f"{SEQ}:1"] == "test"
    for split, s in tiny.card["splits"].items():
        for angle in ("yaw", "pitch", "roll"):
            assert sum(s["histograms"][angle]["counts"]) == s["samples"]
    assert (tiny.ds / "card.md").read_text().startswith("# ")
    assert tiny.card["code_version"] != "unknown"
    # Bounded shards with small row groups, schema name and version in the metadata.
    for path in shard_paths(tiny.ds):
        meta = pq.ParquetFile(path).metadata
        assert meta.num_rows <= 8 and all(meta.row_group(g).num_rows <= 4 for g in range(meta.num_row_groups))
        assert pq.read_schema(path).metadata[b"schema_name"] == b"samples"


def test_rot6d_6drepnet_is_6drepnets_target(tiny):
    """The built shards' rot6d_6drepnet: the first two columns of 6DRepNet's
    get_R(pitch, yaw, roll) = Rz(roll) Ry(yaw) Rx(pitch) of the row's own angles."""
    from scipy.spatial.transform import Rotation

    t = read_columns(tiny.ds, ["yaw", "pitch", "roll", "rot6d_6drepnet"]).to_pandas()
    R = Rotation.from_euler("ZYX", np.column_stack([t.roll, t.yaw, t.pitch]), degrees=True).as_matrix()
    np.testing.assert_allclose(np.stack(t.rot6d_6drepnet), np.concatenate([R[:, :, 0], R[:, :, 1]], axis=1), atol=1e-5)


def test_landmarks_land_on_the_rendered_nose_and_irises(tiny):
    """For every sample: project the true 3D nose tip and pupils, map them through the
    stored crop transform and read the crop's colour there (3 x 3 crop pixels). Checked
    wherever the renderer shows that region on the landmark's pixel and its 4 neighbours
    (visible, not occluded, not at a region edge); there it must be the region's colour in
    the crop, after H.264 and JPEG."""
    assert_landmark_colours(tiny, tiny.ds)


def test_torch_crop_path_puts_landmarks_on_the_same_colours(tiny, tmp_path):
    """dataset.crop_device: the torch path (run on the CPU here; on a GPU it is the same
    code) builds the same samples, and they pass the same pixel check."""
    config = resolve_config({"dataset": {**CONFIG["dataset"], "crop_device": "torch-cpu"}})
    build = run_build(config, SEQ, tiny.ds / "plan.parquet", tiny.labels, tiny.cameras, tiny.data / SEQ, tmp_path,
                      show_progress=False)
    assert build.samples == read_table(tiny.ds / "plan.parquet", "dataset_plan").num_rows
    assert_landmark_colours(tiny, tmp_path)


def assert_landmark_colours(tiny, dataset_dir):
    gt = load_ground_truth(tiny.data / SEQ)
    world = gt.landmarks_world()                                   # (F, P, 70, 3)
    rig = tiny.state.rig
    person_index = {int(p): i for i, p in enumerate(gt.person_ids)}
    rows = read_columns(dataset_dir, ["frame", "person", "camera", "image", "crop_from_image", "landmarks_crop"]
                        ).to_pylist()
    views = {f: render_frame(rig, tiny.source(f)) for f in sorted({r["frame"] for r in rows})}
    checked = {k: 0 for k in CHECKS}
    for r in rows:
        f, p, c = r["frame"] - int(gt.frames[0]), person_index[r["person"]], rig.names.index(r["camera"])
        uv = project_camera_points(world[f, p] @ rig.R_cam_world[c].T + rig.t_cam_world[c], rig.K[c], rig.dist[c])
        A = np.asarray(r["crop_from_image"]).reshape(2, 3)
        crop_uv = apply_transform(A, uv)
        crop = decode_jpeg_rgb(r["image"]).astype(np.float64)
        view = views[r["frame"]][c]
        mesh = tiny.source.meshes[p]
        h, w = view.person_id.shape
        for landmark, (region, channel) in CHECKS.items():
            col, row = np.round(uv[landmark]).astype(int)
            pixels = [(row + dr, col + dc) for dr, dc in PLUS]
            if not all(0 <= a < h and 0 <= b < w and view.person_id[a, b] == r["person"]
                       and mesh.triangle_region[view.triangle_id[a, b]] == region for a, b in pixels):
                continue                      # hidden, or not cleanly inside the region in the render
            x, y = crop_uv[landmark]
            patch = crop[int(round(y)) - 1:int(round(y)) + 2, int(round(x)) - 1:int(round(x)) + 2].reshape(-1, 3)
            colour = patch.mean(axis=0)
            assert colour[channel] - np.delete(colour, channel).max() > 25, (r, landmark, colour)
            checked[landmark] += 1
        # The stored landmarks (the fitted head model's) are the true ones within the fit error.
        stored = np.asarray(r["landmarks_crop"], np.float64).reshape(70, 2)
        err_px = np.linalg.norm(stored[[30, 68, 69]] - crop_uv[[30, 68, 69]], axis=1) / A[0, 0]
        assert err_px.max() < 3.0
    assert checked[29] + checked[30] >= 12 and checked[68] + checked[69] >= 8, checked


def _short_copy(src: Path, dst: Path, frames: int) -> None:
    """Re-encode the first ``frames`` frames of a video."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=Fraction(30000, 1001), options={"preset": "ultrafast", "crf": "18"})
        for k, frame in enumerate(inp.decode(video=0)):
            if k == 0:
                s.width, s.height, s.pix_fmt = frame.width, frame.height, "yuv420p"
            if k >= frames:
                break
            frame.pts = k
            out.mux(s.encode(frame))
        out.mux(s.encode(None))


def test_bad_videos_become_rejections_and_the_rest_is_built(tiny, tmp_path):
    seq = tmp_path / "data" / SEQ
    shutil.copytree(tiny.data / SEQ, seq)
    videos = seq / "hdVideos"
    (videos / "hd_00_00.mp4").unlink()                                          # missing
    data = (videos / "hd_00_01.mp4").read_bytes()
    (videos / "hd_00_01.mp4").write_bytes(data[: len(data) * 2 // 5])           # truncated
    _short_copy(tiny.data / SEQ / "hdVideos" / "hd_00_02.mp4", videos / "hd_00_02.mp4", 3)   # shorter
    data = bytearray((videos / "hd_00_03.mp4").read_bytes())
    data[32:] = np.random.default_rng(0).integers(0, 256, len(data) - 32, dtype=np.uint8).tobytes()
    (videos / "hd_00_03.mp4").write_bytes(bytes(data))                          # corrupt
    out = tmp_path / "ds"
    progress = []
    build = tiny.build(seq, out, on_progress=progress.append)
    text = str(build)
    rej = read_table(out / "parts" / f"{SEQ}-rejections.parquet", "rejections").to_pandas()
    reasons = {cam: set(g["reason"].astype(str)) for cam, g in rej.groupby("camera")}
    assert reasons["00_00"] == {MISSING_VIDEO}
    assert reasons["00_01"] <= {UNREADABLE_VIDEO, CORRUPT_VIDEO, VIDEO_TOO_SHORT}
    assert reasons["00_02"] == {VIDEO_TOO_SHORT}
    assert set(rej[rej.camera == "00_02"]["frame"]) == {3, 4, 5}
    assert reasons["00_03"] <= {UNREADABLE_VIDEO, CORRUPT_VIDEO}
    for reason in set(rej["reason"].astype(str)):
        assert reason in text
    # Every planned sample is either in a shard or rejected, never both, never lost.
    planned = read_table(tiny.ds / "plan.parquet", "dataset_plan").num_rows
    built = read_columns(out, ["sample_id"]).column("sample_id").to_pylist()
    assert len(built) + len(rej) == planned
    assert sum(progress) == planned                      # the progress bar ends full, rejections included
    frames_of = {}
    for sample_id in built:
        _, frame, _, camera = sample_id.split("/")
        frames_of.setdefault(camera, set()).add(int(frame))
    assert "00_00" not in frames_of and "00_03" not in frames_of
    assert frames_of["00_02"] == {0, 1, 2}
    assert not list(out.rglob("*.tmp"))


def test_interrupted_build_resumes_to_identical_shards(tiny, tmp_path):
    out = tmp_path / "ds"
    written = []

    def fail_after_three(info):
        written.append(info.path)
        if len(written) == 3:
            raise KeyboardInterrupt("injected interruption")

    with pytest.raises(KeyboardInterrupt):
        tiny.build(tiny.data / SEQ, out, on_shard=fail_after_three)
    assert not list(out.rglob("*.tmp")) and not (out / "parts" / f"{SEQ}.json").exists()
    finished_before = sorted(p.name for p in (out / "parts" / SEQ).glob("*.json"))
    progress = []
    build = tiny.build(tiny.data / SEQ, out, on_progress=progress.append)
    assert sum(u.resumed for u in build.units) == len(finished_before)
    assert sum(progress) == read_table(tiny.ds / "plan.parquet", "dataset_plan").num_rows
    reference = {p.relative_to(tiny.ds): p.read_bytes() for p in (tiny.ds / "shards").rglob("*.parquet")}
    resumed = {p.relative_to(out): p.read_bytes() for p in (out / "shards").rglob("*.parquet")}
    assert resumed.keys() == reference.keys()
    assert all(resumed[k] == reference[k] for k in reference)


def test_plain_pandas_and_pyarrow_read_shards_without_annotate(tiny, tmp_path):
    script = tmp_path / "read.py"
    script.write_text(f"""
import sys, io, json, glob
import pandas as pd, pyarrow.parquet as pq
paths = sorted(glob.glob({str(tiny.ds / 'shards')!r} + '/*/*/*.parquet'))
df = pd.concat([pd.read_parquet(p) for p in paths])
meta = pq.read_schema(paths[0]).metadata
A = df.iloc[0].crop_from_image.reshape(2, 3)
assert df.image.iloc[0][:2] == b'\\xff\\xd8'
print(json.dumps({{"rows": len(df), "schema": meta[b"schema_name"].decode(), "version": meta[b"schema_version"].decode(),
                  "yaw": float(df.yaw.iloc[0]), "A": A.tolist(), "annotate": "annotate" in sys.modules}}))
""")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["rows"] == tiny.card["samples"] and doc["schema"] == "samples" and doc["version"] == "2.1.0"
    assert not doc["annotate"]


def reencode_with_key_frames(path: Path, keyint: int) -> None:
    """Re-encode ``path`` in place with a key frame every ``keyint`` frames."""
    frames = [f.rgb() for f in iter_video_frames(path)]
    with av.open(str(path)) as c:
        rate = c.streams.video[0].average_rate
    writer = VideoWriter(path, frames[0].shape[1], frames[0].shape[0], rate, 18, "ultrafast", keyint)
    for rgb in frames:
        writer.write(rgb)
    writer.close()


def test_cheapest_frames_are_cropped(tiny, tmp_path):
    """dataset.frame_choice cheapest_to_decode: each window of frame_step frames is sampled
    at the camera's key frame (one picture decoded); a camera whose video cannot be read
    keeps frame start + k * step and is named in the summary."""
    data = tmp_path / "data"
    shutil.copytree(tiny.data / SEQ, data / SEQ)
    videos = sorted((data / SEQ / "hdVideos").glob("*.mp4"))
    for video in videos:
        reencode_with_key_frames(video, 4)
    assert all(frame_kinds(v).key.tolist() == [0, 4] for v in videos)
    config = resolve_config({**CONFIG, "dataset": {**CONFIG["dataset"], "frame_step": 3,
                                                   "frame_choice": "cheapest_to_decode"}})
    summary = run_plan(config, [tiny.labels], tmp_path / "plan.parquet", tmp_path / "summary.json", data)
    plan = pq.read_table(tmp_path / "plan.parquet").to_pandas()
    # Windows [0, 3) and [3, 6): key frames 0 and 4 in every camera with labels there.
    assert set(plan.frame) == {0, 4} and summary.key_frame_windows == 2 * plan.camera.nunique()
    assert summary.other_frame_windows == 0 and not summary.frame_kinds_unknown
    build = run_build(config, SEQ, tmp_path / "plan.parquet", tiny.labels, tiny.cameras, data / SEQ, tmp_path / "ds")
    rows = read_columns(tmp_path / "ds", ["camera", "frame"]).to_pandas()
    assert build.samples == len(rows) == len(plan) and set(rows.frame) == {0, 4}
    counts = DecodeCounts()
    assert len(list(iter_video_frames(videos[0], [0, 4], counts=counts))) == counts.pictures == 2
    card = run_card(config, tmp_path / "ds", tmp_path / "summary.json", [tmp_path / "ds" / "parts" / f"{SEQ}.json"],
                    [tmp_path / "ds" / "parts" / f"{SEQ}-rejections.parquet"])
    assert card["frame_selection"]["key_frame_windows"] == summary.key_frame_windows
    assert f"{summary.key_frame_windows} camera windows at a key frame" in (tmp_path / "ds" / "card.md").read_text()
    # A camera whose video is gone keeps frame start + k * step and says why.
    videos[0].unlink()
    summary = run_plan(config, [tiny.labels], tmp_path / "plan2.parquet", tmp_path / "summary2.json", data)
    assert len(summary.frame_kinds_unknown) == 1 and "missing_video" in summary.frame_kinds_unknown[0]
    plan = pq.read_table(tmp_path / "plan2.parquet").to_pandas()
    camera = videos[0].stem.removeprefix("hd_")
    assert set(plan[plan.camera == camera].frame) <= {0, 3}
    with pytest.raises(ValueError, match="source: video"):
        run_plan(resolve_config({"dataset": {"frame_choice": "cheapest_to_decode", "source": "images"}}), [tiny.labels],
                 tmp_path / "plan3.parquet", tmp_path / "summary3.json", data)


def test_a_camera_given_as_images_is_cropped_from_them(tiny, tmp_path):
    """dataset.source auto (the default): a camera with JPEGs and no video is cropped from
    its JPEGs, the others from their videos; 'video' reports the missing video instead."""
    from annotate.media.jpeg import encode_jpeg_rgb
    from annotate.media.video import camera_image_dir, camera_video_path, iter_camera_frames

    seq = tmp_path / "data" / SEQ
    shutil.copytree(tiny.data / SEQ, seq)
    images = camera_image_dir(seq, "00_00")
    images.mkdir(parents=True)
    for decoded in iter_camera_frames(seq, "00_00", range(SCENE.num_frames)):
        (images / f"00_00_{decoded.index:08d}.jpg").write_bytes(encode_jpeg_rgb(decoded.rgb(), quality=95))
    camera_video_path(seq, "00_00").unlink()
    planned = read_table(tiny.ds / "plan.parquet", "dataset_plan").to_pandas()
    for source in ("auto", "video"):
        config = resolve_config({**CONFIG, "dataset": {**CONFIG["dataset"], "source": source}})
        out = tmp_path / source
        run_build(config, SEQ, tiny.ds / "plan.parquet", tiny.labels, tiny.cameras, seq, out)
        rej = read_table(out / "parts" / f"{SEQ}-rejections.parquet", "rejections").to_pandas()
        cameras = [s.split("/")[3] for s in read_columns(out, ["sample_id"]).column("sample_id").to_pylist()]
        from_images = cameras.count("00_00")
        if source == "auto":
            assert len(rej) == 0 and from_images == (planned.camera == "00_00").sum() > 0
        else:
            assert from_images == 0 and set(rej.reason.astype(str)) == {MISSING_VIDEO}
