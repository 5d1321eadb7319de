"""Read and write Panoptic ``calibration_<seq>.json`` files.

The real format::

    {"calibDataSource": "160906_calib_norm",
     "cameras": [{"name": "00_00", "type": "hd", "resolution": [1920, 1080],
                  "panel": 0, "node": 0,
                  "K": [[fx, s, cx], [0, fy, cy], [0, 0, 1]],          # pixels
                  "distCoef": [k1, k2, p1, p2, k3],                      # OpenCV order
                  "R": [[...], [...], [...]],                            # world -> camera
                  "t": [[tx], [ty], [tz]]},                              # cm
                 ...]}

with ``x_cam = R @ x_world + t``; the world is in centimetres and its y axis points down.
A real file holds 31 HD cameras (``00_00``..``00_30``), 479 VGA and 10 Kinect cameras;
one type is read at a time and only the cameras read are validated. Every problem raises
``PanopticFormatError`` naming the file and the camera: a sequence cannot be ingested
without a trustworthy calibration.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from annotate.geometry.cameras import CameraRig
from annotate.core.names import check_name
from annotate.panoptic.errors import (BAD_CALIBRATION, MISSING_CAMERA, MISSING_KEY,
                                      PanopticFormatError)
from annotate.panoptic.layout import read_json, write_panoptic_json

CAMERA_KEYS = ("name", "type", "resolution", "panel", "node", "K", "distCoef", "R", "t")
ROTATION_TOLERANCE = 1e-4   # real files print R with ~10 significant digits


@dataclass(frozen=True)
class Calibration:
    """The cameras of one type, sorted by name, with what ``CameraRig`` does not hold.

    rig: the cameras (intrinsics, distortion, extrinsics world -> camera in cm, image size).
    camera_type: ``"hd"``, ``"vga"`` or ``"kinect-color"``.
    panels, nodes: (C,) int64 Panoptic panel and node numbers.
    camera_index: (C,) int64 position of each camera among *all* cameras of this type in the
        file, sorted by name. For HD cameras this equals the node (``00_XX`` -> XX) and is the
        index that ``face70`` visibility lists use; it stays the same when only some
        cameras are read.
    source: the file's ``calibDataSource``.
    type_count: how many cameras of ``camera_type`` the file holds (read or not).
    type_names: the names of those cameras, sorted.
    """

    rig: CameraRig
    camera_type: str
    panels: np.ndarray
    nodes: np.ndarray
    camera_index: np.ndarray
    source: str
    type_count: int
    type_names: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return self.rig.names


def _fail(path, detail: str, reason: str = BAD_CALIBRATION) -> PanopticFormatError:
    return PanopticFormatError(path, reason, detail)


def _numbers(value, shapes: tuple[tuple[int, ...], ...], what: str, path) -> np.ndarray:
    """``value`` as a float64 array of one of ``shapes`` with finite entries, else raise."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(path, f"{what} is not an array of numbers: {value!r}") from None
    if arr.shape not in shapes:
        want = " or ".join(str(s) for s in shapes)
        raise _fail(path, f"{what} has shape {arr.shape}, expected {want}")
    if not np.all(np.isfinite(arr)):
        raise _fail(path, f"{what} holds non-finite values: {arr.tolist()}")
    return arr


def _check_rotation(R: np.ndarray, what: str, path) -> None:
    err = np.abs(R @ R.T - np.eye(3)).max()
    det = np.linalg.det(R)
    if err > ROTATION_TOLERANCE or abs(det - 1.0) > ROTATION_TOLERANCE:
        raise _fail(path, f"{what} is not a rotation (max |R R^T - I| = {err:.3g}, det = {det:.6f}; "
                          f"tolerance {ROTATION_TOLERANCE})")


def _check_intrinsics(K: np.ndarray, what: str, path) -> None:
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise _fail(path, f"{what} has non-positive focal length(s) fx={K[0, 0]}, fy={K[1, 1]}")
    if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0.0:
        raise _fail(path, f"{what} is not an upper-triangular pinhole matrix with last row "
                          f"[0, 0, 1]: {K.tolist()}")


