"""Facial expressions of the synthetic generator: landmark motion, timing, scene, ground truth, render."""
from __future__ import annotations

import json
import pickle
from dataclasses import replace

import numpy as np
import pytest

from annotate.head import head_mesh as hm
from annotate.synth import expressions as ex
from annotate.synth import render as rd
from annotate.head.face_model import base_face_landmarks, person_shape
from annotate.synth.face_deform import FaceDeformer
from annotate.synth.generate import (GROUND_TRUTH_NPZ, generate_sequence, landmark_views, load_ground_truth,
                                     scene_frames, truth_frames)
from annotate.synth.scene import SceneConfig, published_landmarks, simulate_scene
from tests import scenes

TINY = SceneConfig(seed=7, num_frames=6, num_people=2, num_cameras=4)
FPS = 29.97
RIGID = [0, 1, 15, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45, 68, 69]
UPPER_LIP = [49, 50, 51, 52, 53, 61, 62, 63]


@pytest.fixture(scope="module")
def shapes() -> np.ndarray:
    """(4, 70, 3): the base face and three people's faces."""
    base = base_face_landmarks()
    rng = np.random.default_rng(11)
    return np.stack([base] + [person_shape(rng, base) for _ in range(3)])


def single(i: int, value: float = 1.0) -> np.ndarray:
    params = np.zeros(4)
    params[i] = value
    return params


# ------------------------------------------------------------------------------- offsets

def test_offsets_are_zero_at_rest_and_broadcast(shapes):
    assert np.all(ex.expression_offsets(shapes, np.zeros(4)) == 0.0)
    params = np.random.default_rng(0).random((5, 4, 4))                   # (F, P, 4)
    offsets = ex.expression_offsets(shapes, params)
    assert offsets.shape == (5, 4, 70, 3)
    np.testing.assert_allclose(offsets[3, 2], ex.expression_offsets(shapes[2], params[3, 2]), atol=1e-12)
    # rigid points never move, whatever the expression
    assert np.all(offsets[..., RIGID, :] == 0.0)


def test_jaw_rotates_the_mandible_about_a_hinge_near_the_ears(shapes):
    for shape in shapes:
        moved = shape + ex.expression_offsets(shape, single(ex.JAW))
        drop = shape[8, 1] - moved[8, 1]
        assert 1.2 <= drop <= 1.8, drop
        # rigid rotation about the hinge axis (parallel to x) derived from the face
        size = np.linalg.norm(shape[45] - shape[36]) / ex.BIOCULAR_CM
        eyes = shape[[36, 39, 42, 45]].mean(axis=0)
        hinge = np.array([eyes[1] - 2.5 * size, eyes[2] - 8.5 * size])
        before, after = shape[8, 1:] - hinge, moved[8, 1:] - hinge
        assert np.linalg.norm(after) == pytest.approx(np.linalg.norm(before), abs=1e-9)
        turn = np.degrees(np.arctan2(before[0] * after[1] - before[1] * after[0], before @ after))
        assert turn == pytest.approx(ex.JAW_MAX_DEG, abs=1e-6)             # chin down and back
        assert moved[8, 2] < shape[8, 2] and moved[8, 0] == shape[8, 0]
        # the lower lip goes with the chin, the corners half way, the upper lip stays
        assert shape[57, 1] - moved[57, 1] > 1.0 and shape[66, 1] - moved[66, 1] > 1.0
        corner, lip = np.linalg.norm(moved[[48, 57]] - shape[[48, 57]], axis=1)
        assert 0.3 * lip < corner < 0.7 * lip
        np.testing.assert_array_equal(moved[UPPER_LIP + RIGID], shape[UPPER_LIP + RIGID])
        # the jaw line tapers to the skull: 3 and 13 move less than 5 and 11
        motion = np.linalg.norm(moved - shape, axis=1)
        assert 0 < motion[3] < motion[5] and 0 < motion[13] < motion[11]


def test_blink_closes_the_eyes_and_keeps_the_pupils(shapes):
    for shape in shapes:
        moved = shape + ex.expression_offsets(shape, single(ex.BLINK))
        gap = np.linalg.norm(moved[[37, 38, 43, 44]] - moved[[41, 40, 47, 46]], axis=1)
        assert gap.max() < 0.1
        np.testing.assert_array_equal(moved[[68, 69, 36, 39, 42, 45, 40, 41, 46, 47]],
                                      shape[[68, 69, 36, 39, 42, 45, 40, 41, 46, 47]])


