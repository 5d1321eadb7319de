"""The synthetic Panoptic-format generator: face model, scene, noise, files, ground truth."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from annotate.head.head_frame import HeadFrameSpec, head_frame_from_landmarks
from annotate.geometry.procrustes import umeyama
from annotate.geometry.rotations import euler_from_matrix, geodesic_distance, is_rotation
from annotate.head.per_view import project_landmarks
from annotate.head.visibility import TOLERANCE_CM
from annotate.panoptic.bodies import read_body_frame
from annotate.panoptic.calibration import read_calibration
from annotate.panoptic.faces import read_face_frame
from annotate.panoptic.layout import BODY_FILE, FACE_FILE, SequenceLayout, list_frames
from annotate.head.face_model import base_face_landmarks, person_shape, shape_scale
from annotate.synth.generate import (GROUND_TRUTH_KEYS, generate_sequence, landmark_views,
                                     load_ground_truth, scene_frames)
from annotate.synth.render import FrameScene, landmark_visibility
from annotate.synth.scene import (SceneConfig, level_head_angles, make_dome_rig,
                                  published_landmarks, simulate_scene)

TINY = SceneConfig(seed=7, num_frames=10, num_cameras=8)


@pytest.fixture(scope="module")
def tiny_scene():
    return simulate_scene(TINY)


@pytest.fixture(scope="module")
def default_scene():
    """The default 31-camera, 120-frame scene (simulation only: ~0.05 s, no files)."""
    return simulate_scene(SceneConfig())


@pytest.fixture(scope="module")
def tiny_sequence(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return generate_sequence(root, "synth_tiny", TINY, render_video=False)


# ------------------------------------------------------------------------------ face model

def test_base_face_has_adult_proportions_in_the_canonical_frame():
    face = base_face_landmarks()
    assert face.shape == (70, 3)
    R, origin = head_frame_from_landmarks(face)
    np.testing.assert_allclose(R, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(origin, 0.0, atol=1e-12)
    np.testing.assert_allclose(face[68], face[36:42].mean(0), atol=1e-12)   # right pupil
    np.testing.assert_allclose(face[69], face[42:48].mean(0), atol=1e-12)
    assert face[68, 0] < 0 < face[69, 0]                    # subject's right eye at -x
    assert np.linalg.norm(face[69] - face[68]) == pytest.approx(6.3, abs=0.05)
    assert np.linalg.norm(face[39] - face[36]) == pytest.approx(3.0, abs=0.1)   # eye width
    assert np.linalg.norm(face[54] - face[48]) == pytest.approx(5.0, abs=0.05)  # mouth width
    corners_z = face[[36, 39, 42, 45], 2].mean()
    assert face[30, 2] - corners_z == pytest.approx(2.3, abs=0.1)              # nose tip
    eye_y = 0.5 * (face[68, 1] + face[69, 1])
    assert eye_y - face[8, 1] == pytest.approx(11.5, abs=0.2)                  # eyes to chin
    # the jaw runs from the right ear (0) round the chin (8) to the left ear (16)
    assert face[0, 0] < -6.5 and face[16, 0] > 6.5 and face[8, 2] - face[0, 2] > 5.0
    np.testing.assert_allclose(face[16 - np.arange(8)], face[np.arange(8)] * [-1, 1, 1], atol=1e-9)
    # the head centre lies behind the face, inside the skull
    assert np.all(face[17:48, 2] > 6.0)


def test_person_shape_is_aligned_with_the_base_face_by_construction():
    base = base_face_landmarks()
    rng = np.random.default_rng(3)
    for _ in range(20):
        shape = person_shape(rng, base, 0.07, 0.15)
        scale = shape_scale(base, shape)
        assert 0.93 <= scale <= 1.07
        fit = umeyama(base, shape)
        np.testing.assert_allclose(fit.R, np.eye(3), atol=1e-9)
        np.testing.assert_allclose(fit.t, 0.0, atol=1e-9)
        assert fit.scale == pytest.approx(scale, abs=1e-12)
        assert shape.shape == (70, 3)
        R_canonical, _ = head_frame_from_landmarks(shape)
        assert np.degrees(geodesic_distance(R_canonical, np.eye(3))) < 0.05
        residual = shape - scale * base
        assert 0.1 < residual[:68].std() < 0.2                  # the shape does vary
        np.testing.assert_allclose(shape[68], shape[36:42].mean(0), atol=1e-12)


# ------------------------------------------------------------------------------- cameras

def test_dome_rig_looks_like_the_real_one():
    rig = make_dome_rig(31, (1920, 1080), np.random.default_rng(0))
    assert rig.names == tuple(f"00_{i:02d}" for i in range(31))
    assert is_rotation(rig.R_cam_world).all()
    centre = np.array([-4.0, -222.0, 7.0])
    radius = np.linalg.norm(rig.centres_world - centre, axis=1)
    assert radius.min() >= 214.0 and radius.max() <= 306.0
    assert -360 < rig.centres_world[:, 1].min() and rig.centres_world[:, 1].max() < -60   # above the floor
    f = rig.K[:, 0, 0]
    assert 1380 < f.min() and f.max() < 1660
    assert np.all(rig.dist[:, 0] < -0.15) and np.all(rig.dist[:, 1] > 0.1)
    # every camera sees the capture centre at head height near its image centre
    px = rig.project_world(np.array([0.0, -150.0, 0.0]))
    assert np.all(np.abs(px - [960, 540]) < [400, 250])
    # small images scale the intrinsics
    small = make_dome_rig(2, (320, 180), np.random.default_rng(0))
    assert small.K[0, 0, 0] < 300 and np.all(small.image_size == [320, 180])


# --------------------------------------------------------------------------------- scene

def test_scene_is_deterministic_from_the_seed(tiny_scene):
    again = simulate_scene(TINY)
    for name in ("R_world_head", "t_world_head", "shapes_head", "scale", "present", "joints19"):
        np.testing.assert_array_equal(getattr(again, name), getattr(tiny_scene, name))
    np.testing.assert_array_equal(again.rig.R_cam_world, tiny_scene.rig.R_cam_world)
    other = simulate_scene(replace(TINY, seed=8))
    assert not np.allclose(other.t_world_head, tiny_scene.t_world_head)
    a, b = published_landmarks(tiny_scene), published_landmarks(again)
    np.testing.assert_array_equal(a.landmarks_world, b.landmarks_world)


def test_ground_truth_poses_reproduce_the_clean_landmarks(default_scene):
    s = default_scene
    from annotate.synth.expressions import expression_offsets

    expressive = s.shapes_head + expression_offsets(s.shapes_head, s.expressions)
    posed = np.einsum("fpij,fpnj->fpni", s.R_world_head, expressive) + s.t_world_head[:, :, None]
    np.testing.assert_allclose(posed, s.landmarks_world(), atol=1e-9)
    assert is_rotation(s.R_world_head).all()
    # The ground truth is the skull: the canonical frame of each posed rest face (no
    # expression) is the ground-truth head frame.
    clean = np.einsum("fpij,pnj->fpni", s.R_world_head, s.shapes_head) + s.t_world_head[:, :, None]
    R_canonical, origin = head_frame_from_landmarks(clean)
    angle = np.degrees(geodesic_distance(R_canonical, s.R_world_head))
    assert angle.max() < 0.5
    # Its origin, with the head-centre offset scaled to the person, is the head centre.
    offset = np.asarray(HeadFrameSpec().centre_offset_cm)
    eye_mid = 0.5 * (clean[..., 36:42, :].mean(-2) + clean[..., 42:48, :].mean(-2))
    centre = eye_mid + np.einsum("fpij,p,j->fpi", R_canonical, s.scale, offset)
    assert np.abs(centre - s.t_world_head).max() < 0.3
    # and the best similarity from the base face lands on the person exactly.
    fit = umeyama(np.broadcast_to(s.base_face, clean.shape), clean)
    assert np.degrees(geodesic_distance(fit.R, s.R_world_head)).max() < 1e-6
    np.testing.assert_allclose(fit.scale, np.broadcast_to(s.scale, fit.scale.shape), atol=1e-9)


def test_published_noise_statistics(default_scene):
    pub = published_landmarks(default_scene)
    error = pub.landmarks_world - default_scene.landmarks_world()
    inlier = error[~pub.outlier_mask]                                     # (N, 3)
    robust_std = 1.4826 * np.median(np.abs(inlier - np.median(inlier, axis=0)), axis=0)
    np.testing.assert_allclose(robust_std, 0.3, rtol=0.06)
    assert pub.outlier_mask.mean() == pytest.approx(0.05, abs=0.006)
    outlier_std = error[pub.outlier_mask].std()
    assert 2.5 < outlier_std < 3.6
    for values in (pub.scores,):
        assert values.min() >= 0.0 and values.max() <= 1.0
    # outliers look worse on average but the distributions overlap
    s_in, s_out = pub.scores[~pub.outlier_mask], pub.scores[pub.outlier_mask]
    assert s_out.mean() < s_in.mean() - 0.1 and s_out.max() > np.median(s_in)
    r_in, r_out = pub.repro_errors_px[~pub.outlier_mask], pub.repro_errors_px[pub.outlier_mask]
    assert np.median(r_out) > 2 * np.median(r_in) and r_out.min() < np.median(r_in)
    missing = ~default_scene.present
    assert missing.sum() == round(0.03 * missing.size)


@pytest.mark.parametrize("config", [TINY, SceneConfig()], ids=["tiny", "default"])
def test_camera_relative_yaw_covers_every_30_degree_bin(config):
    s = simulate_scene(config)
    R_cam_head = np.einsum("cij,fpjk->cfpik", s.rig.R_cam_world, s.R_world_head)
    yaw = np.degrees(euler_from_matrix(R_cam_head)[..., 0])
    counts, _ = np.histogram(yaw, bins=np.arange(-180, 181, 30))
    assert np.all(counts > 0), counts


def test_heads_turn_fully_and_stay_near_upright(default_scene):
    heading, pitch, roll = np.moveaxis(np.degrees(level_head_angles(default_scene.R_world_head)), -1, 0)
    assert np.abs(pitch).max() < 65 and np.abs(roll).max() < 65
    assert np.abs(pitch).max() > 30 and np.abs(roll).max() > 25          # but they do move
    turned = np.abs(np.unwrap(np.radians(heading), axis=0)[-1] - np.unwrap(np.radians(heading), axis=0)[0])
    assert np.all(np.degrees(turned) >= 360)
    # smooth: no jump above 30 deg between consecutive frames
    step = geodesic_distance(default_scene.R_world_head[1:], default_scene.R_world_head[:-1])
    assert np.degrees(step).max() < 30


@pytest.mark.parametrize("num_people", [3, 8])
def test_people_stay_inside_the_dome_and_apart(default_scene, num_people):
    s = default_scene if num_people == 3 else simulate_scene(SceneConfig(seed=5, num_people=num_people))
    t = s.t_world_head                                                    # (F, P, 3)
    gap = np.linalg.norm(t[:, :, None] - t[:, None], axis=-1)
    gap[:, np.arange(num_people), np.arange(num_people)] = np.inf
    assert gap.min() >= 35.0
    dome = np.array(s.config.dome_centre_cm)
    cameras = np.linalg.norm(s.rig.centres_world - dome, axis=1).min()
    assert np.linalg.norm(t - dome, axis=-1).max() < cameras - 50
    assert np.all((t[..., 1] > -185) & (t[..., 1] < -130))               # y down: standing heads
    # walking, slowly
    speed = np.linalg.norm(np.diff(t[..., [0, 2]], axis=0), axis=-1) * s.config.fps
    assert 0 < speed.max() < 100                                          # cm/s


def test_body_joints_are_consistent_with_the_heads(default_scene):
    s = default_scene
    joints, clean = s.joints19, s.landmarks_world()
    assert joints.shape == (120, 3, 19, 4)
    np.testing.assert_allclose(joints[..., 15, :3], clean[..., 69, :])    # left eye = left pupil
    np.testing.assert_allclose(joints[..., 17, :3], clean[..., 68, :])
    np.testing.assert_allclose(joints[..., 1, :3], clean[..., 30, :])     # nose tip
    assert np.all(joints[..., 0, 1] > s.t_world_head[..., 1] + 8)         # neck below the head
    ankles = joints[..., [8, 14], 1]
    assert np.all(np.abs(ankles + 7) < 3)                                  # on the floor
    assert np.all(joints[..., [3, 9], 1] > joints[..., [0], 1] - 1)       # shoulders at/below the neck
    assert np.all((joints[..., 3] > 0) & (joints[..., 3] <= 1))


# ---------------------------------------------------------------------------- visibility

def test_heads_occlude_each_other_in_some_views(tiny_scene):
    source = scene_frames(tiny_scene)
    views = landmark_views(tiny_scene, source)                            # (F, C, P, 70)
    clean = tiny_scene.landmarks_world()
    occluded_by_other = 0
    for k in range(len(tiny_scene.frames)):
        people = source(k)
        for p in range(len(people)):
            alone = landmark_visibility(tiny_scene.rig, [people[p]], clean[k, p:p + 1])[:, 0]
            occluded_by_other += int((alone & ~views[k, :, p]).sum())
    assert occluded_by_other > 0
    # a head hides its own back: no landmark is seen by every camera
    assert views.all(axis=1).sum() == 0 and views.any()


def test_fast_visibility_matches_the_renderers_scene(tiny_scene):
    """Head-frame casting (one BVH per mesh) against the renderer's world-space scene (one
    BVH of the posed heads per frame): the first hit toward each landmark inside the image
    must not be nearer than the landmark's distance minus the tolerance."""
    source = scene_frames(tiny_scene)
    views = landmark_views(tiny_scene, source)
    clean = tiny_scene.landmarks_world()
    rig = tiny_scene.rig
    inside = project_landmarks(rig, clean.reshape(-1, 70, 3)).inside.reshape(len(rig), -1, 3, 70)
    for k in (0, 5, 9):
        scene = FrameScene(source(k), nthreads=1)
        c, p, l = np.nonzero(inside[:, k])
        offset = clean[k, p, l] - rig.centres_world[c]
        distance = np.linalg.norm(offset, axis=1)
        hits = scene.cast_segments(rig.centres_world[c], offset / distance[:, None])
        reference = np.zeros(views[k].shape, dtype=bool)
        reference[c, p, l] = hits.t_hit >= distance - TOLERANCE_CM
        assert (reference != views[k]).mean() < 1e-3


