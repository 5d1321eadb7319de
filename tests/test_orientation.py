"""Cameras mounted on their side or upside down (annotate.detect.orientation)."""
from pathlib import Path

import numpy as np
import pytest

from annotate.config import resolve_config
from annotate.detect.base import ViewInput
from annotate.detect.orientation import CameraTurns, UprightBackend, best_turn, parse_rotation_setting
from annotate.geometry.image_turns import TURNS_CW_DEG, turn_boxes, turn_image, turn_points, unturn_points
from annotate.media.jpeg import decode_jpeg_rgb

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("degrees", TURNS_CW_DEG)
def test_turned_points_land_on_the_same_pixels(degrees):
    rng = np.random.default_rng(degrees)
    image = rng.integers(0, 255, (7, 11, 3), dtype=np.uint8)
    h, w = image.shape[:2]
    points = np.stack([rng.integers(0, w, 30), rng.integers(0, h, 30)], axis=1).astype(float)
    turned = turn_image(image, degrees)
    moved = turn_points(points, degrees, (w, h))
    for (x, y), (u, v) in zip(points.astype(int), moved.astype(int)):
        assert (turned[v, u] == image[y, x]).all()
    np.testing.assert_array_equal(unturn_points(moved, degrees, (w, h)), points)
    boxes = np.array([[1.0, 2.0, 5.0, 6.0]])
    np.testing.assert_array_equal(turn_boxes(turn_boxes(boxes, degrees, (w, h)), degrees, (w, h), inverse=True), boxes)


def test_a_clockwise_turn_moves_the_top_left_corner_to_the_top_right():
    image = np.zeros((4, 6), np.uint8)
    image[0, 0] = 1
    assert turn_image(image, 90)[0, -1] == 1 and turn_image(image, 270)[-1, 0] == 1
    assert np.isnan(turn_points(np.array([[np.nan, np.nan]]), 90, (6, 4))).all()   # a missing point stays missing


def test_the_probe_turns_a_camera_only_on_clear_evidence():
    assert best_turn([3, 0, 1, 0]) == 0
    assert best_turn([0, 3, 0, 0]) == 90
    assert best_turn([0, 0, 0, 2]) == 270
    assert best_turn([1, 2, 0, 0]) == 0                   # not more than twice upright
    assert best_turn([1, 3, 0, 0]) == 90
    assert best_turn([0, 1, 0, 0]) is None                 # one face (MTCNN's false faces score 0.9 too)
    assert best_turn([0, 0, 0, 0]) is None                 # no face at any turn: undecided


def test_rotation_settings_are_checked_against_the_calibration():
    names = ("00_03", "00_12")
    assert parse_rotation_setting("auto", names) == ["auto", "auto"]
    assert parse_rotation_setting({"00_12": 90}, names) == [0, 90]
    with pytest.raises(ValueError, match=r"00_99.*00_03"):
        parse_rotation_setting({"00_99": 90}, names)
    with pytest.raises(ValueError, match="quote"):
        parse_rotation_setting({10: 90}, names)               # YAML's reading of unquoted 00_12
    with pytest.raises(ValueError, match="degrees clockwise"):
        parse_rotation_setting(45, names)


class _FacesAtTurn:
    """A face detector that finds ``faces[k]`` faces (score 0.95) in the k-th image it is
    given, in images turned by ``at`` degrees only (``confident_faces_per_turn`` turns an
    (H, W) image of the camera: 0 and 180 keep its shape, 90 and 270 swap it)."""

    def __init__(self, faces, at):
        self.faces, self.at, self.calls = list(faces), at, 0

    def detect(self, image):
        from annotate.detect.faces import FaceBoxes

        turn = TURNS_CW_DEG[self.calls % 4]
        n = self.faces[self.calls // 4] if turn == self.at else 0
        self.calls += 1
        return FaceBoxes(np.zeros((n, 4)), np.full(n, 0.95), np.full((n, 5, 2), np.nan))


def test_an_undecided_camera_is_probed_on_its_next_images_and_takes_the_leading_turn_meanwhile():
    image = np.zeros((8, 8, 3), np.uint8)
    turns = CameraTurns(["auto", 180], detector=_FacesAtTurn([1, 0, 2], at=270))
    assert turns.turn(0, image) == 270 and 0 not in turns.degrees       # one face: leading, undecided
    assert turns.turn(0, image) == 270 and 0 not in turns.degrees       # still one in all
    assert turns.turn(0, image) == 270 and turns.degrees[0] == 270       # three: decided
    assert turns.probes == {0: [0, 0, 0, 3]} and turns.probed == {0: 3}
    assert turns.turn(1, image) == 180                                  # fixed cameras are not probed
    nothing = CameraTurns(["auto"], detector=_FacesAtTurn([0] * 5, at=0))
    for k in range(5):
        assert nothing.turn(0, image) == 0 and (0 in nothing.degrees) == (k == 4)    # then settled upright


@pytest.mark.slow
def test_a_sideways_camera_is_found_and_gives_the_upright_detections():
    """A real HD frame stored turned by 90 degrees (a camera mounted on its side): MTCNN finds
    no face in it as it is, the probe finds the turn that makes it upright, and the
    backend's faces, in the stored image's pixels, are the upright image's faces moved by the
    same turn (the pixels are the same, only moved)."""
    from annotate.labels.frame_views import image_backend

    upright = decode_jpeg_rgb((DATA / "haggling_demo" / "hdImgs" / "00_12" / "00_12_00009348.jpg").read_bytes())
    h, w = upright.shape[:2]
    stored = turn_image(upright, 90)
    cfg = resolve_config({"detect": {"backend": "facemesh"}})["detect"]
    backend = image_backend(cfg)
    faces_upright = backend.detect(ViewInput(9348, 0, upright, np.zeros((0, 4))))
    assert len(faces_upright) == 3                       # D, E, F (tests/data/haggling_demo/visible_faces.json)
    turns = CameraTurns(parse_rotation_setting("auto", ("00_12",)))
    wrapped = UprightBackend(backend, turns)
    faces = wrapped.detect(ViewInput(9348, 0, stored, np.zeros((0, 4))))
    assert turns.degrees == {0: 270} and turns.probes[0][0] == 0 and turns.probes[0][3] >= 2, turns.probes
    expected = turn_points(faces_upright.points_px, 90, (w, h))
    order = np.argsort(np.nanmean(faces.points_px[:, :, 0], axis=1))
    order_expected = np.argsort(np.nanmean(expected[:, :, 0], axis=1))
    np.testing.assert_allclose(faces.points_px[order], expected[order_expected], atol=1e-6)
    # The alternative crops' points (crop consensus) come back in the stored pixels too.
    alternatives = turn_points(faces_upright.alternatives_px, 90, (w, h))
    np.testing.assert_allclose(faces.alternatives_px[order], alternatives[order_expected], atol=1e-6)
    # Searching around head boxes given in the stored image's pixels finds the same faces.
    boxes = faces.boxes_px
    again = wrapped.detect(ViewInput(9348, 0, stored, boxes))
    assert len(again) == 3
    assert wrapped.turn_summary(("00_12",))["degrees_cw"] == {"00_12": 270}