def _int_value(value, what: str, path, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (positive and value <= 0):
        kind = "a positive integer" if positive else "an integer"
        raise _fail(path, f"{what} must be {kind}, got {value!r}")
    return value


def _parse_camera(cam: dict, path) -> dict:
    """Validate one camera entry; return name, K, dist, R, t, size, panel, node as arrays."""
    name = cam["name"]
    what = f"camera {name!r}"
    missing = [k for k in CAMERA_KEYS if k not in cam]
    if missing:
        raise _fail(path, f"{what} lacks key(s) {missing}", MISSING_KEY)
    K = _numbers(cam["K"], ((3, 3),), f"{what} K", path)
    _check_intrinsics(K, f"{what} K", path)
    dist = _numbers(cam["distCoef"], ((5,),), f"{what} distCoef", path)
    R = _numbers(cam["R"], ((3, 3),), f"{what} R", path)
    _check_rotation(R, f"{what} R", path)
    t = _numbers(cam["t"], ((3, 1), (3,)), f"{what} t", path).reshape(3)
    res = cam["resolution"]
    if not isinstance(res, list) or len(res) != 2:
        raise _fail(path, f"{what} resolution must be [width, height], got {res!r}")
    size = [_int_value(v, f"{what} resolution", path, positive=True) for v in res]
    panel = _int_value(cam["panel"], f"{what} panel", path)
    node = _int_value(cam["node"], f"{what} node", path)
    return dict(name=name, K=K, dist=dist, R=R, t=t, size=size, panel=panel, node=node)


def _cameras_of_type(doc, camera_type: str, path) -> dict[str, dict]:
    """Raw camera entries of ``camera_type`` by name (names checked to be unique strings)."""
    if not isinstance(doc, dict):
        raise _fail(path, f"top level is a {type(doc).__name__}, expected an object", MISSING_KEY)
    if "cameras" not in doc:
        raise _fail(path, "no 'cameras' key", MISSING_KEY)
    if not isinstance(doc["cameras"], list):
        raise _fail(path, "'cameras' is not a list")
    by_name: dict[str, dict] = {}
    types = set()
    for i, cam in enumerate(doc["cameras"]):
        if not isinstance(cam, dict) or not isinstance(cam.get("name"), str) or "type" not in cam:
            raise _fail(path, f"cameras[{i}] is not an object with a string 'name' and a 'type'",
                        MISSING_KEY)
        types.add(str(cam["type"]))
        if cam["type"] != camera_type:
            continue
        check_name(cam["name"], f"cameras[{i}] name", path)
        if cam["name"] in by_name:
            raise _fail(path, f"camera name {cam['name']!r} appears twice")
        by_name[cam["name"]] = cam
    if not by_name:
        raise _fail(path, f"no camera of type {camera_type!r}; types present: {sorted(types)}",
                    MISSING_CAMERA)
    return by_name


def _select(available: list[str], names: Sequence[str] | None, camera_type: str, path) -> list[str]:
    if names is None:
        return available
    if isinstance(names, str):
        raise TypeError("names must be a sequence of camera names, not one string")
    dupes = sorted({n for n in names if list(names).count(n) > 1})
    if dupes:
        raise ValueError(f"requested camera names repeat: {dupes}")
    missing = [n for n in names if n not in available]
    if missing:
        raise _fail(path, f"requested {camera_type} camera(s) {missing} not in the calibration; "
                          f"available: {available}", MISSING_CAMERA)
    return sorted(names)


def read_calibration_info(path: str | Path, camera_type: str = "hd",
                          names: Sequence[str] | None = None) -> Calibration:
    """Read the cameras of ``camera_type`` (all, or ``names``), sorted by name, validated."""
    path = Path(path)
    return parse_calibration(read_json(path), path, camera_type, names)


def parse_calibration(doc, path: str | Path, camera_type: str = "hd",
                      names: Sequence[str] | None = None) -> Calibration:
    """``read_calibration_info`` on a document already in memory (a calibration file's JSON
    object); ``path`` is the file that errors name."""
    by_name = _cameras_of_type(doc, camera_type, path)
    available = sorted(by_name)
    chosen = _select(available, names, camera_type, path)
    cams = [_parse_camera(by_name[n], path) for n in chosen]
    rig = CameraRig(
        names=tuple(chosen),
        K=np.stack([c["K"] for c in cams]),
        dist=np.stack([c["dist"] for c in cams]),
        R_cam_world=np.stack([c["R"] for c in cams]),
        t_cam_world=np.stack([c["t"] for c in cams]),
        image_size=np.array([c["size"] for c in cams], dtype=np.int64),
    )
    return Calibration(
        rig=rig, camera_type=camera_type,
        panels=np.array([c["panel"] for c in cams], dtype=np.int64),
        nodes=np.array([c["node"] for c in cams], dtype=np.int64),
        camera_index=np.array([available.index(n) for n in chosen], dtype=np.int64),
        source=str(doc.get("calibDataSource", "")),
        type_count=len(available),
        type_names=tuple(available),
    )


def read_calibration(path: str | Path, camera_type: str = "hd",
                     names: Sequence[str] | None = None) -> CameraRig:
    """The cameras of ``camera_type`` (all, or ``names``) as a ``CameraRig``, sorted by name.

    Raises ``PanopticFormatError`` naming the file for invalid JSON, missing keys, a K that
    is not a pinhole matrix with positive focal lengths, a distCoef not of length 5, an R
    that is not a rotation (tolerance 1e-4), a t not of length 3, a resolution that is not
    two positive integers, or requested names absent (listing the available ones).
    """
    return read_calibration_info(path, camera_type, names).rig


def _panel_node_from_name(name: str) -> tuple[int, int]:
    parts = name.split("_")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"cannot derive panel/node from camera name {name!r}; pass panels and nodes")
    return int(parts[0]), int(parts[1])


