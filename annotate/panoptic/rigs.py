"""Calibrations of other multi-camera rigs, converted to Panoptic's ``calibration_<seq>.json``.

Every source below uses OpenCV's camera model, as the pipeline does
(``annotate.geometry.cameras``): ``x_cam = R @ x_world + t``, camera x right, y down, z
forward, distortion ``(k1, k2, p1, p2, k3)``, so a point projects with
``cv2.projectPoints(x_world, rvec(R), t, K, dist)``. The conversion changes nothing but the
length unit of ``t`` (to centimetres, Panoptic's) and the camera names; the world axes stay
the source's own (labels are per camera, so they do not depend on them). docs/captures.md
has the commands.

aniposelib ``calibration.toml`` (``CameraGroup.dump``): one table per camera, ``[cam_0]``,
``[cam_1]``, ... (taken in the order of their number; other tables such as ``[metadata]``
are ignored), each with

    name          the camera's name (a string)
    size          [width, height], px
    matrix        3x3 intrinsics K, px
    distortions   (k1, k2, p1, p2[, k3]); a longer list only with zeros after k3
    rotation      Rodrigues vector, radians, world -> camera
    translation   world -> camera, in the unit the rig was calibrated in (the board's)

A camera with ``fisheye = true`` is refused (another lens model).

OpenCV ``cv::FileStorage`` files (YAML, XML or JSON, as ``cv2.FileStorage`` reads them) come
in pairs (intrinsics file, extrinsics file), in one of two layouts, told apart by the keys:

- one camera per pair (per-camera files): intrinsics ``camera_matrix`` (3x3),
  ``distortion_coefficients`` (4, 5, 8, 12 or 14 values, zeros after k3), ``image_width`` and
  ``image_height`` (else ``image_size`` must be given); extrinsics ``R`` (3x3 rotation, or a
  Rodrigues 3-vector) and ``T`` (3 values), world -> camera;
- a stereo pair (OpenCV's stereo_calib sample): intrinsics ``M1``, ``D1``, ``M2``, ``D2``;
  extrinsics ``R`` and ``T``, camera 2 relative to camera 1 (``x_cam2 = R @ x_cam1 + T``), so
  camera 1's frame is the world. No image size is stored: ``image_size`` must be given.

No other key is read. Names: Panoptic names cameras ``PP_NN`` and the media layout uses them
(``hdImgs/00_03/00_03_%08d.jpg``, ``hdVideos/hd_00_03.mp4``). Source names that are already
of that form are kept; otherwise the cameras become ``00_00``, ``00_01``, ... in source order.
Each camera entry of the written file keeps its source name as ``source_name``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from annotate.core.names import check_name
from annotate.geometry.cameras import CameraRig
from annotate.geometry.rotations import is_rotation, matrix_from_rotvec
from annotate.panoptic.calibration import calibration_document, parse_calibration
from annotate.panoptic.errors import BAD_CALIBRATION, MISSING_KEY, PanopticFormatError
from annotate.panoptic.layout import check_camera_name, write_panoptic_json

# Length unit of the source's translations -> centimetres.
CM_PER_UNIT = {"mm": 0.1, "cm": 1.0, "m": 100.0}
FORMATS = ("aniposelib", "opencv")
ROTATION_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Conversion:
    """What ``convert_calibration`` wrote: the rig (cm) and Panoptic name -> source name."""

    rig: CameraRig
    source_names: dict[str, str]
    out: Path

    def __str__(self) -> str:
        pairs = ", ".join(f"{s} -> {p}" for p, s in self.source_names.items())
        return f"{len(self.rig)} cameras ({pairs}) -> {self.out}"


def _fail(path, detail: str, reason: str = BAD_CALIBRATION) -> PanopticFormatError:
    return PanopticFormatError(path, reason, detail)


def _array(value, shape: tuple[int, ...], what: str, path) -> np.ndarray:
    """``value`` as finite float64 of ``shape`` (any layout with that many entries), else raise."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(path, f"{what} is not an array of numbers: {value!r}") from None
    if arr.size != int(np.prod(shape)):
        raise _fail(path, f"{what} has {arr.size} values (shape {arr.shape}), expected {int(np.prod(shape))}")
    if not np.all(np.isfinite(arr)):
        raise _fail(path, f"{what} holds non-finite values: {arr.ravel().tolist()}")
    return arr.reshape(shape)


