"""COCO-style full-frame export with head boxes, Euler angles and 6DoF poses, laid out so
that DirectMHP's own scripts read it as they are.

Layout under ``out_dir``::

    <split>.json                 the COCO document of a split
    images/<split>/<id>.jpg      its full frames (hard links to <dataset>/frames/..., else copies)
    image_ids.csv                image_id,sequence,camera,frame: the id of every frame
    directmhp.yaml               DirectMHP's data config (path = this folder)
    summary.json                 images and heads per split, and what was left out, why

What DirectMHP's code needs, and how this export meets it:

- ``utils/labels.py`` writes one YOLO label file per image at
  ``<path>/<labels>/<split>/<file stem>.txt`` without creating sub-folders, and lists
  images as ``<path>/images/<split>/<file_name>``: ``file_name`` is flat, ``<id>.jpg``.
- ``val.py`` takes ``int(file stem)`` as the COCO image id: ids are integers, unique across
  splits, in DirectMHP's own layout ``1 ss FFFFFF cc`` (``annotate.datasets.exports.image_ids``);
  ``image_ids.csv`` maps them back.
- ``labels.py`` skips ``iscrowd`` heads only in train, and ``labels.py`` and ``utils/mae.py``
  read ``euler_angles`` of every other head: no head without a pose is listed. Heads of the
  same frame that belong to another split (subject splits) are left out and counted
  (``summary.json``: ``left_out.other_split``); so are images whose every own head is left
  out. (Those heads are unlabelled in the image: a detector trained on such a frame sees
  them as background; ``dataset.split.by: sequence`` has no such frames.)
- Its labelling (``select_euler``) keeps only heads with an Euler triple whose pitch and
  roll are both within +-90 deg, and drops every frame holding a head without one (its
  CMU converter skips a frame with any unlabelled face): frames with an own head beyond
  that range are left out with all their heads (``left_out.beyond_90``), which keeps
  ``pitch / 180 + 0.5`` and ``roll / 180 + 0.5`` of its YOLO labels within (0, 1).
- ``mae.py`` and its CMU scripts index heads by image id: every image listed has a head.

Each image: ``id``, ``file_name``, ``width``, ``height``, ``sequence``, ``camera_name``,
``frame``, ``seq`` (as DirectMHP's split files name it), and ``camera``: the full-frame
intrinsics ``K`` (3x3, px) and ``dist`` (k1, k2, p1, p2, k3, OpenCV) in which ``pose`` is
expressed. Each annotation (category 1 "head"): ``bbox`` [x, y, w, h] (the head box clipped
to the image, px), ``area``, ``iscrowd`` 0, ``euler_angles`` [pitch, yaw, roll] in degrees
(DirectMHP's order; WHENet's convention, which is ours, yaw full range), ``yaw``/``pitch``/
``roll`` by name, ``pose`` [rx, ry, rz, tx, ty, tz] (img2pose's 6DoF: rotation vector in
radians, translation of the head centre in camera cm), ``R_cam_head`` (row-major, the
truth), ``person``, ``sample_id``.

img2pose's 3D face model has x toward the subject's left, y down and z into the head, i.e.
our head frame with y and z negated, so ``pose``'s rotation is that of
``R_cam_head @ diag(1, -1, -1)`` (identity for a frontal face). DirectMHP's img2pose
conversion (scipy ``as_euler('xyz')`` of its transpose, then yaw and roll negated) gives
back our [pitch, yaw, roll] for |yaw| < 90 (beyond, as_euler returns the other branch of the
same rotation). The translation is metric (cm) with the given K, not img2pose's
bounding-box intrinsics.
"""
from __future__ import annotations

import json
import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from annotate.core.atomic import staged_folder
from annotate.core.names import check_name
from annotate.datasets.exports.common import dataset_splits
from annotate.datasets.exports.image_ids import image_id, sequence_numbers
from annotate.datasets.readers import read_columns
from annotate.geometry.rotations import rotvec_from_matrix

COLUMNS = ["sample_id", "split", "sequence", "camera", "camera_index", "frame", "person", "box", "yaw", "pitch",
           "roll", "R_cam_head", "head_centre_cam", "K", "dist", "image_width", "image_height"]
IMG2POSE_FROM_HEAD = np.diag([1.0, -1.0, -1.0])
EULER_LIMIT_DEG = 90.0         # select_euler: |pitch| and |roll| strictly below


def frame_key(r: dict) -> tuple[str, str, int]:
    """(sequence, camera, frame) of a record, names checked before they make paths."""
    where = f"shard record {r['sample_id']}"
    return (check_name(r["sequence"], "sequence", where), check_name(r["camera"], "camera", where), int(r["frame"]))


def frame_file(key: tuple[str, str, int]) -> str:
    """The full frame's path under ``<dataset>/frames``."""
    return f"{key[0]}/{key[1]}/{key[2]:08d}.jpg"


def within_euler_range(r: dict) -> bool:
    """The head has an Euler triple with pitch and roll within +-90 deg (ours is it when any is)."""
    return abs(float(r["pitch"])) < EULER_LIMIT_DEG and abs(float(r["roll"])) < EULER_LIMIT_DEG


def _image_entry(iid: int, r: dict) -> dict:
    return {"id": iid, "file_name": f"{iid}.jpg", "width": int(r["image_width"]), "height": int(r["image_height"]),
            "sequence": r["sequence"], "seq": r["sequence"], "camera_name": r["camera"], "frame": int(r["frame"]),
            "camera": {"K": np.asarray(r["K"]).reshape(3, 3).tolist(), "dist": np.asarray(r["dist"]).tolist()}}


