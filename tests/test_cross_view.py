"""Association without priors (annotate.detect.cross_view), epipolar distances
(annotate.geometry.epipolar) and person ids over frames (annotate.detect.tracking)."""
import numpy as np
import pytest

from annotate.detect.base import FaceDetections
from annotate.detect.cross_view import associate_frame
from annotate.detect.tracking import Tracker, TrackingConfig
from annotate.geometry.cameras import CameraRig
from annotate.geometry.epipolar import essential_matrices, symmetric_epipolar_distance


def ring_rig(n: int = 6, radius_cm: float = 300.0) -> CameraRig:
    """n cameras on a circle at head height, looking at the centre (world y down, cm)."""
    R, t = [], []
    for k in range(n):
        a = 2 * np.pi * k / n
        centre = np.array([radius_cm * np.sin(a), -160.0, radius_cm * np.cos(a)])
        z = -centre / np.linalg.norm(centre)
        x = np.cross([0.0, 1.0, 0.0], z)
        x /= np.linalg.norm(x)
        rot = np.stack([x, np.cross(z, x), z])
        R.append(rot)
        t.append(-rot @ centre)
    K = np.array([[1400.0, 0, 960], [0, 1400.0, 540], [0, 0, 1]])
    return CameraRig(tuple(f"00_{k:02d}" for k in range(n)), np.tile(K, (n, 1, 1)), np.zeros((n, 5)),
                     np.stack(R), np.stack(t), np.tile([1920, 1080], (n, 1)))


def face_points(centre: np.ndarray, facing: np.ndarray, rng) -> np.ndarray:
    """(70, 3) points of a face at centre (cm) looking along facing: a 15 x 18 cm patch,
    eyes 6.4 cm apart, nose tip 2 cm in front, mouth 5 cm below the eyes."""
    f = facing / np.linalg.norm(facing)
    across = np.cross([0.0, 1.0, 0.0], f)
    across /= np.linalg.norm(across)
    down = np.cross(f, across)
    uv = rng.uniform(-1, 1, (70, 2)) * [7.5, 9.0]
    uv[36:42], uv[42:48] = [-3.2, -2.0], [3.2, -2.0]
    uv[30], uv[48], uv[54] = [0.0, 1.0], [-2.5, 4.0], [2.5, 4.0]
    depth = np.zeros(70)
    depth[30] = 2.0
    return centre + uv[:, :1] * across + uv[:, 1:] * down + depth[:, None] * f


def detections(rig: CameraRig, faces_world: list[np.ndarray], rng, noise_px: float = 1.0) -> list[FaceDetections]:
    """Every face seen from the front half (facing the camera) in each view, shuffled."""
    out = []
    for c in range(len(rig)):
        pts, boxes = [], []
        for face in faces_world:
            towards = rig.centres_world[c] - face.mean(axis=0)
            if np.dot(towards, face[30] - face.mean(axis=0)) <= 0:
                continue
            p = rig.subset([c]).project_world(face)[0] + rng.normal(0, noise_px, (70, 2))
            pts.append(p)
            boxes.append(np.r_[p.min(axis=0), p.max(axis=0)])
        order = rng.permutation(len(pts))
        out.append(FaceDetections(np.array(pts).reshape(-1, 70, 2)[order], np.full((len(pts), 70), 0.9)[order],
                                  np.array(boxes).reshape(-1, 4)[order]))
    return out


def test_epipolar_distance_is_zero_for_one_point_and_grows_off_its_line():
    rig = ring_rig(4)
    X = np.array([[10.0, -150.0, 20.0], [-30.0, -170.0, -15.0]])
    cam = rig.world_to_camera(X)
    norm = cam[..., :2] / cam[..., 2:]
    E = essential_matrices(rig)
    assert np.allclose(symmetric_epipolar_distance(E[0, 1], norm[0], norm[1]), 0, atol=1e-9)
    # Cameras at one height have horizontal epipolar lines: a point moved 10 px up lies
    # about 10 px off its line in that image, and its line about 10 px off the other point.
    moved = symmetric_epipolar_distance(E[0, 1], norm[0], norm[1] + [0, 10 / 1400], 1400, 1400)
    assert np.allclose(moved, 10.0, rtol=0.2)
    along = symmetric_epipolar_distance(E[0, 1], norm[0], norm[1] + [10 / 1400, 0], 1400, 1400)
    assert (along < 0.5 * moved).all()
    assert np.allclose(E[2, 2], 0)


