"""Exports, read back the way the public loaders read them."""
import json
from math import cos, sin

import numpy as np
import pytest
import scipy.io as sio
from scipy.spatial.transform import Rotation

from annotate.datasets.exports.coco import export_coco
from annotate.datasets.exports.w300lp import export_300wlp
from annotate.datasets.exports.whenet import export_whenet, read_whenet_list
from annotate.datasets.readers import read_columns
from annotate.datasets.shards import ShardLimits, ShardWriter
from annotate.geometry.rotations import matrix_from_euler
from annotate.media.jpeg import decode_jpeg_rgb
from tests.sample_rows import sample_columns


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two splits; frames 0-9 of camera 00_01 hold a train and a test head each."""
    root = tmp_path_factory.mktemp("ds")
    for split, seed in (("train", 1), ("test", 2)):
        w = ShardWriter(root / "shards" / split / "seq_a", "00_01", ShardLimits(row_group_samples=8))
        cols = sample_columns(10, seed=seed, split=split)
        cols["person"] = np.full(10, seed, np.int32)
        cols["sample_id"] = [f"seq_a/{f:08d}/{seed}/00_01" for f in range(10)]
        w.write(cols)
        w.close()
    for f in range(10):
        path = root / "frames" / "seq_a" / "00_01" / f"{f:08d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 stand-in")
    return root


def test_whenet_lists_and_images(dataset, tmp_path, capsys):
    counts = export_whenet(dataset, tmp_path / "whenet")
    assert counts == {"train": 10, "test": 10}
    progress = capsys.readouterr().err                         # a bar per split, ending at the split's size
    assert "whenet export train" in progress and "whenet export test" in progress and "10/10" in progress
    rows = read_columns(dataset, ["yaw", "pitch", "roll"], split="train").to_pandas()
    lines = read_whenet_list(tmp_path / "whenet" / "train.txt")
    for (image, yaw, pitch, roll), want in zip(lines, rows.itertuples()):
        assert decode_jpeg_rgb((tmp_path / "whenet" / image).read_bytes()).shape == (64, 64, 3)
        assert (yaw, pitch, roll) == pytest.approx((want.yaw, want.pitch, want.roll), abs=1e-4)
    assert (tmp_path / "whenet" / "train.txt").read_text().count("\n") == 10


# HopeNet's reading code (datasets.py / utils.py of deep-head-pose), restated.
def hopenet_read(data_dir, name):
    mat = sio.loadmat(f"{data_dir}/{name}.mat")
    pt2d = mat["pt2d"]
    x_min, y_min = min(pt2d[0, :]), min(pt2d[1, :])
    x_max, y_max = max(pt2d[0, :]), max(pt2d[1, :])
    pose = mat["Pose_Para"][0][:3]
    pitch, yaw, roll = pose[0] * 180 / np.pi, pose[1] * 180 / np.pi, pose[2] * 180 / np.pi
    return (x_min, y_min, x_max, y_max), (yaw, pitch, roll)


def test_300wlp_mat_files_read_as_hopenet_reads_them(dataset, tmp_path):
    out = tmp_path / "300wlp"
    result = export_300wlp(dataset, out, max_angle_deg=99.0)
    table = read_columns(dataset, ["split", "yaw", "pitch", "roll", "landmarks_crop"]).to_pandas()
    frontal = table[np.maximum.reduce([table.yaw.abs(), table.pitch.abs(), table.roll.abs()]) <= 99]
    assert sum(result["written"].values()) == len(frontal) > 0
    assert result["skipped"]["outside_frontal_range"] == len(table) - len(frontal)
    for split in ("train", "test"):
        names = (out / f"{split}_filenames.txt").read_text().split()
        want = frontal[frontal.split == split]
        assert len(names) == len(want)
        for name, row in zip(names, want.itertuples()):
            box, (yaw, pitch, roll) = hopenet_read(out, name)
            assert (yaw, pitch, roll) == pytest.approx((row.yaw, row.pitch, row.roll), abs=1e-9)
            lm = np.asarray(row.landmarks_crop).reshape(70, 2)[:68]
            assert box == pytest.approx((*lm.min(axis=0), *lm.max(axis=0)), abs=1e-4)
            assert decode_jpeg_rgb((out / f"{name}.jpg").read_bytes()).shape == (64, 64, 3)
            assert sio.loadmat(out / f"{name}.mat")["Pose_Para"].shape == (1, 7)


def test_our_angles_drawn_by_hopenet_show_our_rotation():
    """HopeNet's draw_axis (restated below) fed our (yaw, pitch, roll) draws the head's x
    axis, its y axis pointing down, and the face's forward axis exactly as R_cam_head puts
    them in the image: our convention is HopeNet's, no sign flip."""
    rng = np.random.default_rng(0)
    for yaw_d, pitch_d, roll_d in rng.uniform(-85, 85, (50, 3)):
        pitch, yaw, roll = np.radians(pitch_d), -np.radians(yaw_d), np.radians(roll_d)
        x_axis = (cos(yaw) * cos(roll), cos(pitch) * sin(roll) + cos(roll) * sin(pitch) * sin(yaw))
        y_axis = (-cos(yaw) * sin(roll), cos(pitch) * cos(roll) - sin(pitch) * sin(yaw) * sin(roll))
        z_axis = (sin(yaw), -cos(yaw) * sin(pitch))
        R = matrix_from_euler(np.radians(yaw_d), np.radians(pitch_d), np.radians(roll_d))
        np.testing.assert_allclose(x_axis, R[:2, 0], atol=1e-12)          # subject's left ear
        np.testing.assert_allclose(y_axis, -R[:2, 1], atol=1e-12)         # head down
        np.testing.assert_allclose(z_axis, R[:2, 2], atol=1e-12)          # out of the face


