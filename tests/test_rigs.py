"""Calibrations of other rigs (aniposelib TOML, OpenCV FileStorage pairs) -> Panoptic JSON.

The conversion is checked the way a user would rely on it: world points projected with the
source's own convention (``cv2.projectPoints`` with its rvec, tvec, K and distortion, world
in the source's unit) land on the same pixels as through the converted calibration and the
pipeline's projection (``CameraRig.project_world``, world in cm), to < 1e-6 px.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotate.cli import main
from annotate.panoptic.calibration import read_calibration, read_calibration_info
from annotate.panoptic.errors import PanopticFormatError
from annotate.panoptic.rigs import (CM_PER_UNIT, convert_calibration, opencv_distortion, read_aniposelib,
                                    read_opencv)

AGREEMENT_PX = 1e-6


def anipose_toml(cams: list[dict]) -> str:
    """A calibration.toml as aniposelib's CameraGroup.dump writes it (toml's trailing commas)."""
    def arr(values) -> str:
        values = np.asarray(values)
        if values.ndim == 2:
            return "[ " + " ".join(arr(r) + "," for r in values) + "]"
        return "[ " + " ".join(repr(v.item()) + "," for v in values) + "]"

    out = []
    for i, c in enumerate(cams):
        out += [f"[cam_{i}]", f'name = "{c["name"]}"', f"size = {arr(np.asarray(c['size']))}",
                f"matrix = {arr(c['K'])}", f"distortions = {arr(c['dist'])}",
                f"rotation = {arr(c['rvec'])}", f"translation = {arr(c['tvec'])}", ""]
        out += [f"{k} = {v}" for k, v in c.get("extra", {}).items()]
    return "\n".join(out + ["[metadata]", "adjusted = false", "error = 0.25", ""])


def random_cameras(n: int, unit_scale: float, seed: int = 0) -> list[dict]:
    """n cameras on a ring of radius ~3 m looking at the origin, with real-looking distortion;
    translations in a unit of ``unit_scale`` cm (``CM_PER_UNIT[unit]``)."""
    rng = np.random.default_rng(seed)
    cams = []
    for i in range(n):
        angle = 2 * np.pi * i / n + rng.uniform(-0.2, 0.2)
        centre_cm = np.array([300 * np.sin(angle), rng.uniform(-60, 20), -300 * np.cos(angle)])
        z = -centre_cm / np.linalg.norm(centre_cm)
        x = np.cross([0.0, 1.0, 0.0], z)
        x /= np.linalg.norm(x)
        R = np.stack([x, np.cross(z, x), z])           # rows: camera axes in the world
        t_cm = -R @ centre_cm
        f = rng.uniform(1000, 1600)
        K = np.array([[f, 0, rng.uniform(900, 1000)], [0, f * rng.uniform(0.99, 1.01), rng.uniform(500, 580)],
                      [0, 0, 1]])
        dist = np.array([rng.uniform(-0.3, -0.1), rng.uniform(0.0, 0.2), rng.normal(0, 1e-3),
                         rng.normal(0, 1e-3), rng.uniform(-0.02, 0.02)])
        cams.append(dict(name=chr(ord("A") + i), size=[1920, 1080], K=K, dist=dist,
                         rvec=cv2.Rodrigues(R)[0].ravel(), tvec=t_cm / unit_scale))
    return cams


def world_points_cm(seed: int = 1) -> np.ndarray:
    """(N, 3) points around the origin, where the heads of a capture would be, cm."""
    return np.random.default_rng(seed).uniform([-80, -60, -80], [80, 60, 80], size=(200, 3))


def source_pixels(cam: dict, points_src: np.ndarray) -> np.ndarray:
    """(N, 2) the source's own projection: cv2.projectPoints with its rvec/tvec/K/dist."""
    px, _ = cv2.projectPoints(points_src.reshape(-1, 1, 3), np.asarray(cam["rvec"], float),
                              np.asarray(cam["tvec"], float), np.asarray(cam["K"], float),
                              np.asarray(cam["dist"], float))
    return px.reshape(-1, 2)


def assert_projections_agree(cams: list[dict], calib_path: Path, names: list[str], unit: str) -> None:
    rig = read_calibration(calib_path)
    points_cm = world_points_cm()
    ours = rig.project_world(points_cm)                  # (C, N, 2)
    for cam, name in zip(cams, names):
        c = rig.names.index(name)
        theirs = source_pixels(cam, points_cm / CM_PER_UNIT[unit])
        assert np.isfinite(ours[c]).all()
        assert np.abs(ours[c] - theirs).max() < AGREEMENT_PX, name