def opencv_distortion(value, what: str, path) -> np.ndarray:
    """(5,) ``(k1, k2, p1, p2, k3)`` from an OpenCV coefficient list of 0, 4, 5, 8, 12 or 14
    values; coefficients after k3 (rational, thin-prism, tilt models) must be zero."""
    arr = np.asarray(value, dtype=np.float64).ravel() if value is not None else np.zeros(0)
    if arr.size not in (0, 4, 5, 8, 12, 14):
        raise _fail(path, f"{what} has {arr.size} coefficients; OpenCV's lists have 4, 5, 8, 12 or 14")
    if not np.all(np.isfinite(arr)):
        raise _fail(path, f"{what} holds non-finite values: {arr.tolist()}")
    if np.any(arr[5:] != 0.0):
        raise _fail(path, f"{what} uses coefficients after k3 ({arr[5:].tolist()}): only the model "
                          f"(k1, k2, p1, p2, k3) is supported")
    out = np.zeros(5)
    out[:min(arr.size, 5)] = arr[:5]
    return out


def _intrinsics(value, what: str, path) -> np.ndarray:
    K = _array(value, (3, 3), what, path)
    if K[0, 1] != 0.0:
        # cv2.projectPoints ignores K[0, 1]; our projection would apply it.
        raise _fail(path, f"{what} has skew K[0][1] = {K[0, 1]}, which OpenCV's projection ignores: "
                          f"set it to 0 in the source if the calibration came from OpenCV")
    return K


def _rotation(value, what: str, path) -> np.ndarray:
    """A 3x3 rotation, or a Rodrigues 3-vector turned into one."""
    arr = np.asarray(value, dtype=np.float64)
    R = matrix_from_rotvec(_array(arr, (3,), what, path)) if arr.size == 3 else _array(arr, (3, 3), what, path)
    if not is_rotation(R, ROTATION_TOLERANCE):
        raise _fail(path, f"{what} is not a rotation (tolerance {ROTATION_TOLERANCE}): {R.tolist()}")
    return R


def _size(value, what: str, path) -> list[int]:
    arr = _array(value, (2,), what, path)
    if np.any(arr <= 0) or np.any(arr != np.round(arr)):
        raise _fail(path, f"{what} must be two positive integers [width, height], got {arr.tolist()}")
    return [int(v) for v in arr]


def _cm_per_unit(units: str) -> float:
    if units not in CM_PER_UNIT:
        raise ValueError(f"units must be one of {sorted(CM_PER_UNIT)}, got {units!r}")
    return CM_PER_UNIT[units]


def _rig(cams: list[dict], units: str) -> CameraRig:
    """The cameras read (source names and order), translations scaled to cm."""
    return CameraRig(names=tuple(c["name"] for c in cams), K=np.stack([c["K"] for c in cams]),
                     dist=np.stack([c["dist"] for c in cams]), R_cam_world=np.stack([c["R"] for c in cams]),
                     t_cam_world=np.stack([c["t"] for c in cams]) * _cm_per_unit(units),
                     image_size=np.array([c["size"] for c in cams], dtype=np.int64).reshape(-1, 2))


