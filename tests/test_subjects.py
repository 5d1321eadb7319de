"""Subjects' rest faces, expression modes and rigidity (annotate.labels.subjects)."""
import numpy as np
import pytest

from annotate.head.head_frame import whenet_axes
from annotate.geometry.procrustes import umeyama
from annotate.geometry.rotations import geodesic_distance
from annotate.labels.fit import FitConfig, fit_heads
from annotate.head.head_model import build_head_model
from annotate.labels.subjects import SubjectConfig, learn_subjects
from annotate.synth.scene import SceneConfig, published_landmarks, simulate_scene

pytestmark = pytest.mark.slow            # end to end: tens of seconds

RIGID = [0, 1, 2, 14, 15, 16] + list(range(27, 36)) + [36, 39, 42, 45]
FRAMES = 240


@pytest.fixture(scope="module")
def talking():
    state = simulate_scene(SceneConfig(seed=4, num_frames=FRAMES, num_cameras=4))
    pub = published_landmarks(state)
    X, S = pub.landmarks_world.reshape(-1, 70, 3), pub.scores.reshape(-1, 70)
    persons = np.tile(state.person_ids, FRAMES)
    model = build_head_model(X[::4], S[::4])
    subjects = learn_subjects(model, X, S, persons)
    return state, X, S, persons, model, subjects


def test_rest_faces_are_the_neutral_faces(talking):
    """The rest face is found although people talk or smile in most frames; its WHENet
    frame is the neutral face's to a fraction of a degree."""
    state, _, _, _, _, subjects = talking
    for p, truth in enumerate(state.shapes_head):
        learnt = subjects.shapes_head[p]
        T = umeyama(truth[RIGID], learnt[RIGID])
        assert np.degrees(geodesic_distance(T.R, np.eye(3))) < 1.0       # 0.3 at 600 frames
        chin_and_lips = np.linalg.norm(T.apply(truth) - learnt, axis=1)[[8, 57, 48, 54]]
        assert chin_and_lips.max() < 0.35                                   # cm
        np.testing.assert_allclose(whenet_axes(learnt), np.eye(3), atol=1e-9)   # own canonical frame
    assert subjects.own_shape.all() and (subjects.mode_variance > 0).any(axis=1).all()


def test_fit_with_subjects_does_not_follow_the_jaw(talking):
    state, X, S, persons, model, subjects = talking
    R_true = state.R_world_head.reshape(-1, 3, 3)
    jaw_open = state.expressions.reshape(-1, 4)[:, 0] > 0.3
    plain = fit_heads(model, X, S, FitConfig())
    learnt = fit_heads(model, X, S, FitConfig(), **subjects.for_faces(persons))
    e_plain = np.degrees(geodesic_distance(plain.R_world_head, R_true))
    e_learnt = np.degrees(geodesic_distance(learnt.R_world_head, R_true))
    assert np.median(e_learnt[jaw_open]) < 0.7 * np.median(e_plain[jaw_open])
    assert np.percentile(e_learnt, 99) < 0.8 * np.percentile(e_plain, 99)
    # The coefficients carry the expression: the first mode follows the jaw or the smile.
    c = learnt.deformation[:, 0]
    expr = state.expressions.reshape(-1, 4)
    assert max(abs(np.corrcoef(c, expr[:, k])[0, 1]) for k in (0, 1)) > 0.6


def test_subjects_with_few_faces_are_fitted_as_before(talking):
    _, X, S, persons, model, _ = talking
    few = np.flatnonzero(persons == 0)[:10]
    rest = np.flatnonzero(persons != 0)
    rows = np.r_[few, rest]
    subjects = learn_subjects(model, X[rows], S[rows], persons[rows])
    pos = list(subjects.persons).index(0)
    assert not subjects.own_shape[pos] and (subjects.mode_variance[pos] == 0).all()
    np.testing.assert_array_equal(subjects.weights[pos], 1.0)
    given = subjects.for_faces(np.array([0, 99]))                 # 99: never seen
    np.testing.assert_allclose(given["shapes_head"][1], model.landmarks_head)
    plain = fit_heads(model, X[few], S[few], FitConfig())
    same = fit_heads(model, X[few], S[few], FitConfig(), **subjects.for_faces(persons[few]))
    np.testing.assert_allclose(same.R_world_head, plain.R_world_head, atol=1e-12)


def test_subjects_json_names_what_was_learnt(talking):
    subjects = talking[5]
    doc = subjects.to_json()
    assert len(doc["subjects"]) == 3
    first = doc["subjects"][0]
    assert first["own_shape"] and first["modes_used"] >= 1 and len(first["weights"]) == 70
    assert np.asarray(first["landmarks_head"]).shape == (70, 3)


def test_noise_level_of_few_faces_ignores_the_zero_eigenvalues():
    """60 faces of pure noise span 60 of the 210 directions: the other 150 eigenvalues are 0
    by construction. The noise level is the median of the 60, about sigma^2 x 210 / 60."""
    from annotate.labels.subjects import noise_eigenvalue

    rng = np.random.default_rng(0)
    for faces in (60, 600):
        D = rng.normal(0.0, 0.1, (faces, 210))
        values = np.linalg.eigvalsh(D.T @ D / faces)
        noise = noise_eigenvalue(values, faces)
        if faces < 210:
            assert np.median(values) < 1e-12 and noise == pytest.approx(0.01 * 210 / faces, rel=0.3)
        else:
            assert noise == np.median(values) and noise == pytest.approx(0.01, rel=0.3)


def test_expression_modes_of_a_short_sequence_are_the_real_ones():
    """60 faces moved along two expression directions, with 0.5 mm of noise: the two
    directions are kept and the noise's are not (a zero noise level kept every mode)."""
    from annotate.labels.subjects import expression_modes

    rng = np.random.default_rng(1)
    u, v = np.linalg.qr(rng.normal(size=(210, 2)))[0].T
    coefficients = rng.uniform(-1.0, 1.0, (60, 2))
    faces = (coefficients @ np.stack([u, v]) + rng.normal(0.0, 0.05, (60, 210))).reshape(60, 70, 3)
    modes, variance, noise = expression_modes(faces, 6, SubjectConfig().mode_snr)
    assert len(modes) == 2 and noise > 0
    basis = modes.reshape(2, 210)
    assert np.linalg.svd(basis @ np.stack([u, v]).T, compute_uv=False).min() > 0.95   # same plane


def test_rest_faces_of_short_sequences():
    """60 frames give a subject 60 faces and 12 calm ones: the rest face's WHENet frame is
    still within a couple of degrees of the neutral face's (mean over 3 scenes x 3 people;
    a mean-shift kernel sized from a zero noise level gave 2.3 degrees, one person 4.2)."""
    errors = []
    for seed in (4, 5, 6):
        state = simulate_scene(SceneConfig(seed=seed, num_frames=60, num_cameras=4))
        pub = published_landmarks(state)
        X, S = pub.landmarks_world.reshape(-1, 70, 3), pub.scores.reshape(-1, 70)
        subjects = learn_subjects(build_head_model(X[::4], S[::4]), X, S, np.tile(state.person_ids, 60))
        for p, truth in enumerate(state.shapes_head):
            T = umeyama(truth[RIGID], subjects.shapes_head[p][RIGID])
            errors.append(np.degrees(geodesic_distance(T.R, np.eye(3))))
    assert np.mean(errors) < 1.8 and np.max(errors) < 3.5, np.round(errors, 2)