@pytest.mark.parametrize("unit", ["mm", "cm", "m"])
def test_aniposelib_projects_as_cv2_does(tmp_path, unit):
    cams = random_cameras(4, unit_scale=CM_PER_UNIT[unit])
    toml = tmp_path / "calibration.toml"
    toml.write_text(anipose_toml(cams))
    out = tmp_path / "calibration_rig.json"
    conv = convert_calibration("aniposelib", [toml], out, unit)
    assert conv.source_names == {"00_00": "A", "00_01": "B", "00_02": "C", "00_03": "D"}
    assert_projections_agree(cams, out, ["00_00", "00_01", "00_02", "00_03"], unit)
    doc = json.loads(out.read_text())
    first = doc["cameras"][0]
    assert first["source_name"] == "A" and first["type"] == "hd" and first["resolution"] == [1920, 1080]
    assert np.allclose(np.ravel(first["t"]), cams[0]["tvec"] * CM_PER_UNIT[unit])
    info = read_calibration_info(out)
    assert info.type_names == ("00_00", "00_01", "00_02", "00_03") and info.nodes.tolist() == [0, 1, 2, 3]


def test_aniposelib_reader_keeps_panoptic_names_and_numeric_order(tmp_path):
    cams = random_cameras(12, unit_scale=0.1)
    for i, c in enumerate(cams):
        c["name"] = f"00_{30 - i:02d}"
    toml = tmp_path / "calibration.toml"
    toml.write_text(anipose_toml(cams))
    src = read_aniposelib(toml, "mm")
    assert src.names == tuple(c["name"] for c in cams)         # cam_10 after cam_9, not after cam_1
    convert_calibration("aniposelib", [toml], tmp_path / "c.json", "mm")
    assert_projections_agree(cams, tmp_path / "c.json", [c["name"] for c in cams], "mm")


def write_storage(path: Path, values: dict) -> Path:
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    for key, value in values.items():
        fs.write(key, value)
    fs.release()
    return path


@pytest.mark.parametrize("ext", ["yml", "xml"])
def test_opencv_per_camera_pairs_project_as_cv2_does(tmp_path, ext):
    cams = random_cameras(3, unit_scale=100.0, seed=3)
    cams[1]["dist"] = cams[1]["dist"][:4]                          # k1 k2 p1 p2: k3 = 0
    cams[2]["dist"] = np.concatenate([cams[2]["dist"], np.zeros(9)])  # 14 values, zeros after k3
    files = []
    for i, cam in enumerate(cams):
        folder = tmp_path / cam["name"]
        folder.mkdir()
        intr = write_storage(folder / f"intrinsics.{ext}", {
            "camera_matrix": cam["K"], "distortion_coefficients": np.asarray(cam["dist"]).reshape(1, -1),
            "image_width": 1920, "image_height": 1080})
        # R as a 3x3 matrix for two cameras, as a Rodrigues vector for the other
        R = np.asarray(cam["rvec"]).reshape(3, 1) if i == 1 else cv2.Rodrigues(np.asarray(cam["rvec"]))[0]
        extr = write_storage(folder / f"extrinsics.{ext}", {"R": R, "T": np.asarray(cam["tvec"]).reshape(3, 1)})
        files += [str(intr), str(extr)]
    out = tmp_path / "calibration_rig.json"
    assert main(["convert-calibration", "--from", "opencv", *files, "--out", str(out), "--units", "m",
                 "--names", "left", "middle", "right"]) == 0
    assert_projections_agree(cams, out, ["00_00", "00_01", "00_02"], "m")
    assert [c["source_name"] for c in json.loads(out.read_text())["cameras"]] == ["left", "middle", "right"]


def test_opencv_stereo_pair(tmp_path):
    cams = random_cameras(2, unit_scale=0.1, seed=5)
    # stereo_calib's convention: camera 1 is the world, R/T place camera 2 relative to it
    R1, R2 = (cv2.Rodrigues(np.asarray(c["rvec"]))[0] for c in cams)
    R = R2 @ R1.T
    T = cams[1]["tvec"] - R @ cams[0]["tvec"]
    intr = write_storage(tmp_path / "intrinsics.yml", {"M1": cams[0]["K"], "D1": cams[0]["dist"].reshape(1, 5),
                                                       "M2": cams[1]["K"], "D2": cams[1]["dist"].reshape(1, 5)})
    extr = write_storage(tmp_path / "extrinsics.yml", {"R": R, "T": T.reshape(3, 1), "R1": np.eye(3)})
    with pytest.raises(PanopticFormatError, match="intrinsics.yml.*image size"):
        convert_calibration("opencv", [intr, extr], tmp_path / "c.json", "mm")
    convert_calibration("opencv", [intr, extr], tmp_path / "c.json", "mm", image_size=(1920, 1080))
    stereo = [dict(cams[0], rvec=np.zeros(3), tvec=np.zeros(3)),
              dict(cams[1], rvec=cv2.Rodrigues(R)[0].ravel(), tvec=T)]
    # world points in camera 1's frame, mm
    rig = read_calibration(tmp_path / "c.json")
    assert rig.names == ("00_00", "00_01") and np.allclose(rig.R_cam_world[0], np.eye(3))
    points_cm = world_points_cm() + [0, 0, 300]
    ours = rig.project_world(points_cm)
    for c, cam in enumerate(stereo):
        ok = np.isfinite(ours[c]).all(axis=1)
        assert ok.sum() > 50
        assert np.abs(ours[c][ok] - source_pixels(cam, points_cm[ok] * 10)).max() < AGREEMENT_PX


