"""AFLW2000-3D and BIWI readers on files made here in those formats."""
import cv2
import numpy as np
import pytest
from scipy.io import savemat

from annotate.geometry.rotations import FLIP_YZ, matrix_from_euler
from annotate.train.external import Aflw2000Source, BiwiSource, hopenet_aflw_box


def _write_aflw(root, name, pitch, yaw, roll, pt2d, image):
    pose = np.deg2rad([pitch, yaw, roll]).tolist() + [0.0, 0.0, 0.0, 1.0]
    savemat(root / f"{name}.mat", {"Pose_Para": np.array([pose]), "pt2d": pt2d})
    cv2.imwrite(str(root / f"{name}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def test_aflw2000_reader_filters_crops_and_keeps_the_convention(tmp_path):
    img = np.zeros((300, 300, 3), np.uint8)
    img[100:120, 150:170] = (250, 20, 20)           # a red patch at x 150..169, y 100..119
    pt2d = np.array([np.linspace(100, 200, 21), np.linspace(50, 150, 21)])
    _write_aflw(tmp_path, "image00002", 10.0, -35.0, 5.0, pt2d, img)
    _write_aflw(tmp_path, "image00003", 0.0, 120.0, 0.0, pt2d, img)          # |yaw| > 99: left out
    _write_aflw(tmp_path, "image00004", -20.0, 60.0, -10.0, pt2d, img)
    (tmp_path / "image00005.mat").write_bytes((tmp_path / "image00004.mat").read_bytes())   # no .jpg
    src = Aflw2000Source(tmp_path)
    assert len(src) == 2
    assert dict(src.rejected) == {"image00003.mat": "angle_beyond_99", "image00005.mat": "missing_image"}
    rec = src[0]
    assert (rec["yaw"], rec["pitch"], rec["roll"]) == pytest.approx((-35.0, 10.0, 5.0))
    np.testing.assert_allclose(rec["R_cam_head"].reshape(3, 3), matrix_from_euler(*np.deg2rad([-35.0, 10.0, 5.0])))
    # HopeNet's loosened box, worked out by hand: x 100..200, y 50..150, k = 0.2
    assert hopenet_aflw_box(pt2d) == (60, 10, 256, 166)
    assert rec["image"].shape == (156, 196, 3)
    assert (rec["image"][95, 95] > 200).any() and rec["image"][95, 95, 0] > 200     # red patch moved by (-60, -10)
    np.testing.assert_allclose(src.labels_deg()[1], [60.0, -20.0, -10.0])


def _hopenet_biwi_angles(R):
    """HopeNet's BIWI loader, as published (degrees: yaw, pitch, roll)."""
    R = np.transpose(R)
    roll = -np.arctan2(R[1][0], R[0][0]) * 180 / np.pi
    yaw = -np.arctan2(-R[2][0], np.sqrt(R[2][1] ** 2 + R[2][2] ** 2)) * 180 / np.pi
    pitch = np.arctan2(R[2][1], R[2][2]) * 180 / np.pi
    return yaw, pitch, roll


def _write_biwi_frame(folder, number, R_biwi, centre_mm):
    rows = "\n".join(" ".join(f"{v:.9f}" for v in row) for row in R_biwi)
    (folder / f"frame_{number:05d}_pose.txt").write_text(rows + " \n\n" + " ".join(f"{v:.4f}" for v in centre_mm) + " \n")
    img = np.full((480, 640, 3), 40, np.uint8)
    cv2.imwrite(str(folder / f"frame_{number:05d}_rgb.png"), img)


def test_biwi_reader_matches_hopenet_angles_and_projects_the_head(tmp_path):
    sub = tmp_path / "01"
    sub.mkdir()
    (sub / "rgb.cal").write_text("500 0 320 \n0 500 240 \n0 0 1 \n\n0 0 0 0 \n\n1 0 0 \n0 1 0 \n0 0 1 \n\n"
                                 "0 0 0 \n\n640 480\n")
    rng = np.random.default_rng(0)
    wanted = []
    for i in range(4):
        e = np.array([rng.uniform(-70, 70), rng.uniform(-50, 50), rng.uniform(-40, 40)])
        R_biwi = matrix_from_euler(*np.deg2rad(e)) @ FLIP_YZ
        _write_biwi_frame(sub, i + 3, R_biwi, [0.0, 0.0, 1000.0])
        wanted.append(_hopenet_biwi_angles(R_biwi))
    _write_biwi_frame(sub, 20, matrix_from_euler(*np.deg2rad([150.0, 0, 0])) @ FLIP_YZ, [0, 0, 1000.0])
    src = BiwiSource(tmp_path)
    assert len(src) == 4 and [r for _, r in src.rejected] == ["angle_beyond_99"]
    np.testing.assert_allclose(src.labels_deg(), wanted, atol=1e-6)
    half = 500 * 125 / np.sqrt(1000 ** 2 - 125 ** 2)
    assert src.boxes[0] == (round(320 - half), round(240 - half), round(320 + half), round(240 + half))
    assert src[0]["image"].shape == (126, 126, 3)
    with pytest.raises(FileNotFoundError):
        BiwiSource(tmp_path / "nothing")
