"""Fault injection for the audit benchmark: each fault changes exactly what it says, in a copy."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from annotate.synth.faults import (
    FaultManifest,
    choose_fault_targets,
    copy_sequence,
    face_presence,
    fault_samples,
    garbage_landmarks,
    inject_standard_faults,
    mirror_landmarks,
    rotate_camera,
    shift_video,
    swap_person_ids,
)
from annotate.detect.base import ViewInput
from annotate.detect.synthetic import (
    SyntheticDetector,
    SyntheticDetectorConfig,
    true_cameras,
)
from annotate.head.face70 import FLIP_PERMUTATION_70
from annotate.geometry.rotations import geodesic_distance, rotvec_from_matrix
from annotate.media.video import iter_video_frames
from annotate.panoptic.calibration import read_calibration, read_calibration_info
from annotate.panoptic.errors import PanopticFormatError
from annotate.panoptic.faces import read_face_frame
from annotate.panoptic.layout import SequenceLayout, read_json
from annotate.synth.generate import generate_sequence, load_ground_truth
from annotate.synth.scene import SceneConfig

pytestmark = pytest.mark.slow            # end to end: tens of seconds

SEQ = "tiny"
TINY = SceneConfig(seed=3, num_frames=8, num_cameras=4, image_size=(320, 180))


def _hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return generate_sequence(tmp_path_factory.mktemp("faults_src"), SEQ, TINY, n_jobs=1)


@pytest.fixture(scope="module")
def standard(source, tmp_path_factory):
    """Every standard fault injected into its own copy, the source hashed before and after."""
    before = _hashes(source)
    out = inject_standard_faults(source, tmp_path_factory.mktemp("faults_dst"), seed=0)
    return before, _hashes(source), out


@pytest.fixture
def copy(source, tmp_path):
    return copy_sequence(source, tmp_path, "tiny_copy")


def _faces(seq):
    """frame -> {person id: FacePerson} read back through the reader."""
    layout = SequenceLayout(seq.parent, seq.name)
    return {int(f): {p.id: p for p in read_face_frame(layout.face_file(int(f))).people}
            for f in load_ground_truth(seq).frames}


def _labels(seq):
    """A labels-like table: every (frame, person, camera) of the sequence."""
    rig = read_calibration(SequenceLayout(seq.parent, seq.name).calibration)
    rows = [(f, p, c) for f, ids in face_presence(seq).items() for p in ids for c in rig.names]
    return pd.DataFrame(rows, columns=["frame", "person", "camera"])


# ---------------------------------------------------------------------------- copying

def test_copy_renames_the_calibration_and_links_big_files(source, copy):
    src_files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    dst_files = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert dst_files == sorted(f.replace(f"calibration_{SEQ}.json", "calibration_tiny_copy.json")
                               for f in src_files)
    assert (copy / "calibration_tiny_copy.json").read_bytes() == (source / f"calibration_{SEQ}.json").read_bytes()
    for rel in src_files:
        if rel.endswith((".mp4", ".npz")):           # hard links: same inode
            assert (copy / rel).stat().st_ino == (source / rel).stat().st_ino
        elif rel.startswith("hd"):                                   # JSON: byte-identical copies
            assert (copy / rel).stat().st_ino != (source / rel).stat().st_ino
            assert (copy / rel).read_bytes() == (source / rel).read_bytes()
    assert read_json(copy / "ground_truth.json")["sequence"] == "tiny_copy"
    assert load_ground_truth(copy).rig.names == load_ground_truth(source).rig.names
    with pytest.raises(FileExistsError):
        copy_sequence(source, copy.parent, "tiny_copy")
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".")]    # no staging left


def test_source_is_untouched_by_every_fault(standard):
    before, after, out = standard
    assert before == after
    assert set(out) == {"rotate_1deg", "rotate_3deg", "mirror", "swap_ids", "garbage", "shift_video"}
    for key, (seq, manifest) in out.items():
        assert seq.name == f"{SEQ}__{key}" and manifest.parameters["sequence"] == seq.name
        json.dumps(manifest.to_dict())                                 # JSON-ready


def test_targets_are_deterministic_and_valid(source):
    t = choose_fault_targets(source, seed=0)
    assert t == choose_fault_targets(source, seed=0)
    presence = face_presence(source)
    assert t.camera in ("00_01", "00_02") and t.has_video           # middle of 4 cameras
    assert all(t.face_person in presence[f] for f in t.mirror_frames + t.garbage_frames)
    assert len(set(t.mirror_frames)) == len(t.mirror_frames) >= 2
    a, b = t.swap_persons
    assert a != b and any(a in presence[f] and b in presence[f] for f in presence if f >= t.swap_from)
    assert 0 < t.swap_from < max(presence)


# ------------------------------------------------------------------------ calibration

@pytest.mark.parametrize("axis, unit", [("pan", [0, 1, 0]), ("tilt", [1, 0, 0]), ("roll", [0, 0, 1])])
@pytest.mark.parametrize("degrees", [1.0, 3.0])
def test_rotate_camera_turns_one_camera_by_exactly_the_angle(copy, axis, unit, degrees):
    calib = copy / "calibration_tiny_copy.json"
    before_doc, before = read_json(calib), read_calibration_info(calib)
    manifest = rotate_camera(copy, "00_02", degrees, axis)
    after_doc, after = read_json(calib), read_calibration_info(calib)
    c = before.rig.names.index("00_02")
    others = [i for i in range(len(before.rig)) if i != c]
    r0, r1 = before.rig, after.rig
    assert np.degrees(geodesic_distance(r0.R_cam_world[c], r1.R_cam_world[c])) == pytest.approx(degrees, abs=1e-9)
    # about the camera's own axis: R' R^T is a rotation about that camera axis
    np.testing.assert_allclose(rotvec_from_matrix(r1.R_cam_world[c] @ r0.R_cam_world[c].T),
                               np.radians(degrees) * np.array(unit, float), atol=1e-12)
    np.testing.assert_allclose(r1.centres_world[c], r0.centres_world[c], atol=1e-9)   # centre kept
    for name in ("K", "dist", "image_size"):
        np.testing.assert_array_equal(getattr(r1, name), getattr(r0, name))
    np.testing.assert_array_equal(r1.R_cam_world[others], r0.R_cam_world[others])
    np.testing.assert_array_equal(r1.t_cam_world[others], r0.t_cam_world[others])
    # the document: only that camera's R and t changed
    for cam0, cam1 in zip(before_doc["cameras"], after_doc["cameras"]):
        changed = {k for k in cam0 if cam0[k] != cam1[k]}
        assert changed == ({"R", "t"} if cam0["name"] == "00_02" else set())
    assert {k: v for k, v in before_doc.items() if k != "cameras"} == \
           {k: v for k, v in after_doc.items() if k != "cameras"}
    assert manifest.fault == "rotate_camera" and manifest.parameters["degrees"] == degrees
    labels = _labels(copy)
    np.testing.assert_array_equal(manifest.label_mask(labels), labels.camera == "00_02")


def test_rotate_camera_rejects_unknown_camera_and_axis(copy):
    with pytest.raises(PanopticFormatError):
        rotate_camera(copy, "00_09", 1.0)
    with pytest.raises(ValueError):
        rotate_camera(copy, "00_02", 1.0, axis="yaw")


def test_ground_truth_holds_the_true_cameras(source):
    truth = load_ground_truth(source).rig
    calib = read_calibration(source / f"calibration_{SEQ}.json")
    assert truth.names == calib.names
    for name in ("K", "dist", "R_cam_world", "t_cam_world", "image_size"):
        np.testing.assert_array_equal(getattr(truth, name), getattr(calib, name))


def test_synthetic_detector_keeps_the_true_cameras_after_a_calibration_fault(source, copy):
    rotate_camera(copy, "00_02", 3.0)
    config = SyntheticDetectorConfig(seed=4)
    original_rig = read_calibration(source / f"calibration_{SEQ}.json")
    rotated_rig = read_calibration(copy / "calibration_tiny_copy.json")
    c = rotated_rig.names.index("00_02")
    assert not np.array_equal(rotated_rig.R_cam_world[c], original_rig.R_cam_world[c])
    clean = SyntheticDetector(source, original_rig, config)
    faulty = SyntheticDetector(copy, rotated_rig, config)
    np.testing.assert_array_equal(faulty.rig.R_cam_world, original_rig.R_cam_world)
    found = 0
    for frame in load_ground_truth(source).frames:
        for cam in range(len(rotated_rig)):
            a = clean.detect(ViewInput(int(frame), cam, None, np.zeros((0, 4))))
            b = faulty.detect(ViewInput(int(frame), cam, None, np.zeros((0, 4))))
            np.testing.assert_array_equal(a.points_px, b.points_px)
            np.testing.assert_array_equal(a.confidence, b.confidence)
            found += len(b) if cam == c else 0
    assert found > 0
    # a subset rig in another order maps by name; old ground truth (no cameras) falls back
    sub = original_rig.subset([3, 1])
    assert true_cameras(load_ground_truth(source).rig, sub).names == ("00_03", "00_01")
    assert true_cameras(None, rotated_rig) is rotated_rig


# ------------------------------------------------------------------------------ faces

def test_mirror_swaps_left_and_right_labels_of_the_chosen_faces(source, copy):
    before = _faces(source)
    person, frames = 1, [2, 5]
    manifest = mirror_landmarks(copy, frames, [person])
    after = _faces(copy)
    for f in before:
        assert set(after[f]) == set(before[f])
        for pid, old in before[f].items():
            new = after[f][pid]
            if f in frames and pid == person:
                np.testing.assert_array_equal(new.landmarks, old.landmarks[FLIP_PERMUTATION_70])
                np.testing.assert_array_equal(new.score, old.score[FLIP_PERMUTATION_70])
                np.testing.assert_array_equal(new.repro_error, old.repro_error[FLIP_PERMUTATION_70])
                assert new.visibility == [old.visibility[i] for i in FLIP_PERMUTATION_70]
                assert not np.array_equal(new.landmarks, old.landmarks, equal_nan=True)
            else:
                np.testing.assert_array_equal(new.landmarks, old.landmarks)
                np.testing.assert_array_equal(new.score, old.score)
    layout = SequenceLayout(copy.parent, copy.name)
    untouched = [f for f in before if f not in frames]
    for f in untouched:                                             # files not rewritten at all
        assert layout.face_file(f).read_bytes() == (source / "hdFace3d" / layout.face_file(f).name).read_bytes()
    hit = {(f, person) for f in frames if person in before[f]}
    assert set(zip(manifest.samples.frame, manifest.samples.person)) == hit
    assert manifest.samples.camera.isna().all()
    labels = _labels(copy)
    expect = [(f, p) in hit for f, p in zip(labels.frame, labels.person)]
    np.testing.assert_array_equal(manifest.label_mask(labels), expect)
    with pytest.raises(ValueError, match="nothing was changed"):
        mirror_landmarks(copy, [2], [99])


def test_swap_person_ids_from_a_frame_on_faces_only(source, copy):
    before = _faces(source)
    manifest = swap_person_ids(copy, 0, 2, from_frame=3)
    after = _faces(copy)
    swap = {0: 2, 2: 0}
    expect = set()
    for f, people in before.items():
        renamed = {swap.get(pid, pid) if f >= 3 else pid: p for pid, p in people.items()}
        assert set(after[f]) == set(renamed)
        for pid, old in renamed.items():
            np.testing.assert_array_equal(after[f][pid].landmarks, old.landmarks)
            if f >= 3 and pid in swap:
                expect.add((f, pid))
    assert set(zip(manifest.samples.frame, manifest.samples.person)) == expect
    for body in sorted((source / "hdPose3d_stage1_coco19").iterdir()):   # bodies keep their ids
        assert (copy / "hdPose3d_stage1_coco19" / body.name).read_bytes() == body.read_bytes()
    labels = _labels(copy)
    mask = manifest.label_mask(labels)
    np.testing.assert_array_equal(mask, (labels.frame >= 3) & labels.person.isin([0, 2]))


def test_garbage_landmarks_are_random_points_around_the_face(source, copy):
    before = _faces(source)
    manifest = garbage_landmarks(copy, [1, 6], None, rng=11)
    after = _faces(copy)
    hit = set()
    for f, people in before.items():
        for pid, old in people.items():
            new = after[f][pid]
            np.testing.assert_array_equal(new.score, old.score)
            if f in (1, 6):
                hit.add((f, pid))
                ok = np.isfinite(old.landmarks[:, 0])
                np.testing.assert_array_equal(np.isfinite(new.landmarks[:, 0]), ok)   # missing stay missing
                offset = new.landmarks[ok] - old.landmarks[ok].mean(axis=0)
                assert np.abs(offset).max() <= 10.0
                assert np.abs(new.landmarks[ok] - old.landmarks[ok]).mean() > 2.0
            else:
                np.testing.assert_array_equal(new.landmarks, old.landmarks)
    assert set(zip(manifest.samples.frame, manifest.samples.person)) == hit
    again = copy_sequence(source, copy.parent, "tiny_again")
    garbage_landmarks(again, [1, 6], None, rng=11)                  # deterministic from the seed
    for f in (1, 6):
        name = f"hdFace3d/faceRecon3D_hd{f:08d}.json"
        assert (again / name).read_bytes() == (copy / name).read_bytes()


# ------------------------------------------------------------------------------ video

def _decode(path):
    return [f.rgb().astype(np.int16) for f in iter_video_frames(path)]


@pytest.mark.parametrize("shift", [3, -2])
def test_shift_video_moves_one_camera_in_time(source, copy, shift):
    name = "hdVideos/hd_00_01.mp4"
    inode = (source / name).stat().st_ino
    source_hash = hashlib.sha256((source / name).read_bytes()).hexdigest()
    manifest = shift_video(copy, "00_01", shift)
    assert (copy / name).stat().st_ino != inode                     # a new file, not through the link
    assert hashlib.sha256((source / name).read_bytes()).hexdigest() == source_hash
    original, shifted = _decode(source / name), _decode(copy / name)
    n = len(original)
    assert len(shifted) == n == TINY.num_frames
    for k in range(n):
        want = min(max(k + shift, 0), n - 1)
        diff = [np.abs(shifted[k] - o).mean() for o in original]
        assert int(np.argmin(diff)) == want and diff[want] < 1.0    # lossy re-encode
    for other in ("hd_00_00.mp4", "hd_00_02.mp4", "hd_00_03.mp4"):
        assert (copy / "hdVideos" / other).stat().st_ino == (source / "hdVideos" / other).stat().st_ino
    labels = _labels(copy)
    np.testing.assert_array_equal(manifest.label_mask(labels), labels.camera == "00_01")
    with pytest.raises(ValueError):
        shift_video(copy, "00_01", 0)


# --------------------------------------------------------------------------- manifests

def test_manifest_wildcards_expand_to_label_rows():
    labels = pd.DataFrame({"frame": [0, 0, 1, 1, 2, 2], "person": [1, 2, 1, 2, 1, 2],
                           "camera": ["00_00", "00_01", "00_00", "00_01", "00_00", "00_01"]})
    cases = [
        (fault_samples([1], [2], [None]), [0, 0, 0, 1, 0, 0]),
        (fault_samples(cameras=["00_00"]), [1, 0, 1, 0, 1, 0]),
        (fault_samples([0, 2], [None, 2], [None, "00_01"]), [1, 1, 0, 0, 0, 1]),
        (fault_samples([5], [1]), [0, 0, 0, 0, 0, 0]),
        (fault_samples(), [1, 1, 1, 1, 1, 1]),
        (fault_samples([], [], []), [0, 0, 0, 0, 0, 0]),
    ]
    for samples, expect in cases:
        mask = FaultManifest("x", {}, samples).label_mask(labels)
        np.testing.assert_array_equal(mask, np.array(expect, bool))
    assert FaultManifest("x", {}, fault_samples([1], [2])).label_mask(labels.iloc[:0]).shape == (0,)


def test_the_mirror_permutation_is_the_face_models_mirror_map():
    """One concept: the generator's left/right table agrees with FLIP_PERMUTATION_70."""
    from annotate.head import face_model

    for right, left in face_model._MIRROR.items():
        assert FLIP_PERMUTATION_70[right] == left and FLIP_PERMUTATION_70[left] == right
    assert FLIP_PERMUTATION_70[face_model.RIGHT_PUPIL] == face_model.LEFT_PUPIL
    np.testing.assert_array_equal(FLIP_PERMUTATION_70[FLIP_PERMUTATION_70], np.arange(70))
