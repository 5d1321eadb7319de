"""Panoptic-layout reading and writing: paths, calibration, faces, bodies.

Real data: ``tests/data/calibration_160906_band1_hd.json`` holds the 31 HD camera entries of
the real CMU Panoptic calibration of 160906_band1, and ``tests/data/hdPose3d_stage1_coco19/``
three real body files of that sequence (frames 170, 173, 179), copied unchanged from
``../shared/panoptic-sample`` (CMU Panoptic, non-commercial research licence). Tests on the
full sample are skipped when it is absent.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from annotate.panoptic import errors as E
from annotate.panoptic.bodies import read_body_frame, write_body_frame
from annotate.panoptic.calibration import (calibration_document, read_calibration,
                                           read_calibration_info, write_calibration)
from annotate.panoptic.errors import PanopticFormatError, raise_on_errors
from annotate.panoptic.faces import FacePerson, read_face_frame, write_face_frame
from annotate.panoptic.layout import (BODY_FILE, FACE_FILE, SequenceLayout, check_camera_name,
                                      list_frames, list_video_cameras, read_json)

DATA = Path(__file__).parent / "data"
CALIB = DATA / "calibration_160906_band1_hd.json"
BODIES = DATA / "hdPose3d_stage1_coco19"
SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "panoptic-sample" / "160906_band1"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/panoptic-sample absent")


# --- helpers ---------------------------------------------------------------------------------
def make_face(pid: int, rng: np.random.Generator, n_missing: int = 2) -> FacePerson:
    """A plausible face: 70 landmarks ~1.6 m up (world y down), last ``n_missing`` missing."""
    landmarks = rng.normal([10.0, -160.0, 20.0], 5.0, size=(70, 3))
    score = rng.uniform(0.2, 0.9, 70)
    repro = rng.uniform(0.5, 4.0, 70)
    visibility = [sorted(rng.choice(31, size=3, replace=False).tolist()) for _ in range(70)]
    if n_missing:
        landmarks[-n_missing:] = np.nan
        score[-n_missing:] = 0.0
        repro[-n_missing:] = 1e5
        for i in range(70 - n_missing, 70):
            visibility[i] = []
    return FacePerson(pid, landmarks, score, repro, visibility)


def face_doc(people: list[dict]) -> dict:
    return {"version": 0.5, "people": people}


def good_person_json(pid: int = 0) -> dict:
    return {"id": pid, "face70": {"landmarks": [1.0] * 210, "averageScore": [0.5] * 70,
                                  "averageReproError": [1.0] * 70, "visibility": [[0, 1]] * 70}}


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def single_rejection(frame_content):
    assert len(frame_content.rejections) == 1, frame_content.rejections
    return frame_content.rejections[0]


# --- layout ----------------------------------------------------------------------------------
def test_layout_paths_follow_panoptic_names(tmp_path):
    lay = SequenceLayout(tmp_path, "160906_band1")
    seq = tmp_path / "160906_band1"
    assert lay.calibration == seq / "calibration_160906_band1.json"
    assert lay.face_file(170) == seq / "hdFace3d" / "faceRecon3D_hd00000170.json"
    assert lay.body_file(170) == seq / "hdPose3d_stage1_coco19" / "body3DScene_00000170.json"
    assert lay.video_file("00_03") == seq / "hdVideos" / "hd_00_03.mp4"
    assert lay.image_file("00_03", 170) == seq / "hdImgs" / "00_03" / "00_03_00000170.jpg"
    assert lay.relative(lay.face_file(1)) == "160906_band1/hdFace3d/faceRecon3D_hd00000001.json"
    with pytest.raises(ValueError, match="PP_NN"):
        check_camera_name("0_3")
    with pytest.raises(ValueError, match="8-digit"):
        FACE_FILE.name(10**8)


def test_frame_names_parse_strictly():
    assert FACE_FILE.parse("faceRecon3D_hd00000170.json") == 170
    for bad in ("faceRecon3D_hd170.json", "faceRecon3D_hd000001700.json", "faceRecon3D_00000170.json",
                "faceRecon3D_hd00000170.json.bak", "faceRecon3D_hd0000017a.json"):
        assert FACE_FILE.parse(bad) is None, bad
    assert BODY_FILE.parse("body3DScene_00000005.json") == 5


def test_list_frames_reports_unexpected_entries(tmp_path):
    folder = tmp_path / "hdFace3d"
    folder.mkdir()
    for f in (3, 1, 2):
        (folder / FACE_FILE.name(f)).write_text("{}")
    for odd in ("notes.txt", "faceRecon3D_hd17.json", ".DS_Store"):
        (folder / odd).write_text("")
    (folder / "sub").mkdir()
    listing = list_frames(folder, FACE_FILE)
    assert listing.exists and listing.frames.tolist() == [1, 2, 3]
    assert sorted(p.name for p in listing.unexpected) == [".DS_Store", "faceRecon3D_hd17.json",
                                                          "notes.txt", "sub"]
    absent = list_frames(tmp_path / "nothing", FACE_FILE)
    assert not absent.exists and absent.frames.size == 0


def test_list_video_cameras(tmp_path):
    lay = SequenceLayout(tmp_path, "s")
    lay.video_dir.mkdir(parents=True)
    for name in ("hd_00_03.mp4", "hd_00_01.mp4", "hd_00_1.mp4"):
        (lay.video_dir / name).write_bytes(b"")
    cams, unexpected = list_video_cameras(lay)
    assert cams == ("00_01", "00_03") and [p.name for p in unexpected] == ["hd_00_1.mp4"]


def test_read_json_names_file_and_accepts_cpp_nan_tokens(tmp_path):
    bad = write_text(tmp_path / "x.json", '{"a": [1, 2,')
    with pytest.raises(PanopticFormatError, match=r"x\.json: invalid_json"):
        read_json(bad)
    with pytest.raises(PanopticFormatError, match="empty"):
        read_json(write_text(tmp_path / "e.json", ""))
    doc = read_json(write_text(tmp_path / "n.json", '{"a": [nan, -nan, inf, -inf, 1], "s": "nan"}'))
    assert np.isnan(doc["a"][0]) and np.isnan(doc["a"][1])
    assert doc["a"][2:] == [np.inf, -np.inf, 1] and doc["s"] == "nan"


# --- calibration -----------------------------------------------------------------------------
def test_real_hd_calibration():
    info = read_calibration_info(CALIB)
    rig = info.rig
    assert len(rig) == 31
    assert rig.names == tuple(f"00_{i:02d}" for i in range(31))
    assert rig.K[0, 0, 0] == pytest.approx(1634.03)
    assert rig.K[0, 1, 1] == pytest.approx(1629.73)
    assert rig.dist[0].tolist() == pytest.approx([-0.222445, 0.199192, 8.73054e-05, 0.000982243, 0.0238445])
    assert rig.t_cam_world[0].tolist() == pytest.approx([20.90028135, 127.2202879, 283.1159034])
    np.testing.assert_allclose(np.einsum("cij,ckj->cik", rig.R_cam_world, rig.R_cam_world),
                               np.broadcast_to(np.eye(3), (31, 3, 3)), atol=1e-8)
    np.testing.assert_allclose(np.linalg.det(rig.R_cam_world), 1.0, atol=1e-8)
    assert (rig.image_size == [1920, 1080]).all()
    assert info.camera_index.tolist() == list(range(31)) == info.nodes.tolist()
    assert (info.panels == 0).all() and info.source == "160906_calib_norm" and info.type_count == 31
    # camera centres lie a couple of metres from the dome centre
    assert 150 < np.linalg.norm(rig.centres_world, axis=1).min() < 400


@needs_sample
def test_full_real_calibration_by_type():
    path = SAMPLE / "calibration_160906_band1.json"
    hd = read_calibration(path)
    assert len(hd) == 31 and hd.K[0, 0, 0] == pytest.approx(1634.03)
    vga = read_calibration_info(path, "vga")
    assert len(vga.rig) == 479 and (vga.rig.image_size == [640, 480]).all()
    assert len(read_calibration(path, "kinect-color")) == 10


def test_calibration_subset_keeps_camera_index():
    info = read_calibration_info(CALIB, names=["00_17", "00_02"])
    assert info.names == ("00_02", "00_17")
    assert info.camera_index.tolist() == [2, 17]
    full = read_calibration(CALIB)
    np.testing.assert_array_equal(info.rig.K, full.K[[2, 17]])


def test_missing_requested_camera_lists_missing_and_available():
    with pytest.raises(PanopticFormatError) as err:
        read_calibration(CALIB, names=["00_02", "00_31", "01_01"])
    msg = str(err.value)
    assert str(CALIB) in msg and "missing_camera" in msg
    assert "['00_31', '01_01']" in msg and "'00_30'" in msg and "available" in msg


def _broken_calibration(tmp_path, mutate) -> Path:
    doc = json.loads(CALIB.read_text())
    mutate(doc["cameras"][3])
    path = tmp_path / "calibration_x.json"
    path.write_text(json.dumps(doc))
    return path


def _rotate_bad(cam):
    cam["R"][0][0] += 0.01


@pytest.mark.parametrize("mutate, message", [
    (_rotate_bad, "R is not a rotation"),
    (lambda c: c["R"].__setitem__(0, [-v for v in c["R"][0]]), "not a rotation"),   # det -1
    (lambda c: c["distCoef"].pop(), r"distCoef has shape \(4,\)"),
    (lambda c: c["K"][0].__setitem__(0, -5.0), "non-positive focal"),
    (lambda c: c["K"].__setitem__(2, [0, 0, 2]), "last row"),
    (lambda c: c.__setitem__("t", [[1.0], [2.0]]), r"t has shape \(2, 1\)"),
    (lambda c: c.__setitem__("resolution", [1920.5, 1080]), "resolution must be"),
    (lambda c: c.__setitem__("resolution", [1920]), "resolution must be"),
    (lambda c: c["K"][1].__setitem__(1, "x"), "not an array of numbers"),
    (lambda c: c.pop("distCoef"), r"lacks key\(s\) \['distCoef'\]"),
])
def test_bad_calibration_names_file_and_camera(tmp_path, mutate, message):
    path = _broken_calibration(tmp_path, mutate)
    with pytest.raises(PanopticFormatError, match=message) as err:
        read_calibration(path)
    assert str(err.value).startswith(str(path)) and "'00_03'" in str(err.value)


def test_calibration_invalid_json_and_missing_cameras_key(tmp_path):
    with pytest.raises(PanopticFormatError, match="invalid_json"):
        read_calibration(write_text(tmp_path / "c.json", CALIB.read_text()[:-20]))
    with pytest.raises(PanopticFormatError, match="no 'cameras' key"):
        read_calibration(write_text(tmp_path / "d.json", '{"calibDataSource": "x"}'))
    with pytest.raises(PanopticFormatError, match="no camera of type 'hd'"):
        read_calibration(write_text(tmp_path / "e.json", '{"cameras": []}'))


def test_calibration_round_trip_is_exact_and_real_format(tmp_path):
    info = read_calibration_info(CALIB)
    out = write_calibration(tmp_path / "calibration_rt.json", info.rig, source=info.source)
    back = read_calibration_info(out)
    for attr in ("K", "dist", "R_cam_world", "t_cam_world", "image_size"):
        np.testing.assert_array_equal(getattr(back.rig, attr), getattr(info.rig, attr))
    assert back.names == info.names
    assert back.nodes.tolist() == info.nodes.tolist() and back.panels.tolist() == info.panels.tolist()
    # the written document equals the real file's entries value for value
    assert json.loads(out.read_text()) == json.loads(CALIB.read_text())
    assert not list(tmp_path.glob("*.tmp"))


def test_calibration_writer_panels_nodes_explicit():
    rig = read_calibration(CALIB).subset([0, 1])
    doc = calibration_document(rig, "hd", panels=[0, 0], nodes=[7, 9])
    assert [c["node"] for c in doc["cameras"]] == [7, 9]
    assert doc["cameras"][0]["t"] == [[v] for v in rig.t_cam_world[0].tolist()]


# --- bodies ----------------------------------------------------------------------------------
def test_real_bodies_frame_170():
    frame = read_body_frame(BODIES / "body3DScene_00000170.json")
    assert frame.rejections == [] and frame.frame == 170
    assert frame.version == 0.7 and frame.univ_time == pytest.approx(47963.356) and frame.fps_type == "hd_29_97"
    assert [b.id for b in frame.bodies] == [0, 1, 2]
    b0, b1, b2 = frame.bodies
    assert b0.joints.shape == (19, 3) and b0.confidence.shape == (19,)
    assert b0.joints[0].tolist() == pytest.approx([124.163, -105.917, -30.3246])
    # joint 8 of body 0 is (0, 0, 0, -1) in the file: missing
    assert np.isnan(b0.joints[8]).all() and b0.confidence[8] == -1
    assert np.isfinite(np.delete(b0.joints, 8, axis=0)).all()
    # joints 12-14 of body 2 are flagged -1 but carry coordinates: kept
    assert b2.confidence[12:15].tolist() == [-1, -1, -1]
    assert b2.joints[12].tolist() == pytest.approx([-55.2544, -40.156, -37.0533])
    assert np.isfinite(b1.joints).all() and (b1.confidence > 0).all()


def test_real_bodies_frame_179_missing_eyes_ears():
    b1 = read_body_frame(BODIES / "body3DScene_00000179.json").bodies[1]
    assert np.isnan(b1.joints[17:19]).all() and (b1.confidence[17:19] == -1).all()


@needs_sample
def test_all_sample_body_files_read_cleanly():
    files = sorted((SAMPLE / "hdPose3d_stage1_coco19").glob("*.json"))
    assert len(files) == 20
    for f in files:
        frame = read_body_frame(f)
        assert frame.rejections == [] and len(frame.bodies) == 3


@pytest.mark.parametrize("name", ["body3DScene_00000170.json", "body3DScene_00000179.json"])
def test_body_round_trip_reproduces_real_file(tmp_path, name):
    src = BODIES / name
    frame = read_body_frame(src)
    out = write_body_frame(tmp_path / name, [(b.id, b.as_array()) for b in frame.bodies],
                           univ_time=frame.univ_time)
    back = read_body_frame(out)
    assert back.univ_time == frame.univ_time and back.frame == frame.frame
    for a, b in zip(frame.bodies, back.bodies):
        assert a.id == b.id
        np.testing.assert_array_equal(a.joints, b.joints)
        np.testing.assert_array_equal(a.confidence, b.confidence)
    orig, written = json.loads(src.read_text()), json.loads(out.read_text())
    assert written["version"] == orig["version"] and written["fpsType"] == orig["fpsType"]
    for a, b in zip(orig["bodies"], written["bodies"]):
        assert a["id"] == b["id"] and a["joints19"] == b["joints19"]


def test_body_writer_refuses_nan_joint_with_confidence(tmp_path):
    joints = np.ones((19, 4))
    joints[4, :3] = np.nan
    with pytest.raises(ValueError, match="confidence -1"):
        write_body_frame(tmp_path / "b.json", [(0, joints)])
    joints[4, 3] = np.nan                      # NaN confidence: written as (0, 0, 0, -1)
    write_body_frame(tmp_path / "b.json", [(0, joints)])
    assert json.loads((tmp_path / "b.json").read_text())["bodies"][0]["joints19"][16:20] == [0, 0, 0, -1]


def _body_json(pid=0, joints=None):
    return {"id": pid, "joints19": joints if joints is not None else [1.0, 2.0, 3.0, 0.5] * 19}


@pytest.mark.parametrize("bodies, reason", [
    ([_body_json(joints=[1.0] * 75)], E.WRONG_LENGTH),
    ([_body_json(joints=[1.0, 2.0, 3.0, 0.5] * 18 + [float("nan")] * 4)], E.NON_FINITE),
    ([_body_json(joints=[2e4, 2.0, 3.0, 0.5] * 19)], E.ABSURD_VALUE),
    ([_body_json(joints=[1.0, 2.0, 3.0, 3.0] * 19)], E.BAD_SCORE),
    ([_body_json(joints=[1.0, 2.0, 3.0, -0.5] * 19)], E.BAD_SCORE),
    ([_body_json(joints=["1"] * 76)], E.WRONG_TYPE),
    ([{"id": 0, "joints15": [1.0] * 60}], E.UNSUPPORTED_LAYOUT),
    ([{"joints19": [1.0] * 76}], E.MISSING_KEY),
    ([_body_json(pid=-1)], E.UNIDENTIFIED_PERSON),
])
def test_bad_body_is_one_rejection(tmp_path, bodies, reason):
    path = tmp_path / BODY_FILE.name(7)
    path.write_text(json.dumps({"version": 0.7, "univTime": 1.0, "fpsType": "hd_29_97",
                                "bodies": bodies + [_body_json(pid=5)]}))
    frame = read_body_frame(path, sequence="s")
    rej = single_rejection(frame)
    assert rej.reason == reason and rej.file == str(path) and rej.frame == 7 and rej.sequence == "s"
    assert [b.id for b in frame.bodies] == [5]


def test_duplicate_body_ids_rejected_both(tmp_path):
    path = write_text(tmp_path / BODY_FILE.name(1),
                      json.dumps({"bodies": [_body_json(3), _body_json(3), _body_json(4)]}))
    frame = read_body_frame(path)
    assert [r.reason for r in frame.rejections] == [E.DUPLICATE_PERSON] * 2
    assert [r.person for r in frame.rejections] == [3, 3] and [b.id for b in frame.bodies] == [4]
    assert np.isnan(frame.univ_time)


def test_body_file_without_bodies_or_json(tmp_path):
    rej = single_rejection(read_body_frame(write_text(tmp_path / BODY_FILE.name(1), '{"version": 0.7}')))
    assert rej.reason == E.MISSING_KEY and rej.person is None
    rej = single_rejection(read_body_frame(write_text(tmp_path / BODY_FILE.name(2), '{"bodies": [')))
    assert rej.reason == E.INVALID_JSON and rej.frame == 2


# --- faces -----------------------------------------------------------------------------------
def test_face_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    people = [make_face(0, rng), make_face(4, rng, n_missing=0)]
    path = write_face_frame(tmp_path / FACE_FILE.name(12), people)
    doc = json.loads(path.read_text())
    assert set(doc) == {"version", "people"}
    assert set(doc["people"][0]) == {"id", "face70"}
    assert set(doc["people"][0]["face70"]) == {"landmarks", "averageScore", "averageReproError", "visibility"}
    assert len(doc["people"][0]["face70"]["landmarks"]) == 210
    assert doc["people"][0]["face70"]["landmarks"][-3:] == [0, 0, 0]     # missing -> zeros
    frame = read_face_frame(path)
    assert frame.rejections == [] and frame.frame == 12
    for a, b in zip(people, frame.people):
        assert a.id == b.id and b.negative_scores == 0
        np.testing.assert_array_equal(a.landmarks, b.landmarks)        # NaN where missing
        np.testing.assert_array_equal(a.score, b.score)
        np.testing.assert_array_equal(a.repro_error, b.repro_error)
        assert a.visibility == b.visibility


def test_face_writer_refuses_nan_landmark_with_score(tmp_path):
    face = make_face(0, np.random.default_rng(1), n_missing=0)
    face.landmarks[5] = np.nan
    with pytest.raises(ValueError, match="positive score"):
        write_face_frame(tmp_path / "f.json", [face])


def test_negative_scores_read_as_missing(tmp_path):
    person = good_person_json(2)
    person["face70"]["averageScore"][3] = -1.0
    person["face70"]["landmarks"][9:12] = [0, 0, 0]
    person["face70"]["averageScore"][4] = -0.5        # coordinates kept (not zeros)
    frame = read_face_frame(write_text(tmp_path / FACE_FILE.name(1), json.dumps(face_doc([person]))))
    p = frame.people[0]
    assert frame.rejections == [] and p.negative_scores == 2
    assert p.score[3] == 0 and p.score[4] == 0 and np.isnan(p.landmarks[3]).all()
    assert p.landmarks[4].tolist() == [1.0, 1.0, 1.0]


def _mutated(path_in_face70, value):
    person = good_person_json(0)
    person["face70"][path_in_face70] = value
    return person


def _nan_landmark():
    person = good_person_json(0)
    person["face70"]["landmarks"][7] = float("nan")
    return person


@pytest.mark.parametrize("person, reason, text", [
    (_mutated("landmarks", [1.0] * 209), E.WRONG_LENGTH, r"landmarks has shape \(209,\)"),
    (_mutated("averageScore", [0.5] * 71), E.WRONG_LENGTH, "averageScore"),
    (_mutated("averageReproError", [1.0] * 69), E.WRONG_LENGTH, "averageReproError"),
    (_mutated("visibility", [[0]] * 69), E.WRONG_LENGTH, "visibility has 69"),
    (_nan_landmark(), E.NON_FINITE, "index \\[7\\]"),
    (_mutated("landmarks", [1.0] * 209 + [float("inf")]), E.NON_FINITE, "landmarks"),
    (_mutated("landmarks", [1.0] * 209 + [2e4]), E.ABSURD_VALUE, "limit 10000 cm"),
    (_mutated("averageScore", [0.5] * 69 + [5.0]), E.BAD_SCORE, "exceeds"),
    (_mutated("averageReproError", [1.0] * 69 + [-2.0]), E.ABSURD_VALUE, "negative"),
    (_mutated("visibility", [[0]] * 69 + [["a"]]), E.WRONG_TYPE, r"visibility\[69\]"),
    (_mutated("visibility", [[0]] * 69 + [[-1]]), E.BAD_VISIBILITY, r"visibility\[69\]"),
    (_mutated("landmarks", [1.0] * 209 + [None]), E.WRONG_TYPE, "non-numbers"),
    (_mutated("landmarks", [[1.0] * 3] * 70), E.WRONG_LENGTH, r"\(70, 3\)"),
    ({"id": 0, "face_coco": {}}, E.UNSUPPORTED_LAYOUT, "face_coco"),
    ({"id": 0}, E.MISSING_KEY, "face70"),
    ({"id": "0", "face70": {}}, E.WRONG_TYPE, "not an integer"),
    ({"id": True, "face70": {}}, E.WRONG_TYPE, "not an integer"),
    ({"id": 0, "face70": {"landmarks": [1.0] * 210}}, E.MISSING_KEY, "averageScore"),
    (dict(good_person_json(0), id=-1), E.UNIDENTIFIED_PERSON, "id -1"),
])
def test_bad_face_is_one_rejection_and_others_kept(tmp_path, person, reason, text):
    path = tmp_path / FACE_FILE.name(33)
    path.write_text(json.dumps(face_doc([person, good_person_json(9)])))
    frame = read_face_frame(path, sequence="seq")
    rej = single_rejection(frame)
    assert (rej.reason, rej.frame, rej.file, rej.sequence, rej.stage) == (reason, 33, str(path), "seq", "ingest.faces")
    assert rej.person == (person["id"] if isinstance(person["id"], int) and not isinstance(person["id"], bool) else None)
    assert [p.id for p in frame.people] == [9]
    assert re.search(text, rej.detail), rej.detail
    if rej.is_error:
        with pytest.raises(PanopticFormatError, match=f"{path.name}: {reason}: frame 33"):
            raise_on_errors(frame.rejections)


def test_cpp_nan_token_rejects_only_that_person(tmp_path):
    good = json.dumps(good_person_json(1))
    bad = json.dumps(good_person_json(2)).replace("[1.0, 1.0, 1.0,", "[1.0, -nan, 1.0,", 1)
    path = write_text(tmp_path / FACE_FILE.name(3), '{"version": 0.5, "people": [%s, %s]}' % (good, bad))
    frame = read_face_frame(path)
    assert [p.id for p in frame.people] == [1]
    assert single_rejection(frame).reason == E.NON_FINITE and frame.rejections[0].person == 2


def test_duplicate_face_ids_rejected(tmp_path):
    path = write_text(tmp_path / FACE_FILE.name(5),
                      json.dumps(face_doc([good_person_json(1), good_person_json(1), good_person_json(2)])))
    frame = read_face_frame(path)
    assert [(r.reason, r.person) for r in frame.rejections] == [(E.DUPLICATE_PERSON, 1)] * 2
    assert [p.id for p in frame.people] == [2]


@pytest.mark.parametrize("text, reason, detail", [
    ('{"people": [', E.INVALID_JSON, "not valid JSON"),
    ("", E.INVALID_JSON, "empty"),
    ('{"version": 0.5}', E.MISSING_KEY, "no 'people'"),
    ('[1, 2]', E.MISSING_KEY, "no 'people'"),
    ('{"people": {}}', E.WRONG_TYPE, "'people' is a dict"),
])
def test_whole_face_file_rejection(tmp_path, text, reason, detail):
    path = write_text(tmp_path / FACE_FILE.name(8), text)
    frame = read_face_frame(path)
    rej = single_rejection(frame)
    assert (rej.reason, rej.person, rej.frame) == (reason, None, 8) and detail in rej.detail
    assert frame.people == []
    with pytest.raises(PanopticFormatError) as err:
        raise_on_errors(frame.rejections)
    assert str(err.value).startswith(str(path))


def test_rejection_reason_must_be_known():
    with pytest.raises(ValueError, match="unknown rejection reason"):
        E.Rejection("s", "ingest", None, None, None, "f", "oops", "")
    cols = E.rejection_columns([E.Rejection("s", "ingest", 1, None, "00_01", "f", E.MISSING_FRAME, "d")])
    assert cols["frame"] == [1] and cols["person"] == [None] and cols["camera"] == ["00_01"]