def test_errors_name_the_file_and_the_problem(tmp_path):
    cams = random_cameras(2, unit_scale=0.1)
    toml = tmp_path / "calibration.toml"

    def convert(cams_or_text, units="mm"):
        toml.write_text(cams_or_text if isinstance(cams_or_text, str) else anipose_toml(cams_or_text))
        return convert_calibration("aniposelib", [toml], tmp_path / "out.json", units)

    with pytest.raises(PanopticFormatError, match=r"calibration\.toml.*not valid TOML"):
        convert("[cam_0\nname = 1")
    with pytest.raises(PanopticFormatError, match=r"calibration\.toml.*no camera table"):
        convert("[metadata]\nerror = 1\n")
    no_rotation = anipose_toml(cams).replace("rotation = ", "rotationx = ", 1)
    with pytest.raises(PanopticFormatError, match=r"\[cam_0\] lacks key\(s\) \['rotation'\]"):
        convert(no_rotation)
    with pytest.raises(PanopticFormatError, match="fisheye"):
        convert([dict(cams[0], extra={"fisheye": "true"}), cams[1]])
    skewed = dict(cams[0], K=cams[0]["K"] + [[0, 2.0, 0], [0, 0, 0], [0, 0, 0]])
    with pytest.raises(PanopticFormatError, match="skew"):
        convert([skewed, cams[1]])
    rational = dict(cams[0], dist=np.concatenate([cams[0]["dist"], [0.1, 0, 0]]))
    with pytest.raises(PanopticFormatError, match="after k3"):
        convert([rational, cams[1]])
    with pytest.raises(PanopticFormatError, match="size must be two positive integers"):
        convert([dict(cams[0], size=[1920.5, 1080]), cams[1]])
    with pytest.raises(PanopticFormatError, match=r"names? repeat"):
        convert([cams[0], dict(cams[1], name="A")])
    with pytest.raises(ValueError, match="not a plain name"):
        convert([dict(cams[0], name="../x"), cams[1]])
    with pytest.raises(PanopticFormatError, match="non-finite"):
        convert([dict(cams[0], tvec=np.array([np.inf, 0, 0])), cams[1]])
    with pytest.raises(ValueError, match="units must be one of"):
        convert(cams, units="inch")
    assert not (tmp_path / "out.json").exists()
    intr = write_storage(tmp_path / "intr.yml", {"something": np.eye(3)})
    extr = write_storage(tmp_path / "extr.yml", {"R": np.eye(3), "T": np.zeros((3, 1))})
    with pytest.raises(PanopticFormatError, match=r"intr\.yml.*neither camera_matrix"):
        read_opencv([(intr, extr)], "mm")
    intr = write_storage(tmp_path / "intr.yml", {"camera_matrix": cams[0]["K"], "distortion_coefficients":
                                                 np.zeros((1, 5)), "image_width": 1920, "image_height": 1080})
    bad_r = write_storage(tmp_path / "extr.yml", {"R": 2 * np.eye(3), "T": np.zeros((3, 1))})
    with pytest.raises(PanopticFormatError, match=r"extr\.yml.*R is not a rotation"):
        read_opencv([(intr, bad_r)], "mm")
    (tmp_path / "broken.yml").write_text("%YAML:1.0\nM1: [1, 2,\n")
    with pytest.raises(PanopticFormatError, match=r"broken\.yml.*cv::FileStorage"):
        read_opencv([(tmp_path / "broken.yml", extr)], "mm")
    with pytest.raises(FileNotFoundError, match="missing.yml"):
        read_opencv([(tmp_path / "missing.yml", extr)], "mm")


def test_opencv_distortion_lengths():
    assert opencv_distortion([0.1, 0.2, 0.3, 0.4], "d", "f").tolist() == [0.1, 0.2, 0.3, 0.4, 0.0]
    assert opencv_distortion(None, "d", "f").tolist() == [0.0] * 5
    with pytest.raises(PanopticFormatError, match="3 coefficients"):
        opencv_distortion([0.1, 0.2, 0.3], "d", "f")


def test_cli_reports_bad_input(tmp_path, capsys):
    (tmp_path / "c.toml").write_text("[metadata]\n")
    assert main(["convert-calibration", "--from", "aniposelib", str(tmp_path / "c.toml"),
                 "--out", str(tmp_path / "o.json"), "--units", "mm"]) == 2
    assert "no camera table" in capsys.readouterr().err
