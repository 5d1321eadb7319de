"""Triangulation without body skeletons: real Panoptic frames (tests/data/haggling_demo, no
body, face or ground-truth files) and a short synthetic sequence with its bodies removed."""
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from annotate.config import resolve_config
from annotate.panoptic.tables import load_cameras, load_faces3d
from annotate.stages.ingest import run as run_ingest
from annotate.stages.triangulate import run as run_triangulate
from haggling_variants import (nearest_faces, turned_camera, write_renumbered_sequence, write_scaled_sequence,
                               write_turned_sequence, write_video_sequence)

pytestmark = pytest.mark.slow            # end to end: tens of seconds

DATA = Path(__file__).resolve().parent / "data"
# The face within this many of its sizes of a by-eye face centre is that face.
MATCH_SIZES = 0.75


def by_eye_faces() -> dict:
    """(frame, camera) -> [(person, centre (2,), size)] from visible_faces.json."""
    doc = json.loads((DATA / "haggling_demo" / "visible_faces.json").read_text())
    return {(int(frame), cam): [(f["person"], np.asarray(f["centre_px"], float), float(f["size_px"])) for f in faces]
            for frame, entry in doc["frames"].items() for cam, faces in entry["views"].items()}


def by_eye_person(faces: dict, frame: int, camera: str, landmarks_px: np.ndarray) -> str | None:
    """The by-eye person whose face centre is near the detection's eyes-and-nose centre."""
    centre = np.nanmean(landmarks_px[[30, *range(36, 48)]], axis=0)
    for person, seen, size in faces.get((frame, camera), []):
        if np.linalg.norm(centre - seen) <= MATCH_SIZES * size:
            return person
    return None


@pytest.fixture(scope="module")
def haggling(tmp_path_factory):
    work = tmp_path_factory.mktemp("haggling")
    # detect.backend auto: Face Mesh on MTCNN's faces for a sequence without synthetic ground truth
    cfg = resolve_config({"detect": {"frames_from": "images"}, "landmarks3d": "triangulated"})
    run_ingest(cfg, DATA, "haggling_demo", work / "ingest")
    summary = run_triangulate(cfg, DATA, "haggling_demo", work / "ingest", work / "tri")
    return work, summary


def test_real_frames_without_bodies_triangulate_the_people_seen_by_two_views(haggling):
    work, summary = haggling
    assert summary.association == "cross_view"
    faces = by_eye_faces()
    detections = pq.read_table(work / "tri" / "detections2d.parquet").to_pandas()
    detections = detections[detections.person >= 0]
    # Every associated detection is a face counted by eye, and each triangulated person is
    # one by-eye person in every view.
    named = {}
    for row in detections.itertuples():
        who = by_eye_person(faces, row.frame, row.camera, np.asarray(row.landmarks_px, float).reshape(70, 2))
        assert who is not None, f"frame {row.frame} camera {row.camera}: associated face seen by nobody"
        named.setdefault((row.frame, row.person), set()).add(who)
    assert all(len(who) == 1 for who in named.values()), named
    found = {(frame, next(iter(who))) for (frame, _), who in named.items()}
    assert len(found) == len(named)                                           # no person split in two
    # People whose face is visible in >= 2 views: A, B (4500), D, E, F (9348). B's face is
    # found by MTCNN in one view only (seen steeply from above in 00_06). The other four are
    # triangulated; E (seen from above in 00_06 and 00_13, in profile in 00_12) from the crops
    # of 00_06 and 00_13 that agree (the crop consensus; from the detector's crops alone its
    # views disagree and it is rejected: test_crop_consensus_finds_the_face_seen_from_above).
    two_views = {(frame, p) for frame in (4500, 9348)
                 for p in {q for (f, _), lst in faces.items() if f == frame for q, _, _ in lst}
                 if sum(q == p for (f, _), lst in faces.items() if f == frame for q, _, _ in lst) >= 2}
    assert len(two_views) == 5 and found <= two_views
    assert found == {(4500, "A"), (9348, "D"), (9348, "E"), (9348, "F")}, found
    assert summary.crop_consensus_faces >= 4
    rejected = pq.read_table(work / "tri" / "rejections.parquet").to_pandas()
    assert set(rejected.reason) == {"unassociated_face"}, rejected.reason.value_counts()
    triangulated = load_faces3d(work / "tri" / "faces3d.parquet")
    assert len(triangulated) == len({key for key in named if key in
                                     set(zip(triangulated.frame.tolist(), triangulated.person.tolist()))})
    for k in range(len(triangulated)):
        error = triangulated.repro_error[k]
        assert np.median(error[error < 1e4]) <= 3.0
    lm = triangulated.landmarks
    whole_eyes = np.isfinite(lm[:, 36:48]).all(axis=(1, 2))
    span = np.linalg.norm(lm[:, 36:42].mean(axis=1) - lm[:, 42:48].mean(axis=1), axis=-1)[whole_eyes]
    pupils = np.linalg.norm(lm[:, 68] - lm[:, 69], axis=-1)
    pupils = pupils[np.isfinite(pupils)]
    # The eye-centre span and the pupils' distance of an adult are 5.5-7 cm. Every face has
    # its 12 eye points and both pupils triangulated (a mean over some of an eye's points
    # leans toward them; with one mesh run on the detector's box, A has 7 eye points and
    # no pupils: docs/triangulation.md has each figure).
    assert whole_eyes.all() and len(pupils) == len(triangulated), (whole_eyes, pupils)
    assert len(span) == 4, span
    assert np.all((span >= 5.0) & (span <= 7.5)) and np.all((pupils >= 5.0) & (pupils <= 7.5)), (span, pupils)


