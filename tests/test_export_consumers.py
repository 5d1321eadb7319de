"""The exports read by the field's own code: DirectMHP's label writer, data loader, evaluation
and CMU scripts, 6DRepNet's dataset and target, and a WHENet list reader, each restated here
from its published behaviour (hnuzhy/DirectMHP utils/labels.py, utils/datasets.py, val.py,
utils/mae.py, exps/gen_dataset_full_AGORA_CMU.py; thohemp/6DRepNet datasets.py and
utils.py) and run on our exports."""
import csv
import json
import os
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import yaml

from annotate.datasets.exports.coco import export_coco
from annotate.datasets.exports.image_ids import decode_image_id
from annotate.datasets.exports.w300lp import export_300wlp
from annotate.datasets.exports.whenet import export_whenet
from annotate.datasets.readers import read_columns
from annotate.datasets.shards import ShardLimits, ShardWriter
from annotate.geometry.rotations import matrix_from_euler, sixd_6drepnet_from_matrix, sixd_from_matrix
from tests.sample_rows import sample_columns

F = np.diag([1.0, -1.0, -1.0])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Frames 0-11 of camera 00_01 (camera_index 1) of two sequences whose frame numbers
    repeat; every frame holds a train head (person 1) and a val head (person 2); train's
    frame 3 has a pitch of 120 deg (no Euler triple within +-90), val's frame 5 a roll of -95."""
    root = tmp_path_factory.mktemp("ds")
    for seq in ("seq_a", "seq_b"):
        for split, person in (("train", 1), ("val", 2)):
            w = ShardWriter(root / "shards" / split / seq, "00_01", ShardLimits(row_group_samples=8))
            cols = sample_columns(12, seed=person + (seq == "seq_b"), split=split, sequence=seq)
            cols["person"] = np.full(12, person, np.int32)
            cols["sample_id"] = [f"{seq}/{f:08d}/{person}/00_01" for f in range(12)]
            bad = 3 if split == "train" else 5
            cols["pitch"][bad], cols["roll"][bad] = (120.0, 10.0) if split == "train" else (20.0, -95.0)
            R = matrix_from_euler(*np.radians([cols["yaw"], cols["pitch"], cols["roll"]]))
            cols["R_cam_head"], cols["rot6d"] = R.reshape(-1, 9), sixd_from_matrix(R).astype(np.float32)
            w.write(cols)
            w.close()
        for f in range(12):
            path = root / "frames" / seq / "00_01" / f"{f:08d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"frame {seq} {f}".encode())
    return root