def test_smile_pulls_the_corners_out_and_up_and_brows_rise(shapes):
    for shape in shapes:
        moved = shape + ex.expression_offsets(shape, single(ex.SMILE))
        for corner in (48, 54, 60, 64):
            assert abs(moved[corner, 0]) - abs(shape[corner, 0]) > 0.4        # outward
            assert moved[corner, 1] - shape[corner, 1] > 0.3                  # up
            assert 0.5 < np.linalg.norm((moved - shape)[corner, :2]) < 0.9
        half = np.linalg.norm((moved - shape)[[49, 53, 59, 55]], axis=1)
        np.testing.assert_allclose(half, 0.5 * np.linalg.norm((moved - shape)[48]), rtol=0.05)
        brows = ex.expression_offsets(shape, single(ex.BROW))[17:27]
        assert np.all((brows[:, 1] > 0.8) & (brows[:, 1] < 1.0))
        assert np.all(brows[:, 2] > 0.0)                                     # slightly forward


# -------------------------------------------------------------------------------- timing

def runs(mask: np.ndarray, whole: bool = False) -> list[tuple[int, int]]:
    """(start, length) of the runs of True in a 1-D bool array; ``whole``: only those that
    neither start with the array nor end with it (not cut off)."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = (starts > 0) & (ends < len(mask)) if whole else np.ones(len(starts), bool)
    return list(zip(starts[keep], (ends - starts)[keep]))


@pytest.mark.parametrize("fps", [FPS, 60.0])
def test_simulated_timing_is_per_person_and_in_seconds(fps):
    seconds = 120.0
    e = ex.simulate_expressions(np.random.default_rng(3), int(seconds * fps), 3, fps)
    assert e.shape == (int(seconds * fps), 3, 4) and e.min() >= 0.0 and e.max() <= 1.0
    again = ex.simulate_expressions(np.random.default_rng(3), int(seconds * fps), 3, fps)
    np.testing.assert_array_equal(e, again)
    jaw = e[..., ex.JAW]
    assert np.corrcoef(jaw[:, 0], jaw[:, 1])[0, 1] < 0.5                  # own timing each
    for p in range(3):
        # talking: silent gaps of at least half a second and bursts at 3-5 syllables/s
        silent = [n / fps for _, n in runs(jaw[:, p] == 0.0) if n / fps >= 0.5]
        assert len(silent) >= 5 and jaw[:, p].max() > 0.9
        talk = jaw[:, p] > 0
        peaks = np.flatnonzero((jaw[1:-1, p] > jaw[:-2, p]) & (jaw[1:-1, p] >= jaw[2:, p]) & talk[1:-1])
        rate = len(peaks) / (talk.sum() / fps)
        assert 2.5 < rate < 5.5, rate
        # blinks: short, every 2-6 s
        blinks = runs(e[:, p, ex.BLINK] > 0)
        assert all(n / fps <= 0.3 + 1.0 / fps for _, n in blinks)
        assert seconds / 6.5 < len(blinks) < seconds / 1.8
        assert e[:, p, ex.BLINK].max() == 1.0
        # brow raises 0.5-2 s, occasional; smiles slow (seconds)
        brows = runs(e[:, p, ex.BROW] > 0, whole=True)
        assert brows and all(0.4 <= n / fps <= 2.0 + 1.0 / fps for _, n in brows)
        assert all(n / fps >= 1.4 for _, n in runs(e[:, p, ex.SMILE] > 0, whole=True))
    assert np.all(ex.simulate_expressions(np.random.default_rng(3), 50, 2, fps, scale=0.0) == 0.0)


# --------------------------------------------------------------------------------- scene

@pytest.fixture(scope="module")
def on_off():
    return simulate_scene(TINY), simulate_scene(replace(TINY, expressions=False))


@pytest.fixture(scope="module")
def source(on_off):
    """The render source of the expressive scene, as the render workers get it (pickled)."""
    return pickle.loads(pickle.dumps(scene_frames(on_off[0])))


def test_expressions_off_reproduce_the_neutral_landmarks_and_the_skull_is_unchanged(on_off):
    on, off = on_off
    assert np.all(off.expressions == 0.0) and off.expressions.shape == (6, 2, 4)
    posed = np.einsum("fpij,pnj->fpni", off.R_world_head, off.shapes_head) + off.t_world_head[:, :, None]
    np.testing.assert_array_equal(off.landmarks_world(), posed)
    # the skull's ground truth and every other stream are the same with expressions on
    for name in ("R_world_head", "t_world_head", "shapes_head", "scale", "present", "head_heights_cm"):
        np.testing.assert_array_equal(getattr(on, name), getattr(off, name))
    np.testing.assert_allclose(on.joints19, off.joints19, atol=1e-9)
    np.testing.assert_array_equal(on.rig.R_cam_world, off.rig.R_cam_world)
    assert on.expressions.any() and on.expressions.shape == (6, 2, 4)
    moved = np.linalg.norm(on.landmarks_world() - off.landmarks_world(), axis=-1)
    assert moved[..., RIGID].max() < 1e-9 and moved.max() > 0.1
    # published: the same noise on top of the expressive landmarks
    noise_on = published_landmarks(on).landmarks_world - on.landmarks_world()
    noise_off = published_landmarks(off).landmarks_world - off.landmarks_world()
    np.testing.assert_allclose(noise_on, noise_off, atol=1e-9)


def test_rendered_meshes_pass_through_the_expressive_landmarks(on_off, source):
    on, _ = on_off
    clean = on.landmarks_world()
    for k in (0, 3, 5):
        for person in source(k):
            p = int(np.flatnonzero(on.person_ids == person.person_id)[0])
            marks = person.to_world(person.mesh.vertices[person.mesh.landmark_vertex])
            np.testing.assert_allclose(marks[:68], clean[k, p, :68], atol=1e-9)
            assert person.mesh.vertex_normals.shape == person.mesh.vertices.shape


# -------------------------------------------------------------------------- ground truth

def test_ground_truth_stores_the_expressions(tmp_path, on_off, source):
    on, _ = on_off
    seq = generate_sequence(tmp_path, "e", TINY, render_video=False)
    gt = load_ground_truth(seq)
    assert gt.description["version"] == "1.2.0"
    doc = gt.description["expressions"]
    assert doc["names"] == ["jaw", "smile", "brow", "blink"] and doc["range"] == [0.0, 1.0]
    assert "expressions" in gt.description["keys"]
    np.testing.assert_array_equal(gt.expressions, on.expressions)
    np.testing.assert_array_equal(gt.landmarks_world(), on.landmarks_world())
    np.testing.assert_array_equal(gt.R_world_head, on.R_world_head)
    # a reader rebuilds the generator's render source, expressive meshes included
    rebuilt = truth_frames(gt)
    np.testing.assert_array_equal(rebuilt.mesh(4, 1).vertices, source.mesh(4, 1).vertices)
    np.testing.assert_array_equal(landmark_views(on, rebuilt).sum(axis=1), gt.num_views)
    # a file from before 1.2.0 has no expressions: neutral faces
    with np.load(seq / GROUND_TRUTH_NPZ) as data:
        old = {k: data[k] for k in data if k != "expressions"}
    np.savez(seq / GROUND_TRUTH_NPZ, **old)
    (seq / "ground_truth.json").write_text(json.dumps({**gt.description, "version": "1.1.0"}))
    older = load_ground_truth(seq)
    assert older.expressions.shape == (6, 2, 4) and not older.expressions.any()


# -------------------------------------------------------------------------------- render

@pytest.fixture(scope="module")
def face_deformer():
    face = base_face_landmarks()
    return face, FaceDeformer.build(hm.build_head_mesh(face), face, 1.0)


def render(deformer, params):
    """One frontal 200 x 200 view of the head 60 cm away; returns (view, rig, person)."""
    head = np.array([0.0, 0.0, 60.0])
    rig = scenes.make_rig([[0.0, 0.0, 0.0]], [head], size=(200, 200), f=700.0, dist=(0, 0, 0, 0, 0))
    mesh = deformer.mesh(np.asarray(params, float))
    person = rd.RenderPerson(1, mesh, scenes.facing(head, [0.0, 0.0, 0.0]), head, 1.0, rd.make_palette())
    return rd.render_view(rig, 0, [person], nthreads=1), rig, person


def test_open_jaw_and_closed_eyes_show_in_the_image(face_deformer):
    face, deformer = face_deformer
    closed, rig, person = render(deformer, [0, 0, 0, 0])
    opened, _, _ = render(deformer, single(ex.JAW))
    uv = rig.project_world(person.to_world(face))[0]                          # (70, 2)
    changed = np.abs(opened.image.astype(int) - closed.image.astype(int)).max(axis=-1) > 20
    rows, cols = np.nonzero(changed)
    assert changed.sum() > 100
    assert np.mean(rows >= uv[[50, 51, 52], 1].min() - 2) > 0.95              # mouth and chin only
    assert np.all(((closed.person_id >= 0) | (opened.person_id >= 0))[changed])    # on the head
    # between the upper lip and the dropped lower lip: the mouth's dark inside
    moved = rig.project_world(person.to_world(face + ex.expression_offsets(face, single(ex.JAW))))[0]
    col, row = np.round(0.5 * (moved[62] + moved[66])).astype(int)
    assert closed.image[row, col].max() > 100 and opened.image[row, col].max() < 80
    # eyes: whites and irises in view when open, under the lids when closed
    blink, _, _ = render(deformer, single(ex.BLINK))

    def eye_pixels(view):
        seen = (view.person_id >= 0) & (np.arange(200)[:, None] < uv[30, 1])   # above the nose tip
        return np.isin(deformer.regions[view.triangle_id[seen]], [hm.EYE_WHITE, hm.IRIS]).sum()

    assert eye_pixels(closed) > 50 and eye_pixels(blink) < 0.2 * eye_pixels(closed)
