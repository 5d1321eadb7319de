"""Other people's head-pose labels of Panoptic frames: read (and write) their published formats.

Three formats, each turned into one ``ExternalLabels`` record per label, with the pose as a
rotation in this project's convention (``R_cam_head``, docs/conventions.md) and its
canonical Euler angles:

- ``whenet``: WHENet's Panoptic annotation lists, one line per head crop,
  ``<seq>/<CC>_<k>_<FFFFFFFF>.jpg,<yaw>,<pitch>,<roll>`` (CC: the HD camera number of
  ``00_CC``; k: WHENet's face index in the frame; F: the HD frame). A path with more leading
  folders (a ``PANOPTIC/`` tag of the combined lists) is accepted; WHENet's variant with a
  visibility count (``<CC>_<k>_<VV>_<F>.jpg``) too. The angles are WHENet's, which are this
  project's convention. k is not a Panoptic person id: it counts the faces of the frame's
  ``hdFace3d`` file, in file order, that WHENet could fit (``annotate.audit.compare``
  resolves it). Lines whose file name is not a Panoptic crop (``300W`` lines of a combined
  list) are kept as records with ``problem`` ``not_panoptic``.
- ``directmhp``: DirectMHP's COCO JSON of CMU Panoptic frames: ``images`` (``id``,
  ``file_name``, ``seq``) and ``annotations`` (``image_id``, ``bbox`` [x, y, w, h] px,
  ``euler_angles`` [pitch, yaw, roll] deg, WHENet's convention). The camera and frame come
  from the image id (DirectMHP's layout ``1 ss FFFFFF cc``, ``annotate.datasets.exports.coco``)
  unless the image names them (``camera_name``, ``frame``, as this project's export does);
  the sequence from ``seq`` (or ``sequence``). Heads without ``euler_angles`` (``iscrowd``
  heads) are records with ``problem`` ``no_pose``.
- ``opal``: opal23's lists (pcr-upm/opal23_headpose ``panoptic_ann_*.txt``):
  ``<seq>/hdImgs/<cam>/<cam>_<FFFFFFFF>.jpg;x;y;w;h;yaw;pitch;roll`` with ``#`` header
  lines. Its reader makes ``Rotation.from_euler('XYZ', [pitch, yaw, roll])``, which is
  ``D @ R_cam_head @ diag(1, -1, -1) @ D`` with ``D = diag(1, 1, -1)``: opal's yaw is the
  negative of ours, pitch and roll are the same (checked on opal's published list of
  171204_pose2 against the Panoptic rig's camera rotations: 31 cameras agree on one head
  rotation to 0.2 deg median under this reading, to no better than 20 deg under the others).

Malformed lines or documents raise ``ValueError`` naming the file and the line or entry.
The writers produce the same formats from label rows (tests, benchmarks).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from annotate.core.atomic import write_json_atomic, write_text_atomic
from annotate.core.names import check_name
from annotate.datasets.exports.image_ids import decode_image_id, image_id, sequence_numbers
from annotate.geometry.rotations import euler_from_matrix, matrix_from_euler

FORMATS = ("whenet", "directmhp", "opal")
# WHENet crop names: camera number, face index, optional visibility count, frame.
WHENET_NAME = re.compile(r"(\d{2})_(\d+)(?:_\d{2})?_(\d{8})\.jpg")
OPAL_NAME = re.compile(r"(\d{2}_\d{2})_(\d{8})\.jpg")


@dataclass
class ExternalLabels:
    """The labels of one file, one entry per label (arrays aligned by entry).

    entry: the line number (whenet, opal) or annotation id (directmhp); sequence, camera
    ('' when unknown), frame (-1), face_index (WHENet's k, -1 otherwise); box (N, 4) x0,
    y0, x1, y1 px (NaN for whenet); R_cam_head (N, 3, 3) and yaw_pitch_roll (N, 3) deg in
    this project's convention (NaN without a pose); problem: '' or why the entry cannot be
    compared (not_panoptic, no_pose).
    """

    source: str
    format: str
    entry: np.ndarray
    sequence: list[str]
    camera: list[str]
    frame: np.ndarray
    face_index: np.ndarray
    box: np.ndarray
    R_cam_head: np.ndarray
    yaw_pitch_roll: np.ndarray
    problem: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entry)


class _Rows:
    """Collects entries while a file is parsed."""

    def __init__(self):
        self.cols = {k: [] for k in ("entry", "sequence", "camera", "frame", "face_index", "box", "ypr", "problem")}

    def add(self, entry, sequence="", camera="", frame=-1, face_index=-1, box=(np.nan,) * 4,
            ypr=(np.nan,) * 3, problem=""):
        for k, v in zip(self.cols, (entry, sequence, camera, frame, face_index, box, ypr, problem)):
            self.cols[k].append(v)

    def labels(self, source: str, fmt: str, to_matrix) -> ExternalLabels:
        """``to_matrix``: (N, 3) the format's own (yaw, pitch, roll) deg -> (N, 3, 3) R_cam_head."""
        c = self.cols
        raw = np.asarray(c["ypr"], np.float64).reshape(-1, 3)
        R = to_matrix(raw)
        ypr = np.degrees(euler_from_matrix(R))
        return ExternalLabels(str(source), fmt, np.asarray(c["entry"], np.int64), c["sequence"], c["camera"],
                              np.asarray(c["frame"], np.int64), np.asarray(c["face_index"], np.int64),
                              np.asarray(c["box"], np.float64).reshape(-1, 4), R, ypr, c["problem"])


def _ours_to_matrix(ypr_deg: np.ndarray) -> np.ndarray:
    """WHENet's and DirectMHP's angles are this project's convention."""
    y, p, r = np.radians(ypr_deg).T
    return matrix_from_euler(y, p, r)


def _opal_to_matrix(ypr_deg: np.ndarray) -> np.ndarray:
    """opal's (yaw, pitch, roll): our rotation with yaw negated (module docstring)."""
    y, p, r = np.radians(ypr_deg).T
    return matrix_from_euler(-y, p, r)


def _floats(values, where: str) -> list[float]:
    try:
        return [float(v) for v in values]
    except ValueError:
        raise ValueError(f"{where}: expected numbers, got {list(values)!r}") from None


def read_whenet_list(path: str | Path) -> ExternalLabels:
    """A WHENet annotation list (module docstring)."""
    rows = _Rows()
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        parts = line.strip().rsplit(",", 3)
        if len(parts) != 4:
            raise ValueError(f"{where}: expected '<image>,<yaw>,<pitch>,<roll>', got {line!r}")
        yaw, pitch, roll = _floats(parts[1:], where)
        image = PurePosixPath(parts[0])
        m = WHENET_NAME.fullmatch(image.name)
        if m is None or len(image.parts) < 2:
            rows.add(n, ypr=(yaw, pitch, roll), problem="not_panoptic")
            continue
        seq = check_name(image.parts[-2], "sequence", where)
        rows.add(n, seq, f"00_{m.group(1)}", int(m.group(3)), int(m.group(2)), ypr=(yaw, pitch, roll))
    return rows.labels(path, "whenet", _ours_to_matrix)


def read_directmhp_coco(path: str | Path) -> ExternalLabels:
    """A DirectMHP COCO JSON (module docstring)."""
    try:
        doc = json.loads(Path(path).read_text())
        images, annotations = doc["images"], doc["annotations"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a COCO document with 'images' and 'annotations' ({err})") from None
    where_images = {}
    for img in images:
        iid = img.get("id")
        where = f"{path}: image {iid}"
        seq = img.get("seq", img.get("sequence"))
        if seq is None:
            raise ValueError(f"{where} has no 'seq' (or 'sequence'): the sequence of a DirectMHP image is only "
                             "in its split files (coco_style_sampled_*.json)")
        if "camera_name" in img and "frame" in img:
            cam, frame = check_name(img["camera_name"], "camera", where), int(img["frame"])
        else:
            _, frame, number = decode_image_id(int(iid))
            cam = f"00_{number:02d}"
        where_images[iid] = (check_name(seq, "sequence", where), cam, frame)
    rows = _Rows()
    for a in annotations:
        aid = a.get("id")
        where = f"{path}: annotation {aid}"
        if a.get("image_id") not in where_images:
            raise ValueError(f"{where} names image {a.get('image_id')!r}, which is not in 'images'")
        seq, cam, frame = where_images[a["image_id"]]
        bbox = a.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ValueError(f"{where} has no bbox [x, y, w, h] (got {bbox!r})")
        x, y, w, h = _floats(bbox, where)
        box = (x, y, x + w, y + h)
        if "euler_angles" not in a:
            rows.add(int(aid), seq, cam, frame, box=box, problem="no_pose")
            continue
        if not isinstance(a["euler_angles"], list) or len(a["euler_angles"]) != 3:
            raise ValueError(f"{where}: euler_angles must be [pitch, yaw, roll], got {a['euler_angles']!r}")
        pitch, yaw, roll = _floats(a["euler_angles"], where)
        rows.add(int(aid), seq, cam, frame, box=box, ypr=(yaw, pitch, roll))
    return rows.labels(path, "directmhp", _ours_to_matrix)


def read_opal_list(path: str | Path) -> ExternalLabels:
    """An opal23 annotation list (module docstring)."""
    rows = _Rows()
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.strip().split(";")
        if not line.strip() or parts[0] in ("#", "@"):
            continue
        where = f"{path}:{n}"
        if len(parts) != 8:
            raise ValueError(f"{where}: expected 'image;x;y;w;h;yaw;pitch;roll', got {line!r}")
        x, y, w, h, yaw, pitch, roll = _floats(parts[1:], where)
        image = PurePosixPath(parts[0])
        m = OPAL_NAME.fullmatch(image.name)
        if m is None or len(image.parts) < 4 or image.parts[-3] != "hdImgs":
            rows.add(n, box=(x, y, x + w, y + h), ypr=(yaw, pitch, roll), problem="not_panoptic")
            continue
        seq = check_name(image.parts[-4], "sequence", where)
        rows.add(n, seq, m.group(1), int(m.group(2)), box=(x, y, x + w, y + h), ypr=(yaw, pitch, roll))
    return rows.labels(path, "opal", _opal_to_matrix)


READERS = {"whenet": read_whenet_list, "directmhp": read_directmhp_coco, "opal": read_opal_list}


def read_external_labels(path: str | Path, fmt: str) -> ExternalLabels:
    """Read ``path`` in format ``fmt`` (one of FORMATS)."""
    if fmt not in READERS:
        raise ValueError(f"unknown label format {fmt!r} (one of {', '.join(FORMATS)})")
    return READERS[fmt](path)


# ----------------------------------------------------------------------------- writers

def _camera_number(camera: str) -> int:
    m = re.fullmatch(r"00_(\d{2})", camera)
    if m is None:
        raise ValueError(f"camera {camera!r} is not an HD camera name 00_CC, which these formats need")
    return int(m.group(1))


def write_whenet_list(path: str | Path, sequence, camera, frame, face_index, yaw_pitch_roll) -> Path:
    """WHENet's list lines for N labels (face_index: WHENet's k; angles (N, 3) deg, ours)."""
    lines = [f"{s}/{_camera_number(c):02d}_{int(k)}_{int(f):08d}.jpg,{y!r},{p!r},{r!r}"
             for s, c, f, k, (y, p, r) in zip(sequence, camera, frame, face_index, np.asarray(yaw_pitch_roll).tolist())]
    return write_text_atomic(path, "".join(line + "\n" for line in lines))


def write_opal_list(path: str | Path, sequence, camera, frame, box, yaw_pitch_roll) -> Path:
    """opal's list for N labels (box (N, 4) x0, y0, x1, y1 px, written as integers x;y;w;h)."""
    lines = ["#;image;x_min;y_min;w;h;yaw;pitch;roll"]
    for s, c, f, b, (y, p, r) in zip(sequence, camera, frame, np.asarray(box), np.asarray(yaw_pitch_roll).tolist()):
        x0, y0, x1, y1 = (int(round(v)) for v in b)
        lines.append(f"{s}/hdImgs/{c}/{c}_{int(f):08d}.jpg;{x0};{y0};{x1 - x0};{y1 - y0};{-y!r};{p!r};{r!r}")
    return write_text_atomic(path, "".join(line + "\n" for line in lines))


def write_directmhp_coco(path: str | Path, sequence, camera, frame, box, yaw_pitch_roll,
                         width: int = 1920, height: int = 1080) -> Path:
    """DirectMHP's COCO JSON for N labels, as its CMU converter writes it: one image per
    (sequence, camera, frame) with id ``1 ss FFFFFF cc`` (sequence number: position in the
    sorted sequence names, from 1), annotation ids ``image_id * 100 + k``, integer boxes,
    ``iscrowd`` 0, ``seq`` on each image (as its split files have it)."""
    numbers = sequence_numbers(sequence)
    images, annotations, index = {}, [], {}
    for s, c, f, b, (y, p, r) in zip(sequence, camera, frame, np.asarray(box), np.asarray(yaw_pitch_roll).tolist()):
        iid = image_id(numbers[s], int(f), _camera_number(c))
        if iid not in images:
            images[iid] = {"file_name": f"{iid}.jpg", "height": height, "width": width, "id": iid, "seq": s}
        k = index[iid] = index.get(iid, -1) + 1
        x0, y0, x1, y1 = (int(round(v)) for v in b)
        annotations.append({"bbox": [x0, y0, x1 - x0, y1 - y0], "euler_angles": [p, y, r], "image_id": iid,
                            "id": iid * 100 + k, "category_id": 1, "iscrowd": 0, "segmentation": [],
                            "area": float((x1 - x0) * (y1 - y0))})
    doc = {"images": list(images.values()), "annotations": annotations,
           "categories": [{"supercategory": "person", "id": 1, "name": "person"}]}
    return write_json_atomic(path, doc)
