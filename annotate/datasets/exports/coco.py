"""COCO-style full-frame export with head boxes, Euler angles and 6DoF poses.

One JSON per split, ``<out_dir>/<split>.json``, over the full frames that the build wrote
to ``<dataset>/frames/<sequence>/<camera>/<frame:08d>.jpg`` (``file_name`` is relative to
that folder, named in ``info.image_root``). Standard COCO keys plus what DirectMHP and
img2pose read:

- ``images``: ``id``, ``file_name``, ``width``, ``height``, and ``camera``: the full-frame
  intrinsics ``K`` (3x3, px) and ``dist`` (k1, k2, p1, p2, k3, OpenCV) in which ``pose``
  is expressed; ``sequence``, ``camera_name``, ``frame``.
- ``annotations`` (category 1 "head"): ``bbox`` [x, y, w, h] (the head box clipped to the
  image, px), ``area``, ``iscrowd`` 0, ``euler_angles`` [pitch, yaw, roll] in degrees
  (DirectMHP's order; our convention, yaw full range), ``yaw``/``pitch``/``roll`` by
  name, ``pose`` [rx, ry, rz, tx, ty, tz] (img2pose's 6DoF: rotation vector in radians,
  translation of the head centre in camera cm), ``R_cam_head`` (row-major, the truth),
  ``person``, ``sample_id``.

img2pose's 3D face model has x toward the subject's left, y down and z into the head,
i.e. our head frame with y and z negated, so ``pose``'s rotation is that of
``R_cam_head @ diag(1, -1, -1)`` (identity for a frontal face). DirectMHP's img2pose
conversion (scipy ``as_euler('xyz')`` of its transpose, then yaw and roll negated) gives
back our [pitch, yaw, roll] for |yaw| < 90 (beyond, as_euler returns the other branch of
the same rotation). The translation is metric (cm) with the given K, not img2pose's
bounding-box intrinsics.

Heads of the same frame that belong to another split (subject splits) are listed with
``iscrowd`` 1 and no pose, so detectors trained on one split treat them as "ignore" rather
than background.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from annotate.atomic import staged_folder
from annotate.datasets.exports.common import dataset_splits
from annotate.datasets.readers import read_columns
from annotate.geometry.rotations import rotvec_from_matrix
from annotate.names import check_name

COLUMNS = ["sample_id", "split", "sequence", "camera", "frame", "person", "box", "yaw", "pitch", "roll", "R_cam_head",
           "head_centre_cam", "K", "dist", "image_width", "image_height"]
IMG2POSE_FROM_HEAD = np.diag([1.0, -1.0, -1.0])


def _image_entry(image_id: int, r: dict) -> dict:
    where = f"shard record {r['sample_id']}"
    return {"id": image_id, "file_name": f"{check_name(r['sequence'], 'sequence', where)}/"
                                         f"{check_name(r['camera'], 'camera', where)}/{int(r['frame']):08d}.jpg",
            "width": int(r["image_width"]), "height": int(r["image_height"]),
            "sequence": r["sequence"], "camera_name": r["camera"], "frame": int(r["frame"]),
            "camera": {"K": np.asarray(r["K"]).reshape(3, 3).tolist(), "dist": np.asarray(r["dist"]).tolist()}}


def _annotation(ann_id: int, image_id: int, r: dict, own_split: bool) -> dict:
    x0, y0, x1, y1 = (float(v) for v in r["box"])
    ann = {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
           "area": (x1 - x0) * (y1 - y0), "iscrowd": 0 if own_split else 1, "segmentation": [],
           "person": int(r["person"]), "sample_id": r["sample_id"]}
    if own_split:
        R = np.asarray(r["R_cam_head"], np.float64).reshape(3, 3)
        rotvec = rotvec_from_matrix(R @ IMG2POSE_FROM_HEAD)
        ann.update({"euler_angles": [float(r["pitch"]), float(r["yaw"]), float(r["roll"])],
                    "yaw": float(r["yaw"]), "pitch": float(r["pitch"]), "roll": float(r["roll"]),
                    "pose": [*map(float, rotvec), *map(float, r["head_centre_cam"])],
                    "R_cam_head": R.reshape(-1).tolist()})
    return ann


def coco_documents(dataset_dir: str | Path) -> dict[str, dict]:
    """{split: COCO document} from the label columns of every shard (no image is read)."""
    table = read_columns(dataset_dir, COLUMNS)
    rows = table.to_pylist()
    by_frame = defaultdict(list)
    for r in rows:
        by_frame[(r["sequence"], r["camera"], int(r["frame"]))].append(r)
    docs = {}
    for split in dataset_splits(dataset_dir):
        images, annotations = [], []
        for key in sorted(by_frame):
            group = by_frame[key]
            if not any(r["split"] == split for r in group):
                continue
            image_id = len(images) + 1
            images.append(_image_entry(image_id, group[0]))
            for r in sorted(group, key=lambda r: int(r["person"])):
                annotations.append(_annotation(len(annotations) + 1, image_id, r, r["split"] == split))
        docs[split] = {
            "info": {"description": f"annotate head-pose dataset, split {split}", "version": "1.0",
                     "image_root": "frames (results/dataset/frames); file_name is relative to it",
                     "euler_convention": "deg; R_cam_head @ diag(1,-1,-1) == Rx(-pitch) Ry(yaw) Rz(roll) "
                                         "(WHENet/300W-LP/HopeNet); euler_angles = [pitch, yaw, roll]",
                     "pose": "[rx, ry, rz, tx, ty, tz]: rotation vector (rad) of R_cam_head @ diag(1,-1,-1), "
                             "head centre in camera cm, camera = images[].camera"},
            "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "head", "supercategory": "person"}]}
    return docs


def export_coco(dataset_dir: str | Path, out_dir: str | Path) -> dict:
    """Write ``<out_dir>/<split>.json``; returns {split: {"images": n, "annotations": n}}."""
    import json

    frames_dir = Path(dataset_dir) / "frames"
    docs = coco_documents(dataset_dir)
    missing = [img["file_name"] for d in docs.values() for img in d["images"]
               if not (frames_dir / img["file_name"]).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} full frames missing under {frames_dir} (first: {missing[0]}); "
                                "build the dataset with dataset.exports.coco on")
    counts = {}
    with staged_folder(out_dir) as stage:
        for split, doc in docs.items():
            (stage / f"{split}.json").write_text(json.dumps(doc))
            counts[split] = {"images": len(doc["images"]),
                             "annotations": sum(a["iscrowd"] == 0 for a in doc["annotations"])}
    return counts