def test_coco_json_has_boxes_angles_and_6dof(dataset, tmp_path):
    counts = export_coco(dataset, tmp_path / "coco")
    assert counts == {"train": {"images": 10, "annotations": 10}, "test": {"images": 10, "annotations": 10},
                      "left_out": {"other_split": 20, "beyond_90_images": 0, "beyond_90_heads": 0}}
    doc = json.loads((tmp_path / "coco" / "train.json").read_text())
    assert {c["name"] for c in doc["categories"]} == {"head"}
    images = {i["id"]: i for i in doc["images"]}
    assert all(i["file_name"] == f"{i['id']}.jpg" and (tmp_path / "coco" / "images" / "train" / i["file_name"]).is_file()
               for i in images.values())
    rows = {r["sample_id"]: r for r in read_columns(dataset, ["sample_id", "box", "yaw", "pitch", "roll", "R_cam_head",
                                                              "head_centre_cam"]).to_pylist()}
    own = doc["annotations"]                   # heads of the test split in the same frames are left out
    assert len(own) == 10 and all(a["iscrowd"] == 0 and a["sample_id"].endswith("/1/00_01") for a in own)
    for a in own:
        r = rows[a["sample_id"]]
        x0, y0, x1, y1 = r["box"]
        assert a["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=1e-3)
        assert images[a["image_id"]]["camera"]["K"][0][0] == 1400.0
        pitch, yaw, roll = a["euler_angles"]
        assert (yaw, pitch, roll) == pytest.approx((r["yaw"], r["pitch"], r["roll"]))
        R = np.asarray(r["R_cam_head"]).reshape(3, 3)
        rot = Rotation.from_rotvec(a["pose"][:3]).as_matrix()
        np.testing.assert_allclose(rot, R @ np.diag([1.0, -1.0, -1.0]), atol=1e-9)
        np.testing.assert_allclose(a["pose"][3:], r["head_centre_cam"])
        # DirectMHP's img2pose conversion: Euler 'xyz' of the transposed rotation, yaw and
        # roll negated, is [pitch, yaw, roll] (as_euler picks |middle angle| <= 90, so the
        # angles themselves come back for |yaw| < 90; the rotation always does).
        np.testing.assert_allclose(Rotation.from_euler("xyz", [pitch, -yaw, -roll], degrees=True).as_matrix(),
                                   rot.T, atol=1e-9)
        if abs(yaw) < 90:
            ang = Rotation.from_matrix(rot.T).as_euler("xyz", degrees=True)
            assert (ang[0], -ang[1], -ang[2]) == pytest.approx((pitch, yaw, roll), abs=1e-6)


def test_coco_export_refuses_missing_frames(dataset, tmp_path):
    (dataset / "frames" / "seq_a" / "00_01" / "00000003.jpg").rename(tmp_path / "moved.jpg")
    try:
        with pytest.raises(FileNotFoundError, match="00000003"):
            export_coco(dataset, tmp_path / "coco")
        assert not (tmp_path / "coco").exists()
    finally:
        (tmp_path / "moved.jpg").rename(dataset / "frames" / "seq_a" / "00_01" / "00000003.jpg")
