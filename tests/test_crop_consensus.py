"""The crop consensus (annotate.geometry.crop_consensus): which of each view's alternative
landmark sets a face is triangulated from."""
from __future__ import annotations

import numpy as np
import pytest

from annotate.geometry.crop_consensus import ConsensusConfig, choose_alternatives
from annotate.head.face_model import base_face_landmarks
from scenes import facing, make_rig

HEAD = np.array([0.0, 160.0, 0.0])


def scene():
    """Three cameras 3 m away around a face turned toward the first; the face's landmarks
    (70, 3) in the world."""
    rig = make_rig([[0, 200, 300], [250, 220, 150], [-260, 180, 160]], [HEAD] * 3)
    face = base_face_landmarks() @ facing(HEAD, [0, 200, 300]).T + HEAD
    return rig, face


def alternatives_of(rig, face, rng, right: int, wrong_shift_px: float, wrong: int, wrong_views=(0,)):
    """Per view: ``wrong`` alternatives first, then ``right`` ones on the true projections
    (0.5 px noise). In ``wrong_views`` the wrong ones sit one feature too high (one wrong
    answer, as crops that take in the hair give), elsewhere they are right too."""
    true = rig.project_world(face)                                                  # (C, 70, 2)
    out = []
    for c in range(len(rig)):
        shift = [0.0, -wrong_shift_px] if c in wrong_views else [0.0, 0.0]
        bad = true[c][None] + shift + rng.normal(scale=0.5, size=(wrong, 70, 2))
        good = true[c][None] + rng.normal(scale=0.5, size=(right, 70, 2))
        out.append(np.concatenate([bad, good]))
    return out


def test_a_view_takes_the_crops_the_other_view_agrees_with_even_when_most_of_its_own_are_wrong():
    """View 0 answers one feature too high from 10 of its 16 crops (as a face seen from
    above does from crops that take in the hair); view 1 sees the face well, view 2 gives no
    alternatives. View 0's wrong answer does not triangulate with view 1's, so it takes one
    of its 6 right crops; view 2 keeps its points."""
    rng = np.random.default_rng(0)
    rig, face = scene()
    alternatives = alternatives_of(rig, face, rng, right=6, wrong_shift_px=25, wrong=10)
    alternatives[2] = None
    result = choose_alternatives(rig, alternatives, np.ones(3))
    assert result.pair == (0, 1) and result.choice[0] >= 10 and result.choice[1] >= 0, result
    assert result.choice[2] == -1


def test_the_best_supported_pair_decides_and_the_other_views_keep_their_points():
    rng = np.random.default_rng(4)
    rig, face = scene()
    alternatives = alternatives_of(rig, face, rng, right=6, wrong_shift_px=25, wrong=10)
    result = choose_alternatives(rig, alternatives, np.ones(3))
    # Views 1 and 2 agree on all 16 x 16 combinations, view 0 on 6 of its crops only.
    assert result.pair == (1, 2) and result.choice[0] == -1 and (result.choice[1:] >= 0).all(), result
    assert result.support >= 0.05 * result.combinations


def test_a_single_wrong_pair_that_agrees_does_not_win():
    """Two wrong answers can agree (a smaller face farther along the epipolar lines): one
    such combination among many right ones is outvoted, although it agrees as well."""
    rng = np.random.default_rng(1)
    rig, face = scene()
    alternatives = alternatives_of(rig, face, rng, right=8, wrong_shift_px=0, wrong=0)
    small = HEAD + (face - HEAD) * 0.6 + [0, 0, 8]                                  # another 3D face
    impostor = rig.project_world(small)
    for c in range(3):
        alternatives[c] = np.concatenate([impostor[c][None], alternatives[c]])
    result = choose_alternatives(rig, alternatives, np.ones(3))
    decided = result.choice[list(result.pair)]
    assert (decided >= 1).all(), result                      # index 0, the impostor, is not taken


def test_alternatives_that_scatter_change_nothing():
    """Crops whose answers all differ (a profile given a frontal mesh): no combination has
    the support asked for, and every view keeps its own points."""
    rng = np.random.default_rng(2)
    rig, face = scene()
    true = rig.project_world(face)
    alternatives = [true[c][None] + rng.uniform(-30, 30, size=(12, 1, 2)) + rng.normal(scale=3, size=(12, 70, 2))
                    for c in range(3)]
    result = choose_alternatives(rig, alternatives, np.ones(3), ConsensusConfig(min_support=0.2))
    assert result.pair is None and (result.choice == -1).all()