def _annotation(ann_id: int, iid: int, r: dict) -> dict:
    x0, y0, x1, y1 = (float(v) for v in r["box"])
    R = np.asarray(r["R_cam_head"], np.float64).reshape(3, 3)
    rotvec = rotvec_from_matrix(R @ IMG2POSE_FROM_HEAD)
    return {"id": ann_id, "image_id": iid, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": (x1 - x0) * (y1 - y0), "iscrowd": 0, "segmentation": [],
            "euler_angles": [float(r["pitch"]), float(r["yaw"]), float(r["roll"])],
            "yaw": float(r["yaw"]), "pitch": float(r["pitch"]), "roll": float(r["roll"]),
            "pose": [*map(float, rotvec), *map(float, r["head_centre_cam"])], "R_cam_head": R.reshape(-1).tolist(),
            "person": int(r["person"]), "sample_id": r["sample_id"]}


def _info(split: str) -> dict:
    return {"description": f"annotate head-pose dataset, split {split}", "version": "2.0",
            "image_root": f"images/{split}; file_name is <image id>.jpg, image_ids.csv maps ids to frames",
            "euler_convention": "deg; R_cam_head @ diag(1,-1,-1) == Rx(-pitch) Ry(yaw) Rz(roll) "
                                "(WHENet/DirectMHP/300W-LP/HopeNet); euler_angles = [pitch, yaw, roll]",
            "pose": "[rx, ry, rz, tx, ty, tz]: rotation vector (rad) of R_cam_head @ diag(1,-1,-1), "
                    "head centre in camera cm, camera = images[].camera"}


def coco_documents(dataset_dir: str | Path) -> tuple[dict[str, dict], dict[int, tuple], dict]:
    """({split: COCO document}, {image id: (sequence, camera, frame)}, left-out counts),
    from the label columns of every shard (no image is read)."""
    rows = read_columns(dataset_dir, COLUMNS).to_pylist()
    by_frame = defaultdict(list)
    for r in rows:
        by_frame[frame_key(r)].append(r)
    numbers = sequence_numbers(k[0] for k in by_frame)
    ids = {}
    for key, group in by_frame.items():
        try:
            ids[key] = image_id(numbers[key[0]], key[2], int(group[0]["camera_index"]))
        except ValueError as err:
            raise ValueError(f"shard record {group[0]['sample_id']}: {err}") from None
    docs, left_out = {}, Counter()
    for split in dataset_splits(dataset_dir):
        images, annotations = [], []
        for key in sorted(by_frame):
            own = sorted((r for r in by_frame[key] if r["split"] == split), key=lambda r: int(r["person"]))
            if not own:
                continue
            others = len(by_frame[key]) - len(own)
            if not all(within_euler_range(r) for r in own):
                left_out["beyond_90_images"] += 1
                left_out["beyond_90_heads"] += len(own)
                left_out["other_split"] += others
                continue
            left_out["other_split"] += others
            iid = ids[key]
            images.append(_image_entry(iid, own[0]))
            annotations += [_annotation(len(annotations) + 1, iid, r) for r in own]
        docs[split] = {"info": _info(split), "images": images, "annotations": annotations,
                       "categories": [{"id": 1, "name": "head", "supercategory": "person"}]}
    return docs, {v: k for k, v in ids.items()}, dict(left_out)


def directmhp_yaml(path: Path, splits: list[str]) -> str:
    """DirectMHP's data config for this export at ``path``."""
    lines = ["# DirectMHP data config (python utils/labels.py --data this file; then train.py / val.py)",
             f"path: {json.dumps(str(path))}", "labels: yolov5_labels"]
    lines += [f"{s}: yolov5_labels/img_txt/{s}.txt" for s in splits]
    lines += [f"{s}_annotations: {s}.json" for s in splits]
    lines += ["nc: 1", "num_angles: 3", "names: ['person']"]
    return "\n".join(lines) + "\n"


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (no second copy of the frame), or a copy across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def export_coco(dataset_dir: str | Path, out_dir: str | Path) -> dict:
    """Write the export (module docstring); returns the summary (also ``summary.json``):
    {split: {"images": n, "annotations": n}, "left_out": {reason: n}}."""
    frames_dir = Path(dataset_dir) / "frames"
    docs, frame_of, left_out = coco_documents(dataset_dir)
    missing = [frame_file(frame_of[img["id"]]) for d in docs.values() for img in d["images"]
               if not (frames_dir / frame_file(frame_of[img["id"]])).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} full frames missing under {frames_dir} (first: {missing[0]}); "
                                "build the dataset with dataset.exports.coco on")
    summary = {split: {"images": len(d["images"]), "annotations": len(d["annotations"])} for split, d in docs.items()}
    summary["left_out"] = {k: left_out.get(k, 0) for k in ("other_split", "beyond_90_images", "beyond_90_heads")}
    final = Path(out_dir).resolve()
    with staged_folder(out_dir) as stage:
        for split, doc in docs.items():
            (stage / f"{split}.json").write_text(json.dumps(doc))
            (stage / "images" / split).mkdir(parents=True)
            for img in doc["images"]:
                link_or_copy(frames_dir / frame_file(frame_of[img["id"]]), stage / "images" / split / img["file_name"])
        listed = sorted({img["id"] for d in docs.values() for img in d["images"]})
        (stage / "image_ids.csv").write_text("image_id,sequence,camera,frame\n" + "".join(
            f"{i},{frame_of[i][0]},{frame_of[i][1]},{frame_of[i][2]}\n" for i in listed))
        (stage / "directmhp.yaml").write_text(directmhp_yaml(final, list(docs)))
        (stage / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
