import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotate.geometry.cameras import CameraRig, max_monotonic_radius2, project_camera_points, undistort_pixels

DATA = Path(__file__).parent / "data" / "calibration_160906_band1_hd.json"
SHARED = Path(__file__).resolve().parents[2] / "shared/panoptic-sample/160906_band1/calibration_160906_band1.json"


def real_hd_cameras():
    path = DATA if DATA.exists() else SHARED
    if not path.exists():
        pytest.skip("no real Panoptic calibration available")
    cams = [c for c in json.loads(path.read_text())["cameras"] if c["type"] == "hd"]
    return CameraRig(
        tuple(c["name"] for c in cams), np.array([c["K"] for c in cams], float),
        np.array([c["distCoef"] for c in cams], float), np.array([c["R"] for c in cams], float),
        np.array([np.ravel(c["t"]) for c in cams], float), np.array([c["resolution"] for c in cams], float))


def test_projection_equals_opencv_on_real_cameras():
    rig = real_hd_cameras()
    assert len(rig) == 31
    rng = np.random.default_rng(0)
    # points around the capture volume (world cm, y down): heads and bodies
    pts = rng.uniform([-150, -200, -150], [150, 0, 150], size=(500, 3))
    ours = rig.project_world(pts)                                    # (C, N, 2)
    for c in range(len(rig)):
        pc = rig.world_to_camera(pts)[c]
        front = pc[:, 2] > 0
        rvec, _ = cv2.Rodrigues(rig.R_cam_world[c])
        ref, _ = cv2.projectPoints(pts[front], rvec, rig.t_cam_world[c], rig.K[c], rig.dist[c])
        np.testing.assert_allclose(ours[c][front], ref[:, 0, :], atol=1e-6)
        assert np.isnan(ours[c][~front]).all()


def test_camera_centres_are_on_the_dome():
    rig = real_hd_cameras()
    centres = rig.centres_world
    radius = np.linalg.norm(centres - centres.mean(0), axis=1)
    assert 150 < radius.min() and radius.max() < 350
    # every camera looks toward the dome's centre
    forward = rig.R_cam_world[:, 2, :]
    to_centre = centres.mean(0) - centres
    cos = np.einsum("ci,ci->c", forward, to_centre) / np.linalg.norm(to_centre, axis=1)
    assert (cos > 0.8).all()


def test_undistort_inverts_distortion():
    rig = real_hd_cameras()
    rng = np.random.default_rng(1)
    xy = rng.uniform(-0.5, 0.5, size=(200, 2))
    pc = np.concatenate([xy, np.ones((200, 1))], axis=1) * 250.0
    px = project_camera_points(pc, rig.K[0], rig.dist[0])
    np.testing.assert_allclose(undistort_pixels(px, rig.K[0], rig.dist[0]), xy, atol=1e-9)


def test_monotonic_radius_of_the_lens_model():
    dist = np.array([[-0.28, 0.18, 0, 0, -0.04], [0.0, 0, 0, 0, 0]])
    r2 = max_monotonic_radius2(dist)
    r = np.sqrt(r2[0])
    slope = lambda r: 1 + 3 * -0.28 * r**2 + 5 * 0.18 * r**4 + 7 * -0.04 * r**6
    assert slope(r) > 0 and slope(r + 0.01) <= 0.01
    assert r2[1] == 4.0


def test_rig_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="K must have shape"):
        CameraRig(("a",), np.eye(3), np.zeros((1, 5)), np.eye(3)[None], np.zeros((1, 3)), np.ones((1, 2)))