def test_one_view_with_alternatives_changes_nothing_and_bad_settings_are_refused():
    rng = np.random.default_rng(3)
    rig, face = scene()
    alternatives = alternatives_of(rig, face, rng, right=5, wrong_shift_px=25, wrong=3)
    assert (choose_alternatives(rig, [alternatives[0], None, None], np.ones(3)).choice == -1).all()
    with pytest.raises(ValueError, match="cluster_cm"):
        ConsensusConfig(cluster_cm=0)


def test_a_frames_views_take_the_chosen_crops():
    """with_crop_consensus on one frame's views: the person's points in the winning pair of
    views become the chosen crops' (a crop without pupils leaves them unseen, confidence 0);
    a face under min_face_px in a view keeps its points."""
    from annotate.labels.frame_views import FrameViews, with_crop_consensus

    rng = np.random.default_rng(5)
    rig, face = scene()
    alternatives = alternatives_of(rig, face, rng, right=6, wrong_shift_px=25, wrong=10)
    for alt in alternatives:
        alt[:, 68:] = np.nan                                                # no pupils from these crops
    default = np.stack([alt[0] for alt in alternatives])[:, None]            # (C, 1, 70, 2): view 0 wrong
    views = FrameViews(default.copy(), np.ones((3, 1, 70)), 3, [], [], 3,
                       {(0, 0): alternatives[0], (1, 0): alternatives[1]})
    chosen, changed = with_crop_consensus(rig, views, None)
    assert changed == 1
    assert np.nanmedian(np.linalg.norm(chosen.points_px[0, 0] - rig.project_world(face)[0], axis=-1)) < 2
    np.testing.assert_array_equal(chosen.points_px[2], default[2])           # no alternatives: unchanged
    assert (chosen.confidence[:2, 0, 68:] == 0).all() and (chosen.confidence[:, 0, :68] == 1).all()
    small, changed = with_crop_consensus(rig, views, None, ConsensusConfig(min_face_px=10_000))
    assert changed == 0 and np.array_equal(small.points_px, default, equal_nan=True)


def test_only_the_views_with_the_largest_faces_take_part():
    """max_views bounds the pairs compared: the views with the largest faces take part. Here
    the smallest face's crops are all right, so without the bound its pairs win; with
    max_views 2 it keeps its own points."""
    from annotate.geometry.face_views import face_size_px
    from annotate.labels.frame_views import FrameViews, with_crop_consensus

    rng = np.random.default_rng(11)
    rig, face = scene()
    size = face_size_px(rig.project_world(face)[:, None])[:, 0]                      # (C,)
    smallest = int(np.argmin(size))
    others = [c for c in range(3) if c != smallest]
    true = rig.project_world(face)
    alternatives = [true[c][None] + rng.normal(scale=0.5, size=(6 if c == smallest else 4, 70, 2)) for c in range(3)]
    for c in others:                     # and 10 wrong crops each, scattered (no agreeing wrong pair)
        scattered = true[c][None] + rng.uniform(-30, 30, size=(10, 1, 2)) + rng.normal(scale=0.5, size=(10, 70, 2))
        alternatives[c] = np.concatenate([scattered, alternatives[c]])
    default = np.stack([alt[0] for alt in alternatives])[:, None] + 3.0             # (C, 1, 70, 2)
    views = FrameViews(default.copy(), np.ones((3, 1, 70)), 3, [], [], 3,
                       {(c, 0): alternatives[c] for c in range(3)})
    every, _ = with_crop_consensus(rig, views, None)
    assert not np.array_equal(every.points_px[smallest], default[smallest])
    bounded, changed = with_crop_consensus(rig, views, None, ConsensusConfig(max_views=2))
    assert changed == 1
    np.testing.assert_array_equal(bounded.points_px[smallest], default[smallest])
    assert all(not np.array_equal(bounded.points_px[c], default[c]) for c in others)
    with pytest.raises(ValueError, match="max_views"):
        ConsensusConfig(max_views=1)