def calibration_document(rig: CameraRig, camera_type: str = "hd", panels=None, nodes=None,
                         source: str = "annotate") -> dict:
    """The JSON document of a calibration file for ``rig`` (panel/node default from names)."""
    derived = [_panel_node_from_name(n) for n in rig.names] if panels is None or nodes is None else None
    panels = [p for p, _ in derived] if panels is None else [int(p) for p in panels]
    nodes = [n for _, n in derived] if nodes is None else [int(n) for n in nodes]
    if len(panels) != len(rig) or len(nodes) != len(rig):
        raise ValueError(f"panels/nodes need {len(rig)} entries, got {len(panels)}/{len(nodes)}")
    arrays = [rig.K, rig.dist, rig.R_cam_world, rig.t_cam_world]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("calibration to write holds non-finite values")
    cameras = []
    for i, name in enumerate(rig.names):
        cameras.append({
            "name": name,
            "type": camera_type,
            "resolution": [int(v) for v in rig.image_size[i]],
            "panel": panels[i],
            "node": nodes[i],
            "K": np.asarray(rig.K[i], dtype=np.float64).tolist(),
            "distCoef": np.asarray(rig.dist[i], dtype=np.float64).tolist(),
            "R": np.asarray(rig.R_cam_world[i], dtype=np.float64).tolist(),
            "t": np.asarray(rig.t_cam_world[i], dtype=np.float64).reshape(3, 1).tolist(),
        })
    return {"calibDataSource": source, "cameras": cameras}


def write_calibration(path: str | Path, rig: CameraRig, camera_type: str = "hd",
                      panels=None, nodes=None, source: str = "annotate") -> Path:
    """Write ``rig`` in the real Panoptic calibration format, atomically.

    panels, nodes: (C,) ints; by default parsed from names ``PP_NN``. ``source`` becomes
    ``calibDataSource``. Numbers are written at full double precision, so reading the file
    back gives ``rig`` exactly.
    """
    return write_panoptic_json(path, calibration_document(rig, camera_type, panels, nodes, source))