# --- aniposelib -------------------------------------------------------------------------------
ANIPOSE_KEYS = ("name", "size", "matrix", "distortions", "rotation", "translation")


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:                    # Python 3.10: the same parser, as tomli
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as err:
        raise _fail(path, f"cannot read: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise _fail(path, f"not valid TOML: {err}") from None


def read_aniposelib(path: str | Path, units: str) -> CameraRig:
    """The cameras of an aniposelib ``calibration.toml`` (module docstring), in ``cam_<i>``
    order, with their source names; ``units``: the translations' unit (scaled to cm)."""
    path = Path(path)
    _cm_per_unit(units)
    doc = _load_toml(path)
    tables = {}
    for key, value in doc.items():
        if key.startswith("cam_") and key[4:].isdigit() and isinstance(value, dict):
            tables[int(key[4:])] = (key, value)
    if not tables:
        raise _fail(path, f"no camera table [cam_0], [cam_1], ...; tables present: {sorted(doc)}", MISSING_KEY)
    cams = []
    for _, (key, table) in sorted(tables.items()):
        missing = [k for k in ANIPOSE_KEYS if k not in table]
        if missing:
            raise _fail(path, f"[{key}] lacks key(s) {missing}", MISSING_KEY)
        if table.get("fisheye"):
            raise _fail(path, f"[{key}] is a fisheye camera (fisheye = true): only OpenCV's pinhole model "
                              f"with (k1, k2, p1, p2, k3) is supported")
        what = f"[{key}]"
        cams.append(dict(name=check_name(str(table["name"]), f"{what} name", path),
                         size=_size(table["size"], f"{what} size", path),
                         K=_intrinsics(table["matrix"], f"{what} matrix", path),
                         dist=opencv_distortion(table["distortions"], f"{what} distortions", path),
                         R=_rotation(table["rotation"], f"{what} rotation", path),
                         t=_array(table["translation"], (3,), f"{what} translation", path)))
    return _rig(cams, units)


# --- OpenCV FileStorage ----------------------------------------------------------------------
class _Storage:
    """One cv::FileStorage file opened for reading; values by key, errors naming the file."""

    def __init__(self, path: str | Path):
        import cv2

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        try:
            self._fs = cv2.FileStorage(str(self.path), cv2.FILE_STORAGE_READ)
            opened = self._fs.isOpened()
        except (cv2.error, SystemError) as err:    # a parse error surfaces as either
            raise _fail(self.path, f"not a cv::FileStorage YAML/XML/JSON file: {err}") from None
        if not opened:
            raise _fail(self.path, "cv2.FileStorage cannot open it (YAML, XML or JSON expected)")

    def has(self, key: str) -> bool:
        return not self._fs.getNode(key).empty()

    def numbers(self, key: str) -> np.ndarray:
        """An ``opencv-matrix``, a sequence of numbers or one number, as a float64 array."""
        import cv2

        node = self._fs.getNode(key)
        if node.empty():
            raise _fail(self.path, f"no key {key!r}", MISSING_KEY)
        try:
            if node.isMap():
                mat = node.mat()
                if mat is None:
                    raise _fail(self.path, f"{key!r} is a mapping but not an opencv-matrix")
                return np.asarray(mat, dtype=np.float64)
            if node.isSeq():
                items = [node.at(i) for i in range(node.size())]
                if not all(i.isInt() or i.isReal() for i in items):
                    raise _fail(self.path, f"{key!r} is a sequence that is not all numbers")
                return np.array([i.real() for i in items], dtype=np.float64)
            if node.isInt() or node.isReal():
                return np.array([node.real()], dtype=np.float64)
        except cv2.error as err:
            raise _fail(self.path, f"{key!r} cannot be read as a matrix: {err}") from None
        raise _fail(self.path, f"{key!r} is not a number, a sequence of numbers or an opencv-matrix")


def _image_size(intr: _Storage, image_size) -> list[int]:
    if intr.has("image_width") and intr.has("image_height"):
        return _size([intr.numbers("image_width")[0], intr.numbers("image_height")[0]],
                     "image_width/image_height", intr.path)
    if image_size is None:
        raise _fail(intr.path, "no image_width/image_height: give the image size (--image-size WIDTH HEIGHT)",
                    MISSING_KEY)
    return _size(image_size, "the given image size", intr.path)


def _per_camera(intr: _Storage, extr: _Storage, name: str, image_size) -> dict:
    return dict(name=name, size=_image_size(intr, image_size),
                K=_intrinsics(intr.numbers("camera_matrix"), "camera_matrix", intr.path),
                dist=opencv_distortion(intr.numbers("distortion_coefficients"), "distortion_coefficients",
                                       intr.path),
                R=_rotation(extr.numbers("R"), "R", extr.path), t=_array(extr.numbers("T"), (3,), "T", extr.path))


def _stereo(intr: _Storage, extr: _Storage, names: Sequence[str], image_size) -> list[dict]:
    if intr.has("M3"):
        raise _fail(intr.path, "holds M3: a stereo pair's extrinsics (R, T) place only camera 2; give one "
                               "intrinsics/extrinsics pair per camera instead")
    if image_size is None:
        raise _fail(intr.path, "a stereo calibration (M1, D1, M2, D2) stores no image size: give it "
                               "(--image-size WIDTH HEIGHT)", MISSING_KEY)
    size = _size(image_size, "the given image size", intr.path)
    first = dict(name=names[0], size=size, K=_intrinsics(intr.numbers("M1"), "M1", intr.path),
                 dist=opencv_distortion(intr.numbers("D1"), "D1", intr.path), R=np.eye(3), t=np.zeros(3))
    second = dict(name=names[1], size=size, K=_intrinsics(intr.numbers("M2"), "M2", intr.path),
                  dist=opencv_distortion(intr.numbers("D2"), "D2", intr.path),
                  R=_rotation(extr.numbers("R"), "R", extr.path), t=_array(extr.numbers("T"), (3,), "T", extr.path))
    return [first, second]


def read_opencv(pairs: Sequence[tuple[str | Path, str | Path]], units: str, names: Sequence[str] | None = None,
                image_size: Sequence[int] | None = None) -> CameraRig:
    """The cameras of (intrinsics, extrinsics) FileStorage file pairs (module docstring).

    units: the translations' unit (scaled to cm); names: the source names (default
    ``cam1``, ``cam2``, ... in order); image_size: (width, height) for files that store none.
    """
    _cm_per_unit(units)
    if not pairs:
        raise ValueError("read_opencv needs at least one (intrinsics, extrinsics) pair")
    storages = [(_Storage(i), _Storage(e)) for i, e in pairs]
    stereo = [intr.has("M1") for intr, _ in storages]
    if any(stereo) and len(storages) > 1:
        raise _fail(storages[stereo.index(True)][0].path,
                    "a stereo calibration (M1, D1, M2, D2) describes the whole rig: give it as the only pair")
    count = 2 if stereo[0] else len(storages)
    names = [f"cam{i + 1}" for i in range(count)] if names is None else list(names)
    if len(names) != count:
        raise ValueError(f"{count} cameras but {len(names)} names given: {names}")
    names = [check_name(n, "camera name", "the given names") for n in names]
    if stereo[0]:
        cams = _stereo(*storages[0], names, image_size)
    else:
        for intr, _ in storages:
            if not intr.has("camera_matrix"):
                raise _fail(intr.path, "neither camera_matrix (one camera) nor M1/M2 (a stereo pair)", MISSING_KEY)
        cams = [_per_camera(intr, extr, n, image_size) for (intr, extr), n in zip(storages, names)]
    return _rig(cams, units)


# --- conversion ------------------------------------------------------------------------------
def panoptic_names(source_names: Sequence[str], path) -> tuple[str, ...]:
    """Source names if all are Panoptic ``PP_NN`` names, else ``00_00``, ``00_01``, ... in order."""
    if len(set(source_names)) != len(source_names):
        dupes = sorted({n for n in source_names if list(source_names).count(n) > 1})
        raise _fail(path, f"camera names repeat: {dupes}")
    try:
        return tuple(check_camera_name(n) for n in source_names)
    except ValueError:
        if len(source_names) > 100:
            raise _fail(path, f"{len(source_names)} cameras: Panoptic names 00_00..00_99 number at most 100") from None
        return tuple(f"00_{i:02d}" for i in range(len(source_names)))


def panoptic_document(rig: CameraRig, path, source: str) -> dict:
    """The Panoptic calibration document of ``rig`` (source names, t in cm): cameras renamed
    (``panoptic_names``), sorted by name, each keeping its ``source_name``; validated as the
    calibration reader validates a file (errors name ``path``, the source file)."""
    names = panoptic_names(rig.names, path)
    doc = calibration_document(CameraRig(names, rig.K, rig.dist, rig.R_cam_world, rig.t_cam_world, rig.image_size),
                               "hd", source=source)
    for cam, source_name in zip(doc["cameras"], rig.names):
        cam["source_name"] = source_name
    doc["cameras"].sort(key=lambda c: c["name"])
    parse_calibration(doc, path)
    return doc


def read_source(fmt: str, inputs: Sequence[str | Path], units: str, names: Sequence[str] | None = None,
                image_size: Sequence[int] | None = None) -> CameraRig:
    """Read ``inputs`` as ``fmt``: aniposelib (one TOML file) or opencv (intrinsics,
    extrinsics file pairs); source names, t in cm."""
    if fmt == "aniposelib":
        if len(inputs) != 1:
            raise ValueError(f"aniposelib: give one calibration.toml, got {len(inputs)} files")
        if names is not None:
            raise ValueError("aniposelib: the camera names come from the file (no --names)")
        return read_aniposelib(inputs[0], units)
    if fmt == "opencv":
        if len(inputs) % 2:
            raise ValueError(f"opencv: give intrinsics/extrinsics file pairs, got {len(inputs)} files")
        return read_opencv(list(zip(inputs[0::2], inputs[1::2])), units, names, image_size)
    raise ValueError(f"unknown calibration format {fmt!r} (one of {', '.join(FORMATS)})")


def convert_calibration(fmt: str, inputs: Sequence[str | Path], out: str | Path, units: str,
                        names: Sequence[str] | None = None, image_size: Sequence[int] | None = None) -> Conversion:
    """Read a calibration of another rig (``read_source``) and write it, atomically, as a
    Panoptic ``calibration_<seq>.json`` at ``out``; ``units``: the source's length unit."""
    out = Path(out)
    source = read_source(fmt, inputs, units, names, image_size)
    doc = panoptic_document(source, inputs[0], source=f"{fmt}:{Path(inputs[0]).name} ({units})")
    write_panoptic_json(out, doc)
    rig = parse_calibration(doc, out).rig
    return Conversion(rig=rig, source_names={c["name"]: c["source_name"] for c in doc["cameras"]}, out=out)