# ---------------------------------------------------------------------------------- files

def test_sequence_has_the_real_panoptic_layout(tiny_sequence):
    seq = tiny_sequence
    layout = SequenceLayout(seq.parent, seq.name)
    assert sorted(p.name for p in seq.iterdir()) == sorted([
        "calibration_synth_tiny.json", "hdFace3d", "hdPose3d_stage1_coco19",
        "ground_truth.npz", "ground_truth.json"])
    rig = read_calibration(layout.calibration)
    assert rig.names == tuple(f"00_{i:02d}" for i in range(8))
    doc = json.loads(layout.calibration.read_text())
    assert set(doc["cameras"][0]) == {"name", "type", "resolution", "panel", "node", "K",
                                      "distCoef", "R", "t"}
    assert doc["cameras"][3]["resolution"] == [1920, 1080] and doc["cameras"][3]["node"] == 3
    faces, bodies = list_frames(layout.face_dir, FACE_FILE), list_frames(layout.body_dir, BODY_FILE)
    assert faces.frames.tolist() == list(range(10)) == bodies.frames.tolist()
    assert not faces.unexpected and not bodies.unexpected
    assert (layout.face_dir / "faceRecon3D_hd00000000.json").is_file()
    assert (layout.body_dir / "body3DScene_00000000.json").is_file()

    gt = load_ground_truth(seq)
    face_doc = json.loads(layout.face_file(0).read_text())
    person = face_doc["people"][0]
    assert set(person) == {"id", "face70"}
    assert {k: len(v) for k, v in person["face70"].items()} == {
        "landmarks": 210, "averageScore": 70, "averageReproError": 70, "visibility": 70}
    body_doc = json.loads(layout.body_file(0).read_text())
    assert set(body_doc) == {"version", "univTime", "fpsType", "bodies"}
    assert [len(b["joints19"]) for b in body_doc["bodies"]] == [76] * 3

    for f, frame in enumerate(gt.frames):
        face_frame = read_face_frame(layout.face_file(frame))
        body_frame = read_body_frame(layout.body_file(frame))
        assert not face_frame.rejections and not body_frame.rejections
        assert [b.id for b in body_frame.bodies] == gt.person_ids.tolist()
        assert [p.id for p in face_frame.people] == gt.person_ids[gt.present[f]].tolist()
        for face in face_frame.people:
            p = int(np.flatnonzero(gt.person_ids == face.id)[0])
            counts = np.array([len(v) for v in face.visibility])
            np.testing.assert_array_equal(counts, gt.num_views[f, p])
            seen = np.isfinite(face.landmarks).all(axis=1)
            np.testing.assert_array_equal(seen, gt.reconstructed[f, p])
            error = np.linalg.norm(face.landmarks - gt.landmarks_world()[f, p], axis=1)[seen]
            inlier = ~gt.outlier_mask[f, p][seen]
            assert np.all(error[inlier] < 2.0)                            # 0.3 cm noise, 6 sigma