@pytest.fixture(scope="module")
def coco(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "coco"
    return out, export_coco(dataset, out)


def directmhp_write_yolov5_labels(data: dict) -> None:
    """DirectMHP utils/labels.py write_yolov5_labels, restated (pycocotools' COCO index is a
    dict of images by id and of annotations by id)."""
    assert not osp.isdir(osp.join(data["path"], data["labels"])), "Labels already generated"
    names = [s for s in ["train", "val", "test"] if s in data]
    splits = [osp.splitext(osp.split(data[s])[-1])[0] for s in names]
    annotations = [osp.join(data["path"], data[f"{s}_annotations"]) for s in names]
    test_split = [0 if s in ["train", "val"] else 1 for s in names]
    img_txt_dir = osp.join(data["path"], data["labels"], "img_txt")
    os.makedirs(img_txt_dir, exist_ok=True)
    for split, annot, is_test in zip(splits, annotations, test_split):
        img_txt_path = osp.join(img_txt_dir, f"{split}.txt")
        labels_path = osp.join(data["path"], f"{data['labels']}/{split}")
        if not is_test:
            os.makedirs(labels_path, exist_ok=True)
        doc = json.loads(Path(annot).read_text())
        imgs = {i["id"]: i for i in doc["images"]}
        anns = {a["id"]: a for a in doc["annotations"]}
        if not is_test:
            for a in anns.values():
                if a["image_id"] not in imgs:
                    continue
                if "train" in split and a["iscrowd"]:
                    continue
                img_info = imgs[a["image_id"]]
                img_h, img_w = img_info["height"], img_info["width"]
                x, y, w, h = a["bbox"]
                xc, yc = (x + w / 2) / img_w, (y + h / 2) / img_h
                pitch, yaw, roll = a["euler_angles"]
                label = f"{osp.splitext(img_info['file_name'])[0]}.txt"
                with open(osp.join(labels_path, label), "a") as f:
                    f.write("{} {:.6f} {:.6f} {:.6f} {:.6f} {:.6f} {:.6f} {:.6f}\n".format(
                        0, xc, yc, w / img_w, h / img_h, pitch / 180 + 0.5, yaw / 360 + 0.5, roll / 180 + 0.5))
        with open(img_txt_path, "w") as f:
            for img_info in imgs.values():
                f.write(osp.join(data["path"], "images", split, img_info["file_name"]) + "\n")


def directmhp_img2label_paths(img_paths, labels_dir):
    """DirectMHP utils/datasets.py img2label_paths."""
    return [os.path.splitext(s.replace("images", labels_dir))[0] + ".txt" for s in img_paths]


def directmhp_mae_v1(gt_doc: dict, predictions: list[dict]) -> tuple[int, int, np.ndarray]:
    """DirectMHP utils/mae.py mean_absolute_error_calculate: every prediction looks its
    image's heads up by id and reads the best-overlapping head's euler_angles."""
    by_image = {}
    for a in gt_doc["annotations"]:
        by_image.setdefault(str(a["image_id"]), []).append(a)
    gt, pd_ = [], []
    for p in predictions:
        labels = by_image[str(p["image_id"])]
        ious = [iou_xywh(p["bbox"], a["bbox"]) for a in labels]
        best = int(np.argmax(ious))
        if ious[best] > 0.5:
            gt.append(labels[best]["euler_angles"])
            pd_.append([p["pitch"], p["yaw"], p["roll"]])
    err = np.abs(np.array(gt) - np.array(pd_))
    err[:, 1] = np.minimum(err[:, 1], 360 - err[:, 1])
    return len(gt_doc["annotations"]), len(gt), err.mean(axis=0)


def iou_xywh(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w, h = min(ax1, bx1) - max(a[0], b[0]), min(ay1, by1) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


def test_directmhp_label_writer_and_loader_read_the_export(coco):
    out, summary = coco
    data = yaml.safe_load((out / "directmhp.yaml").read_text())
    assert data["path"] == str(out.resolve()) and data["nc"] == 1 and data["num_angles"] == 3
    directmhp_write_yolov5_labels(data)            # raised FileNotFoundError / KeyError on the old export
    for split in ("train", "val"):
        img_files = sorted(Path(out / data[split]).read_text().split())
        assert len(img_files) == summary[split]["images"] > 0
        assert all(Path(p).is_file() for p in img_files)
        for label in directmhp_img2label_paths(img_files, data["labels"]):
            values = np.loadtxt(label, ndmin=2)
            assert values.shape[1] == 8
            assert ((values[:, [5, 7]] > 0) & (values[:, [5, 7]] < 1)).all()       # pitch, roll
            assert ((values[:, 6] > 0) & (values[:, 6] <= 1)).all()                # yaw


def test_directmhp_ids_are_the_file_stems(coco):
    """val.py: image_id = int(stem); COCOeval's imgIds = [int(stem) for the image files]; the
    results' image ids must all be in the annotation file (pycocotools loadRes)."""
    out, _ = coco
    ids = set()
    for split in ("train", "val"):
        doc = json.loads((out / f"{split}.json").read_text())
        stems = [Path(p).stem for p in sorted((out / "images" / split).iterdir())]
        assert all(s.isnumeric() for s in stems)
        assert sorted(int(s) for s in stems) == sorted(i["id"] for i in doc["images"])
        assert len({i["id"] for i in doc["images"]}) == len(doc["images"])
        ids |= {i["id"] for i in doc["images"]}
    rows = {(r[0], r[1], r[2], r[3]) for r in csv.reader((out / "image_ids.csv").open())}
    assert ("image_id", "sequence", "camera", "frame") in rows and len(rows) == len(ids) + 1
    for image_id, seq, cam, frame in rows - {("image_id", "sequence", "camera", "frame")}:
        number, f, c = decode_image_id(int(image_id))
        assert (number, f, c) == ({"seq_a": 1, "seq_b": 2}[seq], int(frame), 1) and cam == "00_01"
        copies = [p for p in (out / "images" / s / f"{image_id}.jpg" for s in ("train", "val")) if p.is_file()]
        assert copies and all(p.read_bytes() == f"frame {seq} {int(frame)}".encode() for p in copies)


def test_directmhp_evaluation_and_cmu_scripts_read_every_head(coco):
    out, _ = coco
    for split in ("train", "val"):
        doc = json.loads((out / f"{split}.json").read_text())
        assert all(a["iscrowd"] == 0 and len(a["euler_angles"]) == 3 for a in doc["annotations"])
        by_image = {}
        for a in doc["annotations"]:
            by_image.setdefault(str(a["image_id"]), []).append(a)
        assert all(str(i["id"]) in by_image for i in doc["images"])          # gen_dataset_full_AGORA_CMU
        perfect = [{"image_id": a["image_id"], "bbox": a["bbox"], "score": 1.0, "pitch": a["euler_angles"][0],
                    "yaw": a["euler_angles"][1], "roll": a["euler_angles"][2]} for a in doc["annotations"]]
        total, matched, mae = directmhp_mae_v1(doc, perfect)
        assert total == matched == len(doc["annotations"]) and mae == pytest.approx([0, 0, 0])


def test_heads_directmhp_cannot_label_are_left_out_and_counted(coco, dataset):
    out, summary = coco
    rows = read_columns(dataset, ["sequence", "split", "frame", "pitch", "roll"]).to_pandas()
    beyond = rows[np.maximum(rows.pitch.abs(), rows.roll.abs()) >= 90]
    assert len(beyond) == 4                                               # train frame 3, val frame 5, two sequences
    for split in ("train", "val"):
        doc = json.loads((out / f"{split}.json").read_text())
        frames = {(i["sequence"], i["frame"]) for i in doc["images"]}
        bad = 3 if split == "train" else 5
        assert frames == {(s, f) for s in ("seq_a", "seq_b") for f in range(12) if f != bad}
        assert summary[split] == {"images": 22, "annotations": 22}
    assert summary["left_out"]["beyond_90_images"] == 4 and summary["left_out"]["beyond_90_heads"] == 4
    assert summary["left_out"]["other_split"] == 48       # every frame's head of the other split
    assert json.loads((out / "summary.json").read_text()) == summary


# ----------------------------------------------------------------------------- 6DRepNet

def sixdrepnet_get_R(x, y, z):
    """6DRepNet utils.get_R(x, y, z): Rz(z) @ Ry(y) @ Rx(x), right-handed, radians."""
    Rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    Ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    Rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return Rz.dot(Ry.dot(Rx))


def sixdrepnet_matrix_from_ortho6d(poses):
    """6DRepNet utils.compute_rotation_matrix_from_ortho6d (one pose, numpy)."""
    x = poses[0:3] / np.linalg.norm(poses[0:3])
    z = np.cross(x, poses[3:6])
    z = z / np.linalg.norm(z)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def test_6drepnet_target_from_our_300wlp_export(dataset, tmp_path):
    """Pose_300W_LP: Pose_Para[0][:3] in radians -> get_R(pitch, yaw, roll) is
    R_cam_head.T @ diag(1, -1, -1), whose 6D form is sixd_6drepnet_from_matrix(R_cam_head)."""
    export_300wlp(dataset, tmp_path / "300wlp", max_angle_deg=99.0)
    rows = {r["sample_id"]: r for r in read_columns(dataset, ["sample_id", "R_cam_head"]).to_pylist()}
    names = (tmp_path / "300wlp" / "train_filenames.txt").read_text().split()
    assert names
    for name in names:
        pitch, yaw, roll = sio.loadmat(tmp_path / "300wlp" / f"{name}.mat")["Pose_Para"][0][:3]
        seq, cam, stem = name.split("/")[1:]
        frame, person = stem.split("_")
        R = np.asarray(rows[f"{seq}/{frame}/{person}/{cam}"]["R_cam_head"]).reshape(3, 3)
        target = sixdrepnet_get_R(pitch, yaw, roll)
        np.testing.assert_allclose(target, R.T @ F, atol=1e-12)
        six = sixd_6drepnet_from_matrix(R)
        np.testing.assert_allclose(six, np.concatenate([target[:, 0], target[:, 1]]), atol=1e-12)
        np.testing.assert_allclose(sixdrepnet_matrix_from_ortho6d(six), target, atol=1e-12)


def test_6drepnet_6d_is_not_our_rot6d():
    """At zero pose rot6d is (1, 0, 0, 0, -1, 0), 6DRepNet's (1, 0, 0, 0, 1, 0): the forms
    differ by up to 2 and only sixd_6drepnet_from_matrix is 6DRepNet's target."""
    rng = np.random.default_rng(0)
    ypr = np.column_stack([rng.uniform(-180, 180, 500), rng.uniform(-89, 89, 500), rng.uniform(-89, 89, 500)])
    R = matrix_from_euler(*np.radians(ypr).T)
    target = np.stack([sixdrepnet_get_R(*np.radians([p, y, r])) for y, p, r in ypr])
    np.testing.assert_allclose(sixd_6drepnet_from_matrix(R), np.concatenate([target[:, :, 0], target[:, :, 1]], 1),
                               atol=1e-12)
    zero = matrix_from_euler(0.0, 0.0, 0.0)
    assert np.abs(sixd_from_matrix(zero) - sixd_6drepnet_from_matrix(zero)).max() == pytest.approx(2.0)


# ----------------------------------------------------------------------------- WHENet

def test_whenet_list_reader(dataset, tmp_path):
    """A WHENet-style reader: each line split on ',' into image, yaw, pitch, roll, the image
    opened relative to the list's folder."""
    export_whenet(dataset, tmp_path / "whenet")
    want = read_columns(dataset, ["yaw", "pitch", "roll"], split="val").to_pandas()
    lines = (tmp_path / "whenet" / "val.txt").read_text().splitlines()
    assert len(lines) == len(want)
    for line, w in zip(lines, want.itertuples()):
        image, yaw, pitch, roll = line.split(",")
        assert (tmp_path / "whenet" / image).is_file()
        assert (float(yaw), float(pitch), float(roll)) == pytest.approx((w.yaw, w.pitch, w.roll), abs=1e-4)