def test_crop_consensus_finds_the_face_seen_from_above(haggling, tmp_path):
    """From the detector's crops alone, E's mesh in 00_13 (seen steeply from above, the
    detector's box taking in much hair) sits one feature too high and E's views disagree:
    E is rejected. The crop consensus takes the 00_13 crops that agree with 00_06: E is
    triangulated with a plausible eye span (the others are triangulated either way)."""
    cfg = resolve_config({"detect": {"frames_from": "images", "facemesh": {"crop_alternatives": False}},
                          "landmarks3d": "triangulated"})
    run_ingest(cfg, DATA, "haggling_demo", tmp_path / "ingest")
    summary = run_triangulate(cfg, DATA, "haggling_demo", tmp_path / "ingest", tmp_path / "tri")
    assert summary.crop_consensus_faces == 0 and summary.faces_written == 3
    rejected = pq.read_table(tmp_path / "tri" / "rejections.parquet").to_pandas()
    assert rejected[rejected.reason == "inconsistent_views"].frame.tolist() == [9348]
    work, with_consensus = haggling
    faces = load_faces3d(work / "tri" / "faces3d.parquet")
    alone = load_faces3d(tmp_path / "tri" / "faces3d.parquet")
    _, distance = nearest_faces(faces.landmarks, alone.landmarks)
    new = faces.landmarks[np.argmax(distance)]                  # the face the detector's crops do not give: E
    assert with_consensus.faces_written == 4 and distance.max() > 20
    span = np.linalg.norm(new[36:42].mean(0) - new[42:48].mean(0))
    assert 5.5 <= span <= 7.0, span


def test_a_capture_where_no_face_is_matched_says_so(tmp_path):
    """Frames whose faces are each seen by one camera only: the stage names the step."""
    from annotate.labels.triangulate_stage import NothingTriangulatedError

    seq = tmp_path / "haggling_demo"
    (seq / "hdImgs").mkdir(parents=True)
    (seq / "calibration_haggling_demo.json").write_bytes(
        (DATA / "haggling_demo" / "calibration_haggling_demo.json").read_bytes())
    for cam in ("00_03", "00_13"):                       # frame 9348: D in 00_03, E in 00_13, different people
        (seq / "hdImgs" / cam).mkdir()
        name = f"{cam}_00009348.jpg"
        (seq / "hdImgs" / cam / name).write_bytes((DATA / "haggling_demo" / "hdImgs" / cam / name).read_bytes())
    cfg = resolve_config({"detect": {"backend": "dlib", "frames_from": "images"}, "landmarks3d": "triangulated",
                          "ingest": {"cameras": ["00_03", "00_13"]}})
    run_ingest(cfg, tmp_path, "haggling_demo", tmp_path / "ingest")
    with pytest.raises(NothingTriangulatedError) as err:
        run_triangulate(cfg, tmp_path, "haggling_demo", tmp_path / "ingest", tmp_path / "tri")
    message = str(err.value)
    assert "no face was matched between two views" in message and "detect.cross_view.max_epipolar" in message
    assert err.value.summary.detections >= 2 and err.value.summary.people_found == 0
    assert (tmp_path / "tri" / "rejections.parquet").is_file()