def test_ground_truth_files_describe_every_key(tiny_sequence):
    gt = load_ground_truth(tiny_sequence)
    doc = gt.description
    assert set(doc["keys"]) == set(GROUND_TRUTH_KEYS)
    assert doc["frames"] == {"first": 0, "count": 10, "fps": 29.97}
    assert doc["units"]["world"] == "cm" and doc["config"]["seed"] == TINY.seed
    assert gt.R_world_head.shape == (10, 3, 3, 3) and gt.t_world_head.shape == (10, 3, 3)
    assert gt.shapes_head.shape == (3, 70, 3) and gt.base_face.shape == (70, 3)
    assert gt.outlier_mask.shape == gt.reconstructed.shape == gt.num_views.shape == (10, 3, 70)
    scene = simulate_scene(TINY)
    np.testing.assert_array_equal(gt.R_world_head, scene.R_world_head)
    np.testing.assert_array_equal(gt.frames, np.arange(10))


def test_same_seed_gives_byte_identical_json(tiny_sequence, tmp_path):
    again = generate_sequence(tmp_path, "synth_tiny", TINY, render_video=False)
    first = sorted(p.relative_to(tiny_sequence) for p in tiny_sequence.rglob("*.json"))
    second = sorted(p.relative_to(again) for p in again.rglob("*.json"))
    assert first == second and len(first) == 2 * 10 + 2
    for rel in first:
        assert (tiny_sequence / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_regenerating_replaces_the_sequence_and_leaves_no_partials(tmp_path):
    config = replace(TINY, num_frames=3, start_frame=500, num_cameras=4)
    seq = generate_sequence(tmp_path, "s", config, render_video=False)
    (seq / "stale.txt").write_text("from an older run")
    seq = generate_sequence(tmp_path, "s", replace(config, seed=1), render_video=False)
    assert not (seq / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s"]
    assert load_ground_truth(seq).frames.tolist() == [500, 501, 502]
    assert (seq / "hdFace3d" / "faceRecon3D_hd00000502.json").is_file()


def test_video_is_written_per_camera(tmp_path):
    import av

    config = SceneConfig(seed=2, num_frames=3, num_cameras=2, image_size=(320, 180))
    seq = generate_sequence(tmp_path, "v", config, render_video=True, n_jobs=1)
    videos = sorted(p.name for p in (seq / "hdVideos").iterdir())
    assert videos == ["hd_00_00.mp4", "hd_00_01.mp4"]
    with av.open(str(seq / "hdVideos" / "hd_00_00.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (180, 320, 3)
    # the heads are there: the background is uniform along each row, heads are not
    image = frames[0].astype(int)
    row_median = np.median(image, axis=1, keepdims=True)
    differs = np.abs(image - row_median).max(axis=-1) > 15
    assert differs.mean() > 0.005
