"""Ingest of a Panoptic sequence into the cameras / faces3d / bodies / rejections tables.

The sequences are built in tmp_path with the package's own writers (from the real
calibration in tests/data), so every expected row and rejection is known.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from annotate.core.schema import load_schema
from annotate.core.tables import read_table
from annotate.panoptic import errors as E
from annotate.panoptic.bodies import write_body_frame
from annotate.panoptic.calibration import read_calibration, write_calibration
from annotate.panoptic.errors import PanopticFormatError
from annotate.panoptic.faces import FacePerson, write_face_frame
from annotate.panoptic.ingest import TABLE_FILES, gap_frames, ingest_sequence, select_frames
from annotate.panoptic.tables import (iter_faces3d, load_bodies, load_camera_info, load_cameras, load_faces3d,
                                      load_frames)
from annotate.panoptic.layout import SequenceLayout

DATA = Path(__file__).parent / "data"
SEQ = "synth_seq"
N_CAMERAS = 4
SAMPLE_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "panoptic-sample"


def make_face(pid: int, frame: int) -> FacePerson:
    """Deterministic face for (pid, frame); landmark 69 missing; visibility within 4 cameras."""
    rng = np.random.default_rng(1000 * frame + pid)
    landmarks = rng.normal([30.0 * pid, -160.0, 0.0], 5.0, size=(70, 3))
    score = rng.uniform(0.3, 0.9, 70)
    repro = rng.uniform(0.5, 3.0, 70)
    visibility = [[0, 2, 3]] * 69 + [[]]
    landmarks[69], score[69], repro[69] = np.nan, 0.0, 1e5
    return FacePerson(pid, landmarks, score, repro, visibility)


def make_body(pid: int, frame: int) -> np.ndarray:
    rng = np.random.default_rng(7 * frame + pid)
    joints = np.concatenate([rng.normal([30.0 * pid, -100.0, 0.0], 20.0, (19, 3)),
                             rng.uniform(0.1, 0.7, (19, 1))], axis=1)
    joints[8] = (np.nan, np.nan, np.nan, -1.0)
    return joints


@pytest.fixture
def sequence(tmp_path) -> SequenceLayout:
    """4 cameras; face frames 10-16 without 13 (a gap), frame 12 not JSON, a stray file;
    body frames 10-16 complete. Two people (ids 0 and 1) in every frame."""
    lay = SequenceLayout(tmp_path / "data", SEQ)
    rig = read_calibration(DATA / "calibration_160906_band1_hd.json").subset(range(N_CAMERAS))
    write_calibration(lay.calibration, rig, source="test")
    for f in (10, 11, 14, 15, 16):
        write_face_frame(lay.face_file(f), [make_face(0, f), make_face(1, f)])
    lay.face_file(12).write_text('{"version": 0.5, "people": [{"id": 0, "face70": ')
    (lay.face_dir / "README.txt").write_text("stray")
    for f in range(10, 17):
        write_body_frame(lay.body_file(f), [(0, make_body(0, f)), (1, make_body(1, f))],
                         univ_time=1000.0 + 33.3667 * f)
    return lay


def reasons(out: Path) -> list[tuple]:
    t = read_table(out / "rejections.parquet", "rejections").to_pylist()
    return sorted((r["reason"], r["stage"], r["frame"], r["person"]) for r in t)


def test_ingest_writes_five_tables_with_declared_schemas(sequence, tmp_path):
    out = tmp_path / "out"
    summary = ingest_sequence(sequence.root, SEQ, out)
    for name, file in TABLE_FILES.items():
        table = pq.read_table(out / file)
        assert table.schema.equals(load_schema(name).arrow, check_metadata=False), name
        meta = pq.read_schema(out / file).metadata
        assert meta[b"schema_name"] == name.encode()
        assert meta[b"schema_version"] == load_schema(name).version.encode()
    assert summary.rows == {"cameras": 4, "frames": 7, "faces3d": 10, "bodies": 14, "rejections": 3}
    frames = read_table(out / "frames.parquet", "frames").to_pylist()
    assert [(r["frame"], r["face_file"], r["body_file"], r["cameras_with_media"]) for r in frames] == \
        [(f, f != 13, True, None) for f in range(10, 17)]
    assert not load_frames(out / "frames.parquet").from_media
    assert summary.frame_range == (10, 16) and summary.frames_selected == 7
    assert summary.face_files == 6 and summary.body_files == 7
    assert summary.rejections_by_reason == {E.MISSING_FRAME: 1, E.INVALID_JSON: 1, E.UNEXPECTED_FILE: 1}
    assert reasons(out) == sorted([(E.INVALID_JSON, "ingest.faces", 12, None),
                                   (E.MISSING_FRAME, "ingest.faces", 13, None),
                                   (E.UNEXPECTED_FILE, "ingest.faces", None, None)])
    rows = read_table(out / "rejections.parquet", "rejections").to_pylist()
    files = {r["reason"]: r["file"] for r in rows}
    assert files[E.MISSING_FRAME] == f"{SEQ}/hdFace3d/faceRecon3D_hd00000013.json"
    assert files[E.UNEXPECTED_FILE] == f"{SEQ}/hdFace3d/README.txt"
    assert all(r["sequence"] == SEQ for r in rows)
    text = str(summary)
    assert "faces3d:    10 rows" in text and "invalid_json 1" in text and "missing_frame 1" in text
    assert not list(out.glob(".*"))                  # no temporary files left


def test_ingested_values_read_back(sequence, tmp_path):
    out = tmp_path / "out"
    ingest_sequence(sequence.root, SEQ, out)
    faces = load_faces3d(out / "faces3d.parquet", with_visibility=True)
    assert faces.frame.tolist() == [10, 10, 11, 11, 14, 14, 15, 15, 16, 16]
    assert faces.person.tolist() == [0, 1] * 5 and set(faces.source) == {"published"}
    expected = make_face(1, 14)
    i = 5
    np.testing.assert_allclose(faces.landmarks[i], expected.landmarks.astype(np.float32), equal_nan=True)
    assert np.isnan(faces.landmarks[:, 69]).all() and np.isfinite(faces.landmarks[:, :69]).all()
    np.testing.assert_allclose(faces.score[i], expected.score.astype(np.float32))
    np.testing.assert_allclose(faces.repro_error[i], expected.repro_error.astype(np.float32))
    assert faces.visibility[i] == expected.visibility
    bodies = load_bodies(out / "bodies.parquet")
    assert len(bodies) == 14 and bodies.joints.shape == (14, 19, 3)
    assert np.isnan(bodies.joints[:, 8]).all() and (bodies.confidence[:, 8] == -1).all()
    np.testing.assert_allclose(bodies.joints[3], make_body(1, 11)[:, :3].astype(np.float32), equal_nan=True)
    assert bodies.univ_time[0] == pytest.approx(1000.0 + 33.3667 * 10)
    rig = load_cameras(out / "cameras.parquet")
    ref = read_calibration(sequence.calibration)
    assert rig.names == ref.names == ("00_00", "00_01", "00_02", "00_03")
    for attr in ("K", "dist", "R_cam_world", "t_cam_world", "image_size"):
        np.testing.assert_array_equal(getattr(rig, attr), getattr(ref, attr))
    info = load_camera_info(out / "cameras.parquet", sequence=SEQ)
    assert info.camera_index.tolist() == [0, 1, 2, 3] and info.camera_type == "hd"
    centres = read_table(out / "cameras.parquet", "cameras").column("centre_world").to_pylist()
    np.testing.assert_allclose(centres, ref.centres_world)


def test_chunking_does_not_change_tables(sequence, tmp_path):
    ingest_sequence(sequence.root, SEQ, tmp_path / "a", chunk_frames=500)
    ingest_sequence(sequence.root, SEQ, tmp_path / "b", chunk_frames=2)
    for file in TABLE_FILES.values():
        a, b = pq.read_table(tmp_path / "a" / file), pq.read_table(tmp_path / "b" / file)
        assert a.schema.equals(b.schema) and a.num_rows == b.num_rows, file
        for name in a.column_names:   # to_pylist compares NaN by identity, so flatten to numpy
            col_a, col_b = a.column(name).combine_chunks(), b.column(name).combine_chunks()
            if pa.types.is_fixed_size_list(col_a.type):
                np.testing.assert_array_equal(col_a.flatten().to_numpy(), col_b.flatten().to_numpy(), err_msg=name)
            else:
                assert col_a.to_pylist() == col_b.to_pylist(), (file, name)
    chunks = list(iter_faces3d(tmp_path / "b" / "faces3d.parquet", batch_rows=3))
    assert sum(len(c) for c in chunks) == 10 and max(len(c) for c in chunks) <= 3


def test_frame_selection_range_and_step(sequence, tmp_path):
    s = ingest_sequence(sequence.root, SEQ, tmp_path / "o", frame_start=10, frame_step=2)
    # 10, 12, 14, 16 selected: 13 is not, so no gap; 12 is still a bad file
    assert s.frames_selected == 4 and s.rows["faces3d"] == 6 and s.rows["bodies"] == 8
    assert s.rejections_by_reason == {E.INVALID_JSON: 1, E.UNEXPECTED_FILE: 1}
    s = ingest_sequence(sequence.root, SEQ, tmp_path / "p", frame_start=13, frame_end=14)
    assert s.frame_range == (13, 14) and s.rows["faces3d"] == 2
    assert s.rejections_by_reason == {E.MISSING_FRAME: 1, E.UNEXPECTED_FILE: 1}


def test_select_frames_and_gaps():
    present = np.array([5, 6, 8, 9, 12])
    assert select_frames(present, None, None, 1).tolist() == list(range(5, 13))
    assert select_frames(present, 0, 10, 3).tolist() == [6, 9]       # anchored at 0, clipped
    assert select_frames(present, 20, None, 1).tolist() == []
    assert select_frames(np.array([], dtype=np.int64), None, None, 1).tolist() == []
    assert gap_frames(np.arange(0, 15), present).tolist() == [7, 10, 11]
    with pytest.raises(ValueError, match="frame_step"):
        select_frames(present, None, None, 0)
    with pytest.raises(ValueError, match="after frame_end"):
        select_frames(present, 9, 5, 1)


def test_duplicate_person_and_bad_visibility_are_rejected(sequence, tmp_path):
    face = make_face(3, 11)
    far = FacePerson(4, face.landmarks, face.score, face.repro_error, [[0, 7]] * 69 + [[]])
    write_face_frame(sequence.face_file(11), [make_face(0, 11), make_face(0, 11), far, make_face(5, 11)])
    out = tmp_path / "out"
    s = ingest_sequence(sequence.root, SEQ, out)
    got = [r for r in reasons(out) if r[2] == 11]
    assert got == sorted([(E.DUPLICATE_PERSON, "ingest.faces", 11, 0)] * 2
                         + [(E.BAD_VISIBILITY, "ingest.faces", 11, 4)])
    assert load_faces3d(out / "faces3d.parquet").person[load_faces3d(out / "faces3d.parquet").frame == 11].tolist() == [5]
    assert s.rows["faces3d"] == 9


def test_bad_person_values_rejected_in_ingest(sequence, tmp_path):
    doc = json.loads(sequence.face_file(14).read_text())
    doc["people"][0]["face70"]["landmarks"][0] = 5e4
    doc["people"][1]["face70"]["averageScore"] = doc["people"][1]["face70"]["averageScore"][:-1]
    sequence.face_file(14).write_text(json.dumps(doc))
    out = tmp_path / "out"
    ingest_sequence(sequence.root, SEQ, out)
    assert [r for r in reasons(out) if r[2] == 14] == [(E.ABSURD_VALUE, "ingest.faces", 14, 0),
                                                        (E.WRONG_LENGTH, "ingest.faces", 14, 1)]


def test_on_error_raise_names_file_and_leaves_no_tables(sequence, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(PanopticFormatError, match=r"faceRecon3D_hd00000012\.json: invalid_json"):
        ingest_sequence(sequence.root, SEQ, out, on_error="raise")
    assert not out.exists() or list(out.iterdir()) == []


def test_on_error_raise_still_records_gaps(sequence, tmp_path):
    sequence.face_file(12).unlink()
    s = ingest_sequence(sequence.root, SEQ, tmp_path / "out", on_error="raise")
    assert s.rejections_by_reason == {E.MISSING_FRAME: 2, E.UNEXPECTED_FILE: 1}


def test_missing_requested_camera(sequence, tmp_path):
    with pytest.raises(PanopticFormatError, match=r"\['00_09'\] not in the calibration; available: "
                                                  r"\['00_00', '00_01', '00_02', '00_03'\]"):
        ingest_sequence(sequence.root, SEQ, tmp_path / "out", cameras=["00_01", "00_09"])
    s = ingest_sequence(sequence.root, SEQ, tmp_path / "out", cameras=["00_03", "00_01"])
    info = load_camera_info(tmp_path / "out" / "cameras.parquet")
    assert s.cameras == 2 and info.names == ("00_01", "00_03") and info.camera_index.tolist() == [1, 3]


def test_faces_only_sequence_ingests_fully(sequence, tmp_path):
    shutil.rmtree(sequence.body_dir)
    out = tmp_path / "out"
    s = ingest_sequence(sequence.root, SEQ, out)
    assert s.rows["faces3d"] == 10 and s.rows["bodies"] == 0 and not s.has_bodies
    assert pq.read_table(out / "bodies.parquet").num_rows == 0
    assert len(load_bodies(out / "bodies.parquet")) == 0


def test_real_bodies_with_gaps(tmp_path):
    """Real calibration and 3 real body files (170, 173, 179): 7 frames between are gaps."""
    lay = SequenceLayout(tmp_path, "160906_band1")
    lay.directory.mkdir()
    shutil.copy(DATA / "calibration_160906_band1_hd.json", lay.calibration)
    shutil.copytree(DATA / "hdPose3d_stage1_coco19", lay.body_dir)
    s = ingest_sequence(tmp_path, "160906_band1", tmp_path / "out")
    assert s.cameras == 31 and s.rows["faces3d"] == 0 and s.rows["bodies"] == 9
    assert s.rejections_by_reason == {E.MISSING_FRAME: 7} and not s.has_faces
    bodies = load_bodies(tmp_path / "out" / "bodies.parquet")
    assert bodies.frame.tolist() == [170] * 3 + [173] * 3 + [179] * 3
    assert np.isnan(bodies.joints[0, 8]).all() and bodies.confidence[0, 8] == -1


@pytest.mark.skipif(not (SAMPLE_ROOT / "160906_band1").is_dir(), reason="../shared/panoptic-sample absent")
def test_real_sample_sequence(tmp_path):
    s = ingest_sequence(SAMPLE_ROOT, "160906_band1", tmp_path / "out")
    assert s.cameras == 31 and s.rows["bodies"] == 60 and s.rejections == 0
    assert s.frame_range == (168, 187)


def test_invalid_arguments(sequence, tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        ingest_sequence(sequence.root, SEQ, tmp_path / "o", on_error="ignore")
    with pytest.raises(ValueError, match="cameras"):
        ingest_sequence(sequence.root, SEQ, tmp_path / "o", cameras="vga")
    with pytest.raises(FileNotFoundError, match="nope"):
        ingest_sequence(sequence.root, "nope", tmp_path / "o")


def test_a_calibration_missing_a_camera_is_named_in_the_rejection(sequence, tmp_path):
    """4 cameras 00_00..00_03 in the calibration; a face seen by camera index 5 names the
    cameras the calibration lacks (00_04, 00_05) instead of leaving the cause to guess."""
    from annotate.panoptic.ingest import missing_hd_cameras

    names = tuple(f"00_{i:02d}" for i in range(31) if i != 12)
    assert missing_hd_cameras(names, 30) == ["00_12"] and missing_hd_cameras(names, 11) == []
    face = make_face(3, 11)
    seen_by_5 = FacePerson(4, face.landmarks, face.score, face.repro_error, [[0, 5]] * 70)
    write_face_frame(sequence.face_file(11), [make_face(0, 11), seen_by_5])
    ingest_sequence(sequence.root, SEQ, tmp_path / "out")
    detail = [r["detail"] for r in read_table(tmp_path / "out" / "rejections.parquet", "rejections").to_pylist()
              if r["reason"] == E.BAD_VISIBILITY]
    assert len(detail) == 1 and "lacks HD cameras 00_04, 00_05" in detail[0]
