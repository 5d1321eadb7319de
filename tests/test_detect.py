"""2D landmark backends (synthetic, FAN, dlib), head priors and association."""
import numpy as np
import pytest

from annotate.detect.association import associate_view
from annotate.detect.base import FaceDetections, ViewInput
from annotate.detect.heads import head_boxes_px, priors_from_bodies, priors_from_landmarks, project_priors
from annotate.detect.synthetic import SyntheticDetector, SyntheticDetectorConfig
from annotate.panoptic.calibration import read_calibration_info
from annotate.synth.generate import generate_sequence, load_ground_truth
from annotate.synth.scene import SceneConfig

NO_BOXES = np.zeros((0, 4))


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    root = tmp_path_factory.mktemp("detect")
    seq = generate_sequence(root, "synth_000", SceneConfig(num_frames=3, num_cameras=10), render_video=False)
    rig = read_calibration_info(seq / "calibration_synth_000.json", "hd").rig
    return seq, rig, load_ground_truth(seq)


def test_synthetic_without_noise_is_the_projected_truth_where_visible(sequence):
    seq, rig, truth = sequence
    det = SyntheticDetector(seq, rig, SyntheticDetectorConfig(sigma_px=0, miss_fraction=0, outlier_fraction=0,
                                                              min_visible_landmarks=1))
    clean = rig.project_world(truth.landmarks_world())                         # (C, F, P, 70, 2)
    seen = 0
    for k, frame in enumerate(truth.frames):
        for c in range(len(rig)):
            faces = det.detect(ViewInput(int(frame), c, None, NO_BOXES))
            for pts in faces.points_px:
                ok = np.isfinite(pts[:, 0])
                # each face is one person's projection (order is shuffled)
                dist = np.nanmax(np.abs(clean[c, k][:, ok] - pts[ok]), axis=(1, 2))
                assert dist.min() < 1e-9
            seen += np.isfinite(faces.points_px[..., 0]).sum()
    assert seen == truth.num_views.sum()          # the generator's own visibility rule


def test_synthetic_noise_misses_and_outliers(sequence):
    seq, rig, truth = sequence
    views = [(int(f), c) for f in truth.frames for c in range(len(rig))]
    det = SyntheticDetector(seq, rig, SyntheticDetectorConfig(sigma_px=2.0, miss_fraction=0.3, seed=7))
    first = {v: det.detect(ViewInput(*v, None, NO_BOXES)) for v in views}
    again = {v: det.detect(ViewInput(*v, None, NO_BOXES)) for v in reversed(views)}
    for v in views:          # per-view streams: the order of the calls does not matter
        assert np.array_equal(first[v].points_px, again[v].points_px, equal_nan=True)
    full = det.with_config(SyntheticDetectorConfig(miss_fraction=0.0))
    n_full = sum(len(full.detect(ViewInput(*v, None, NO_BOXES))) for v in views)
    assert 0.55 < sum(len(f) for f in first.values()) / n_full < 0.85
    # Every point an outlier: all inside their face's box, none where the face is.
    clean = det.with_config(SyntheticDetectorConfig(sigma_px=0.0, miss_fraction=0.0, outlier_fraction=0.0))
    wild = det.with_config(SyntheticDetectorConfig(sigma_px=0.0, miss_fraction=0.0, outlier_fraction=1.0))
    for v in views:
        a, b = clean.detect(ViewInput(*v, None, NO_BOXES)), wild.detect(ViewInput(*v, None, NO_BOXES))
        ok = np.isfinite(b.points_px[..., 0])
        inside = (b.points_px >= b.boxes_px[:, None, :2]) & (b.points_px <= b.boxes_px[:, None, 2:])
        assert inside.all(-1)[ok].all()
        assert np.array_equal(np.isfinite(a.points_px), np.isfinite(b.points_px))
        assert (np.linalg.norm(a.points_px - b.points_px, axis=-1)[ok] > 0).all()


def test_association_recovers_the_people_from_bodies_and_from_landmarks(sequence):
    seq, rig, truth = sequence
    det = SyntheticDetector(seq, rig)
    clean = truth.landmarks_world()
    from annotate.synth.scene import FACE_JOINT_LANDMARK
    for k, frame in enumerate(truth.frames):
        joints = np.full((len(truth.person_ids), 19, 3), np.nan)
        for joint, landmark in FACE_JOINT_LANDMARK.items():
            joints[:, joint] = clean[k, :, landmark]
        for priors in (priors_from_bodies(truth.person_ids, joints, np.ones((len(joints), 19))),
                       # a previous frame's faces: this frame's, moved 3 cm (this 3-frame
                       # scene turns heads far more between frames than 30 fps footage does)
                       priors_from_landmarks(truth.person_ids, clean[k] + np.array([3.0, 0.0, 0.0]))):
            anchors, centres, radius = project_priors(rig, priors)
            boxes = head_boxes_px(rig, priors)
            for c in range(len(rig)):
                faces = det.detect(ViewInput(int(frame), c, None, boxes[c]))
                owner = associate_view(faces, anchors[c], centres[c], radius[c], 0.6)
                for d in np.flatnonzero(owner >= 0):
                    err = np.nanmedian(np.linalg.norm(faces.points_px[d] - rig.project_world(clean[k])[c], axis=-1), axis=1)
                    assert np.argmin(err) == owner[d]
                assert len(faces) < 2 or (owner >= 0).mean() >= 0.8


def test_face70_pads_68_point_faces():
    faces = FaceDetections(np.ones((2, 68, 2)), np.ones((2, 68)), np.zeros((2, 4))).to_face70()
    assert faces.points_px.shape == (2, 70, 2) and np.isnan(faces.points_px[:, 68:]).all()
    assert (faces.confidence[:, 68:] == 0).all()
    with pytest.raises(ValueError):
        FaceDetections(np.ones((2, 5, 2)), np.ones((2, 5)), np.zeros((2, 4)))