def test_an_unreadable_image_is_a_rejection_naming_the_file(tmp_path):
    """A JPEG cut short (a copy interrupted, a full disk) skips that view with a recorded
    reason naming the file; the other views still triangulate."""
    seq = tmp_path / "haggling_demo"
    (seq / "hdImgs").mkdir(parents=True)
    (seq / "calibration_haggling_demo.json").write_bytes(
        (DATA / "haggling_demo" / "calibration_haggling_demo.json").read_bytes())
    for cam in ("00_03", "00_12", "00_06"):               # frame 9348: D is seen by all three
        (seq / "hdImgs" / cam).mkdir()
        name = f"{cam}_00009348.jpg"
        data = (DATA / "haggling_demo" / "hdImgs" / cam / name).read_bytes()
        (seq / "hdImgs" / cam / name).write_bytes(data[: len(data) // 3] if cam == "00_06" else data)
    cfg = resolve_config({"detect": {"frames_from": "images"}, "landmarks3d": "triangulated",
                          "ingest": {"cameras": ["00_03", "00_06", "00_12"]}})
    run_ingest(cfg, tmp_path, "haggling_demo", tmp_path / "ingest")
    summary = run_triangulate(cfg, tmp_path, "haggling_demo", tmp_path / "ingest", tmp_path / "tri")
    assert summary.faces_written == 1 and summary.views_no_image == 1
    rejections = pq.read_table(tmp_path / "tri" / "rejections.parquet").to_pandas()
    unreadable = rejections[rejections["reason"] == "unreadable_image"]
    assert unreadable["camera"].tolist() == ["00_06"] and unreadable["frame"].tolist() == [9348]
    assert "00_06_00009348.jpg" in unreadable["detail"].iloc[0] and "truncated JPEG" in unreadable["detail"].iloc[0]


def test_synthetic_sequence_without_bodies_matches_the_run_with_them(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from no_bodies_runs import association_figures, with_true_ids, without_bodies

    from annotate.detect.synthetic import SyntheticDetector
    from annotate.geometry.rotations import geodesic_distance
    from annotate.stages.head_model import run as run_head_model
    from annotate.stages.label import run as run_label
    from annotate.stages.synth import run as run_synth
    from annotate.synth.generate import load_ground_truth

    cfg = resolve_config({"synthetic": {"num_frames": 120, "num_cameras": 12, "num_people": 3, "render_video": False},
                          "ingest": {"frame_end": 11}, "landmarks3d": "triangulated"})
    seq = run_synth(cfg, tmp_path / "seq", "synth_000")
    without_bodies(Path(seq), tmp_path / "bare")
    truth = load_ground_truth(seq)
    medians, figures = {}, {}
    for name, root in (("bodies", tmp_path / "seq"), ("bare", tmp_path / "bare")):
        out = tmp_path / f"run_{name}"
        run_ingest(cfg, root, "synth_000", out / "ingest")
        summary = run_triangulate(cfg, root, "synth_000", out / "ingest", out / "tri")
        assert summary.association == ("priors" if name == "bodies" else "cross_view")
        rig = load_cameras(out / "ingest" / "cameras.parquet")
        figures[name], mapping = association_figures(out / "tri" / "detections2d.parquet", SyntheticDetector(seq, rig))
        faces = with_true_ids(out / "tri" / "faces3d.parquet", mapping, out / "faces3d.parquet")
        run_head_model(cfg, [faces], out / "head_model.json")
        run_label(cfg, faces, out / "ingest" / "cameras.parquet", out / "head_model.json", out / "labels")
        t = pq.read_table(out / "labels" / "labels.parquet", columns=["frame", "person", "camera_index",
                                                                      "R_cam_head"]).to_pandas()
        fi = t["frame"].map({int(f): i for i, f in enumerate(truth.frames)}).to_numpy()
        pi = t["person"].map({int(p): i for i, p in enumerate(truth.person_ids)}).to_numpy()
        R_true = rig.R_cam_world[t["camera_index"].to_numpy()] @ truth.R_world_head[fi, pi]
        R_est = np.stack(t["R_cam_head"].to_numpy()).reshape(-1, 3, 3)
        ok = np.isfinite(R_est).all(axis=(1, 2))
        medians[name] = float(np.median(np.degrees(geodesic_distance(R_est[ok], R_true[ok]))))
    bare = figures["bare"]
    assert bare["right_of_assigned"] >= 0.99 and bare["assigned"] >= 0.95
    assert bare["ids"] == 3 and bare["id_switches"] == 0
    assert medians["bare"] <= 1.10 * medians["bodies"], medians


def test_the_head_model_names_the_step_that_found_no_face(tmp_path):
    """A capture without hdFace3d labelled from published faces: the error says the ingest
    read none and what to set; from an empty triangulation: that the triangulation wrote none."""
    from annotate.labels.stage import sample_faces

    cfg = resolve_config({})
    run_ingest(cfg, DATA, "haggling_demo", tmp_path / "ingest")
    with pytest.raises(ValueError, match="the ingest read no published face.*landmarks3d: triangulated"):
        sample_faces([tmp_path / "ingest" / "faces3d.parquet"], 10)
    tri = tmp_path / "tri"
    tri.mkdir()
    for name in ("faces3d", "detections2d"):
        (tri / f"{name}.parquet").write_bytes((tmp_path / "ingest" / "faces3d.parquet").read_bytes())
    with pytest.raises(ValueError, match="the triangulate stage wrote no face"):
        sample_faces([tri / "faces3d.parquet"], 10)


def test_frames_between_whole_image_searches_are_searched_around_the_tracked_heads(tmp_path):
    """Frame 9348 of the real frames, repeated as 9349 and 9350: the first frame's whole
    images find D, E and F, the next two are searched only around their tracked heads and
    find them again with the same ids; with full_search_frames 1 every frame is searched whole."""
    seq = tmp_path / "haggling_demo"
    (seq / "hdImgs").mkdir(parents=True)
    (seq / "calibration_haggling_demo.json").write_bytes(
        (DATA / "haggling_demo" / "calibration_haggling_demo.json").read_bytes())
    for cam in ("00_03", "00_06", "00_12", "00_13", "00_23"):
        (seq / "hdImgs" / cam).mkdir()
        data = (DATA / "haggling_demo" / "hdImgs" / cam / f"{cam}_00009348.jpg").read_bytes()
        for frame in (9348, 9349, 9350):
            (seq / "hdImgs" / cam / f"{cam}_{frame:08d}.jpg").write_bytes(data)
    found = {}
    for every in (30, 1):
        cfg = resolve_config({"detect": {"frames_from": "images", "tracking": {"full_search_frames": every}},
                              "landmarks3d": "triangulated"})
        work = tmp_path / f"every{every}"
        run_ingest(cfg, tmp_path, "haggling_demo", work / "ingest")
        summary = run_triangulate(cfg, tmp_path, "haggling_demo", work / "ingest", work / "tri")
        assert summary.whole_image_frames == (1 if every == 30 else 3) and summary.frames == 3
        faces = load_faces3d(work / "tri" / "faces3d.parquet")
        found[every] = sorted(zip(faces.frame.tolist(), faces.person.tolist()))
        # The same images: each person's face is where it was in the whole-image frame.
        for p in set(faces.person.tolist()):
            lm = faces.landmarks[faces.person == p]                                  # (3, 70, 3)
            assert np.nanmedian(np.linalg.norm(lm[1:] - lm[0], axis=-1)) < 1.0
    people = {p for _, p in found[30]}
    assert found[30] == found[1] and len(people) == 3
    assert found[30] == [(frame, p) for frame in (9348, 9349, 9350) for p in sorted(people)]


def test_the_real_frames_demo_runs_the_whole_workflow(tmp_path):
    """pipelines/config/real_frames_demo.yaml: the ten real JPEGs, no media setting, through
    ingest, triangulation, labels and the dataset: every valid label is a crop (the crops
    come from the JPEGs, the cameras having no video)."""
    import sys

    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from workflow_runs import build_dataset

    demo = Path(__file__).resolve().parents[1] / "pipelines" / "config" / "real_frames_demo.yaml"
    config = yaml.safe_load(demo.read_text())
    assert Path(config["panoptic"]["root"]) == Path("tests/data")           # relative to the checkout
    dataset = build_dataset(DATA, config["panoptic"]["sequences"], tmp_path / "results", config)
    card = json.loads((dataset / "card.json").read_text())
    valid = card["labels_not_used"]["labels"] - sum(card["labels_not_used"]["rejected_labels_by_reason"].values())
    assert card["samples"] == valid >= 9 and card["media_rejections_by_reason"] == {}


def test_the_turned_calibration_projects_where_the_turned_images_have_the_points():
    from annotate.geometry.image_turns import turn_points
    from annotate.panoptic.calibration import parse_calibration

    doc = json.loads((DATA / "haggling_demo" / "calibration_haggling_demo.json").read_text())
    camera = next(c for c in doc["cameras"] if c["name"] == "00_12")
    rig = parse_calibration({"calibDataSource": "test", "cameras": [camera]}, "test").rig
    world = rig.centres_world[0] + np.random.default_rng(0).normal(size=(50, 3)) * 40 \
        + 250 * np.asarray(camera["R"])[2]                        # points in front of the camera
    upright = rig.project_world(world)[0]
    for degrees in (90, 180, 270):
        turned = parse_calibration({"calibDataSource": "test", "cameras": [turned_camera(camera, degrees)]}, "test").rig
        np.testing.assert_allclose(turned.project_world(world)[0], turn_points(upright, degrees, (1920, 1080)),
                                   atol=1e-6)


def test_the_views_detected_in_two_workers_give_the_same_tables(haggling, tmp_path):
    """annotate.labels.view_search: the triangulate stage on the real frames with its views
    detected in 2 worker processes writes the same tables as in one (the fixture's run)."""
    work, one = haggling
    cfg = resolve_config({"detect": {"frames_from": "images"}, "landmarks3d": "triangulated"})
    two = run_triangulate(cfg, DATA, "haggling_demo", work / "ingest", tmp_path / "tri", workers=2)
    assert one.faces_written == two.faces_written == 4
    assert one.as_dict() | {"seconds": 0} == two.as_dict() | {"seconds": 0}
    for table, column in (("detections2d", "landmarks_px"), ("faces3d", "landmarks_world")):
        a, b = (np.array(pq.read_table(folder / f"{table}.parquet").column(column).to_pylist(), dtype=np.float64)
                for folder in (work / "tri", tmp_path / "tri"))
        np.testing.assert_array_equal(a, b)
    for table in ("detections2d", "faces3d", "rejections"):
        a, b = (pq.read_table(folder / f"{table}.parquet") for folder in (work / "tri", tmp_path / "tri"))
        others = [c for c in a.column_names if not c.startswith("landmarks")]
        assert a.select(others).equals(b.select(others)), table


def test_faces_assigned_to_head_priors_are_the_same_from_workers(haggling):
    """The prior path (annotate.labels.frame_views.detect_views) with the views detected in 2
    worker processes: the same faces, assigned to the same people, as in one process. The
    priors are the triangulated faces of frame 9348 (as for a person whose body is missing)."""
    from functools import partial

    from annotate.detect.heads import priors_from_landmarks
    from annotate.labels.frame_views import CameraImages, detect_views, make_backend
    from annotate.labels.view_search import ParallelViews, SerialViews

    work, _ = haggling
    faces = load_faces3d(work / "tri" / "faces3d.parquet")
    rows = faces.frame == 9348
    priors = priors_from_landmarks(faces.person[rows], faces.landmarks[rows])
    rig = load_cameras(work / "ingest" / "cameras.parquet")
    cfg = resolve_config({"detect": {"backend": "facemesh"}})
    seq, frames = DATA / "haggling_demo", np.array([9348])
    serial = SerialViews(make_backend(cfg, seq, rig), CameraImages(seq, rig.names, frames, "images"))
    parallel = ParallelViews(partial(make_backend, cfg, seq, rig), seq, rig.names, frames, "images", {}, 2)
    try:
        one, two = (detect_views(rig, views, 9348, priors, 0.6) for views in (serial, parallel))
    finally:
        parallel.close()
    assert one.detections == two.detections > 0 and len(one.unassociated) == len(two.unassociated)
    np.testing.assert_array_equal(one.points_px, two.points_px)
    assert np.isfinite(one.points_px).all(-1).any(-1).sum() >= 6             # the people's views found
    assert one.alternatives.keys() == two.alternatives.keys()


def test_a_rig_with_cameras_on_their_side_gives_the_upright_faces(haggling, tmp_path):
    """The test frames with three cameras stored turned (as if mounted on their side and
    upside down) and their calibration to match: detect.image_rotation auto finds each
    camera's turn, and the same people are triangulated as from the upright images (the
    turned JPEGs are re-encoded, quality 100, hence the small tolerance)."""
    write_turned_sequence(tmp_path)
    cfg = resolve_config({"detect": {"frames_from": "images"}, "landmarks3d": "triangulated"})
    run_ingest(cfg, tmp_path, "haggling_demo", tmp_path / "ingest")
    summary = run_triangulate(cfg, tmp_path, "haggling_demo", tmp_path / "ingest", tmp_path / "tri")
    turns = summary.image_rotation["degrees_cw"]
    assert turns == {"00_03": 0, "00_06": 180, "00_12": 270, "00_13": 0, "00_23": 90}, summary.image_rotation
    # As stored, MTCNN finds no face in a camera turned by a quarter (it does upright).
    probes = summary.image_rotation["probe_faces"]
    assert probes["00_12"][0] == 0 and probes["00_23"][0] == 0 and probes["00_12"][3] > 0 and probes["00_23"][1] > 0
    work, _ = haggling
    reference = load_faces3d(work / "tri" / "faces3d.parquet")
    turned = load_faces3d(tmp_path / "tri" / "faces3d.parquet")
    assert len(turned) == len(reference) >= 3
    # The same person: the face whose landmarks are nearest (median over landmarks, cm;
    # points mapped back the wrong way would not triangulate at all). The crop consensus
    # takes crops whose 3D face lies within ConsensusConfig.cluster_cm (1 cm) of the
    # consensus, so on re-encoded pictures two runs may take faces up to 2 cm apart
    # (measured: 0.07-1.69 cm).
    index, distance = nearest_faces(reference.landmarks, turned.landmarks)
    for j, d in zip(index, distance):
        error = turned.repro_error[j]
        assert d <= 2.0 and np.median(error[error < 1e4]) <= 3.0, (distance, error)


def test_cameras_started_at_different_times_are_put_back_in_step_by_their_offsets(haggling, tmp_path):
    """The test frames with two cameras' images renumbered, as if started 7 pictures late and
    4500 early: with ingest.frame_offsets the stage reads the same pictures for each frame and
    triangulates exactly the same faces (without the offsets, ingest lists those pictures as
    other frames: tests/test_frame_offsets.py)."""
    shifts = {"00_12": 7, "00_23": -4500}
    write_renumbered_sequence(tmp_path, shifts)
    cfg = resolve_config({"source": "panoptic", "panoptic": {"root": str(tmp_path), "sequences": ["haggling_demo"]},
                          "ingest": {"frame_offsets": {"haggling_demo": shifts}},
                          "detect": {"frames_from": "images"}, "landmarks3d": "triangulated"})
    run_ingest(cfg, tmp_path, "haggling_demo", tmp_path / "ingest")
    run_triangulate(cfg, tmp_path, "haggling_demo", tmp_path / "ingest", tmp_path / "tri")
    work, _ = haggling
    reference = load_faces3d(work / "tri" / "faces3d.parquet")
    shifted = load_faces3d(tmp_path / "tri" / "faces3d.parquet")
    assert len(reference) >= 3 and shifted.frame.tolist() == reference.frame.tolist()
    np.testing.assert_array_equal(shifted.landmarks, reference.landmarks)


def test_a_face_whose_views_disagree_on_small_faces_is_rejected_as_implausible(tmp_path):
    """The test frames at half resolution (faces 25-60 px): the pixel thresholds, fixed
    below triangulate.threshold_face_px, let E's views (landmarks on different parts of the
    face, see above) agree, and E would come out nearly twice a face's size; the size check
    against the mean adult face rejects it, and A, D and F are triangulated as at full size."""
    write_scaled_sequence(tmp_path, 0.5)
    results = {}
    for name, scale_range in (("checked", [0.75, 1.33]), ("unchecked", None)):
        cfg = resolve_config({"detect": {"frames_from": "images"}, "landmarks3d": "triangulated",
                              "triangulate": {"face_scale_range": scale_range}})
        run_ingest(cfg, tmp_path, "haggling_demo", tmp_path / name / "ingest")
        run_triangulate(cfg, tmp_path, "haggling_demo", tmp_path / name / "ingest", tmp_path / name / "tri")
        results[name] = load_faces3d(tmp_path / name / "tri" / "faces3d.parquet")
    from annotate.head.face_model import scale_against_mean_face

    unchecked, checked = results["unchecked"], results["checked"]
    scale, _, _ = scale_against_mean_face(unchecked.landmarks)
    assert len(unchecked) == 4 and (scale > 1.33).sum() == 1, scale          # E, nearly twice a face
    assert len(checked) == 3 and np.all(np.abs(scale_against_mean_face(checked.landmarks)[0] - 1) < 0.15)
    rejected = pq.read_table(tmp_path / "checked" / "tri" / "rejections.parquet").to_pandas()
    implausible = rejected[rejected.reason == "implausible_face"]
    assert len(implausible) == 1 and implausible.frame.iloc[0] == 9348 and "face_scale_range" in implausible.detail.iloc[0]
    lm = checked.landmarks
    span = np.linalg.norm(lm[:, 36:42].mean(axis=1) - lm[:, 42:48].mean(axis=1), axis=-1)
    assert np.isfinite(span).all() and np.all((span >= 5.0) & (span <= 7.5)), span


def test_videos_with_a_display_matrix_are_used_as_players_show_them(haggling, tmp_path):
    """The test frames as 2-frame videos, two of them stored turned with a display matrix
    that turns them back (as phones record portrait video), the calibration that of the
    shown pictures: the people triangulated are those of the JPEGs (the videos are lossy,
    hence the tolerance; frame numbers are the videos' 0 and 1). A, D and F are; MTCNN does
    not find E's face in the re-encoded 00_13 picture, which leaves E two views that
    disagree (00_06 from above, 00_12 in profile). The views are read and detected in 2
    worker processes (annotate.labels.view_search), each decoding its cameras' videos."""
    write_video_sequence(tmp_path, {"00_12": -90, "00_23": 180})
    cfg = resolve_config({"detect": {"frames_from": "video", "tracking": {"full_search_frames": 1}},
                          "landmarks3d": "triangulated"})
    run_ingest(cfg, tmp_path, "haggling_demo", tmp_path / "ingest")
    run_triangulate(cfg, tmp_path, "haggling_demo", tmp_path / "ingest", tmp_path / "tri", workers=2)
    work, _ = haggling
    reference = load_faces3d(work / "tri" / "faces3d.parquet")
    videos = load_faces3d(tmp_path / "tri" / "faces3d.parquet")
    assert len(reference) >= len(videos) >= 3
    _, distance = nearest_faces(videos.landmarks, reference.landmarks)
    assert np.all(distance <= 1.0), distance
