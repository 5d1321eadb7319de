"""The triangulation stage and its Snakemake wiring, on small synthetic sequences."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from annotate.config import resolve_config
from annotate.core.tables import read_table, write_table
from annotate.panoptic.tables import load_faces3d
from annotate.stages.triangulate import crosscheck as run_crosscheck
from annotate.stages.ingest import run as run_ingest
from annotate.stages.synth import run as run_synth
from annotate.stages.triangulate import run as run_triangulate
from annotate.synth.generate import load_ground_truth

pytestmark = pytest.mark.slow            # end to end: tens of seconds

REPO = Path(__file__).resolve().parents[1]
# 120 frames (4 s) of which 8 are used: motion between frames as in 30 fps footage
# (a shorter scene packs its head turns into fewer frames).
SYNTH = {"num_frames": 120, "num_cameras": 12, "num_people": 3, "render_video": False}
INGEST = {"frame_end": 7}


@pytest.fixture(scope="module")
def triangulated(tmp_path_factory):
    work = tmp_path_factory.mktemp("triangulate")
    cfg = resolve_config({"synthetic": SYNTH, "ingest": INGEST, "landmarks3d": "both"})
    run_synth(cfg, work / "seq", "synth_000")
    run_ingest(cfg, work / "seq", "synth_000", work / "ingest")
    summary = run_triangulate(cfg, work / "seq", "synth_000", work / "ingest", work / "triangulate")
    return work, cfg, summary


def errors_cm(faces, truth):
    frame_pos = {int(f): i for i, f in enumerate(truth.frames)}
    person_pos = {int(p): i for i, p in enumerate(truth.person_ids)}
    clean = truth.landmarks_world()[[frame_pos[f] for f in faces.frame], [person_pos[p] for p in faces.person]]
    return np.linalg.norm(faces.landmarks - clean, axis=-1)


def test_triangulated_faces_match_the_ground_truth(triangulated):
    work, _, summary = triangulated
    faces = load_faces3d(work / "triangulate" / "faces3d.parquet", with_visibility=True)
    assert set(faces.source) == {"triangulated"}
    assert len(faces) == summary.faces_written >= 8 * 3 - 2
    error = errors_cm(faces, load_ground_truth(work / "seq" / "synth_000"))
    assert np.nanmedian(error) < 0.5 and np.nanpercentile(error, 95) < 2.0
    ok = np.isfinite(faces.landmarks).all(-1)
    assert ((faces.score[ok] > 0) & (faces.score[ok] <= 1.5)).all() and (faces.score[~ok] == 0).all()
    assert (faces.repro_error[ok] < 8.0).all() and (faces.repro_error[~ok] == 1e5).all()
    for row, face in enumerate(faces.visibility):
        views = np.array([len(v) for v in face])
        assert ((views >= 2) == ok[row]).all() and all(set(v) <= set(range(12)) for v in face)
    saved = json.loads((work / "triangulate" / "summary.json").read_text())
    assert saved["backend"] == "synthetic" and saved["faces_written"] == len(faces)


def test_people_without_bodies_are_followed_from_the_previous_frame(triangulated, tmp_path):
    work, cfg, _ = triangulated
    ingest = tmp_path / "ingest"
    ingest.mkdir()
    for name in ("cameras", "faces3d"):
        (ingest / f"{name}.parquet").write_bytes((work / "ingest" / f"{name}.parquet").read_bytes())
    bodies = read_table(work / "ingest" / "bodies.parquet", "bodies")
    first = bodies.filter(pq.ParquetFile(work / "ingest" / "bodies.parquet").read().column("frame").to_numpy() == 0)
    write_table(first, ingest / "bodies.parquet", "bodies")        # bodies of frame 0 only
    summary = run_triangulate(cfg, work / "seq", "synth_000", ingest, tmp_path / "out")
    faces = load_faces3d(tmp_path / "out" / "faces3d.parquet")
    assert summary.frames == 8 and len(np.unique(faces.frame)) >= 6
    assert np.nanmedian(errors_cm(faces, load_ground_truth(work / "seq" / "synth_000"))) < 0.5


def test_crosscheck_and_combined_faces(triangulated):
    work, _, _ = triangulated
    figures = run_crosscheck(work / "ingest" / "faces3d.parquet", work / "triangulate" / "faces3d.parquet",
                             work / "triangulate")
    check = pq.read_table(work / "triangulate" / "crosscheck.parquet").to_pandas()
    assert pq.read_schema(work / "triangulate" / "crosscheck.parquet").metadata[b"schema_name"] == b"faces3d_crosscheck"
    published = load_faces3d(work / "ingest" / "faces3d.parquet")
    tri = load_faces3d(work / "triangulate" / "faces3d.parquet")
    assert check.in_published.sum() == len(published) and check.in_triangulated.sum() == len(tri)
    both = check[check.in_published & check.in_triangulated]
    # Published noise is 0.3 cm per axis (0.5 cm in 3D), the triangulation's less.
    assert 0.2 < np.nanmedian(np.stack(both.distance_cm)) < 1.0
    combined = load_faces3d(work / "triangulate" / "faces3d_combined.parquet")
    keys = set(zip(combined.frame.tolist(), combined.person.tolist()))
    assert len(keys) == len(combined) == len(check)
    assert (combined.source == "triangulated").sum() == figures["faces_filled_in"] == (~check.in_published).sum()


def test_workflow_labels_use_the_triangulated_faces(tmp_path):
    config = {"results": "results", "landmarks3d": "both",
              "synthetic": {"num_frames": 4, "num_cameras": 6, "num_people": 2, "image_size": [640, 360],
                            "render_video": False}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    targets = ["results/synth_000/labels/labels.parquet", "results/synth_000/triangulate/crosscheck.parquet"]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(tmp_path / "tiny.yaml"), "--cores", "2", *targets]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    res = tmp_path / "results" / "synth_000"
    fits = pq.read_table(res / "labels" / "head_fits.parquet").to_pandas()
    combined = pq.read_table(res / "triangulate" / "faces3d_combined.parquet")
    assert len(fits) == combined.num_rows > 0
    assert (res / "triangulate" / "faces3d.parquet").is_file()
    assert "faces3d_combined.parquet" in (tmp_path / "results" / "logs" / "label" / "synth_000.log").read_text() \
        or fits.landmarks_source.isin(["published", "triangulated"]).all()


class ImageProbe:
    """A backend that needs images and finds no face: records what the stage hands it."""

    name = "probe"
    needs_images = True

    def __init__(self):
        self.seen = {}

    def detect(self, view):
        from annotate.detect.base import FaceDetections

        self.seen[(view.frame, view.camera)] = view.image.copy()
        return FaceDetections.empty(68)


def test_image_backends_get_frame_k_of_each_video_and_missing_videos_are_recorded(tmp_path):
    from annotate.labels.triangulate_stage import NothingTriangulatedError, triangulate_sequence
    from annotate.media.video import iter_camera_frames

    cfg = resolve_config({"synthetic": {"num_frames": 3, "num_cameras": 3, "num_people": 2,
                                        "image_size": [320, 180], "render_video": True}})
    seq = run_synth(cfg, tmp_path / "seq", "synth_000")
    run_ingest(cfg, tmp_path / "seq", "synth_000", tmp_path / "ingest")
    (seq / "hdVideos" / "hd_00_02.mp4").unlink()                        # camera 00_02 has no video
    probe = ImageProbe()
    with pytest.raises(NothingTriangulatedError) as err:          # the probe finds no face
        triangulate_sequence(seq, tmp_path / "ingest" / "cameras.parquet", tmp_path / "ingest" / "bodies.parquet",
                             np.array([0, 2]), probe, tmp_path / "out")
    summary = err.value.summary
    assert "found no face in any of the 4 views read" in str(err.value)
    assert sorted(probe.seen) == [(0, 0), (0, 1), (2, 0), (2, 1)]
    for camera in (0, 1):
        decoded = {f.index: f.rgb() for f in iter_camera_frames(seq, f"00_0{camera}", [0, 2])}
        for frame in (0, 2):
            assert np.array_equal(probe.seen[(frame, camera)], decoded[frame])
    rejections = pq.read_table(tmp_path / "out" / "rejections.parquet").to_pandas()
    missing = rejections[rejections.reason == "missing_video"]
    assert sorted(missing.frame) == [0, 2] and set(missing.camera) == {"00_02"}
    assert summary.faces_written == 0 and summary.rejections["too_few_landmarks"] == 2 * 2
    assert summary.views_read == 4 and summary.views_no_image == 2


def test_triangulate_command_writes_the_stage_outputs(triangulated, tmp_path):
    from annotate.cli import main

    work, cfg, summary = triangulated
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({"synthetic": SYNTH, "ingest": INGEST}))
    out = tmp_path / "tri"
    assert main(["triangulate", "--root", str(work / "seq"), "--sequence", "synth_000",
                 "--ingest", str(work / "ingest"), "--out", str(out), "--config", str(tmp_path / "cfg.yaml")]) == 0
    faces = pq.read_table(out / "faces3d.parquet")
    assert faces.num_rows == summary.faces_written
    detections = pq.read_table(out / "detections2d.parquet")
    assert detections.schema.metadata[b"schema_name"] == b"detections2d"
    # Every associated view, plus the faces nobody claimed (person -1).
    assert (np.asarray(detections.column("person")) >= 0).sum() > 0
    assert detections.num_rows == summary.detections


def test_a_frame_with_no_person_but_an_unclaimed_face_writes_its_detection(tmp_path):
    """Was a crash ("cannot reshape array of size 0"): no person that frame, yet a face."""
    from annotate.core.tables import StreamingTableWriter, read_table
    from annotate.geometry.cameras import CameraRig
    from annotate.labels.frame_views import FrameViews
    from annotate.labels.triangulate_stage import StageConfig, _Run

    rig = CameraRig(("00_00", "00_01"), np.tile(np.eye(3), (2, 1, 1)), np.zeros((2, 5)),
                    np.tile(np.eye(3), (2, 1, 1)), np.zeros((2, 3)), np.tile([640, 360], (2, 1)))
    face = np.full((70, 2), 10.0)
    views = FrameViews(np.zeros((2, 0, 70, 2)), np.zeros((2, 0, 70)), 1, [(1, 0, 1, face, np.full(70, 0.9))], [])
    with StreamingTableWriter(tmp_path / "d.parquet", "detections2d") as out:
        run = _Run(rig, np.arange(2), "s", None, StageConfig(), None, None, None, out)
        run._write_detections(7, np.zeros(0, np.int64), views)
    table = read_table(tmp_path / "d.parquet", "detections2d").to_pandas()
    assert len(table) == 1 and table["person"][0] == -1 and table["camera"][0] == "00_01"