def test_faces_of_three_people_are_grouped_by_person_without_priors():
    rng = np.random.default_rng(0)
    rig = ring_rig(6)
    centres = [np.array([-40.0, -160, 0]), np.array([40.0, -165, 10]), np.array([0.0, -150, 50])]
    facings = [np.array([1.0, 0, 0.2]), np.array([-1.0, 0, 0.3]), np.array([0.1, 0, -1.0])]
    faces = [face_points(c, f, rng) for c, f in zip(centres, facings)]
    views = detections(rig, faces, rng)
    groups = associate_frame(rig, views)
    assert len(groups) == 3
    for g in range(len(groups)):
        # All faces of a group are one person: their points lie on that person's projection.
        owners = set()
        for c in np.flatnonzero(groups.members[g] >= 0):
            p = views[c].points_px[groups.members[g, c]]
            d = [np.median(np.linalg.norm(rig.subset([c]).project_world(f)[0] - p, axis=-1)) for f in faces]
            owners.add(int(np.argmin(d)))
        assert len(owners) == 1
        owner = owners.pop()
        assert np.linalg.norm(groups.head_world[g] - faces[owner][[30, 36, 42, 48, 54]].mean(axis=0)) < 3.0
    used = (groups.members >= 0).sum()
    assert used == sum(len(v) for v in views)


def test_a_face_seen_by_one_view_only_stays_unassociated():
    rng = np.random.default_rng(1)
    rig = ring_rig(6)
    face = face_points(np.array([0.0, -160, 0]), np.array([0.0, 0, 1.0]), rng)
    views = detections(rig, [face], rng)
    only = int(np.argmax([len(v) for v in views]))
    lonely = [v if c == only else FaceDetections.empty() for c, v in enumerate(views)]
    assert len(associate_frame(rig, lonely)) == 0


def test_tracker_keeps_ids_over_gaps_and_gives_new_ids_after_long_ones():
    tracker = Tracker(TrackingConfig(gate_cm=20.0, speed_cm_per_frame=2.0, max_gap_frames=10))
    a, b = np.array([0.0, -160, 0]), np.array([100.0, -160, 0])
    assert tracker.update(0, np.stack([a, b])).tolist() == [0, 1]
    assert tracker.update(1, np.stack([b + 3, a + 3])).tolist() == [1, 0]       # order of the frame's people
    assert tracker.update(5, np.stack([a + 6])).tolist() == [0]                 # b missed for 4 frames...
    assert tracker.update(8, np.stack([b + 20, a + 6])).tolist() == [1, 0]      # ...keeps its id, gate grew
    assert tracker.update(30, np.stack([a + 6])).tolist() == [2]                # gap of 22 > 10 frames: new id
    assert tracker.update(31, np.stack([a + 90])).tolist() == [3]               # too far for the gate
    with pytest.raises(ValueError, match="frames must increase"):
        tracker.update(31, np.stack([a]))


def test_tracker_says_where_to_search_between_whole_image_searches():
    from annotate.detect.tracking import SEARCH_RADIUS_CM

    tracker = Tracker(TrackingConfig(speed_cm_per_frame=2.0, max_gap_frames=10, full_search_frames=5))
    a, b = np.array([0.0, -160, 0]), np.array([100.0, -160, 0])
    assert tracker.search_priors(0) is None                                     # nothing tracked: whole
    tracker.update(0, np.stack([a, b]))
    near = tracker.search_priors(1)                                             # around both heads
    assert near.person.tolist() == [0, 1] and np.allclose(near.centre_world, [a, b])
    assert np.allclose(near.radius_cm, SEARCH_RADIUS_CM + 2.0)
    tracker.update(1, np.stack([a + 1]))                                        # b missed
    later = tracker.search_priors(4)
    assert np.allclose(later.radius_cm, SEARCH_RADIUS_CM + 2.0 * np.array([3, 4]))   # grows with the gap
    assert np.isnan(later.anchors_world).all()
    assert tracker.search_priors(5) is None                                     # 5 frames on: whole again
    assert tracker.search_priors(9) is not None
    patient = Tracker(TrackingConfig(max_gap_frames=10, full_search_frames=100))
    patient.search_priors(0)
    patient.update(0, np.stack([a]))
    assert patient.search_priors(10) is not None and patient.search_priors(11) is None   # the track expired
    with pytest.raises(ValueError, match="full_search_frames"):
        TrackingConfig(full_search_frames=0)
