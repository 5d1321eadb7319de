"""The frame readers' orjson fast path gives exactly what the standard-``json`` reader gives.

``faces.read_face_frame`` / ``bodies.read_body_frame`` parse a file with orjson and accept it
when every identified person is plainly valid; anything else goes to the exact reader
(``_read_face_frame_exact`` / ``_read_body_frame_exact``: ``json`` + per-person checks). These
tests feed both the same files, clean and broken in many ways (values orjson reads
differently included: integers beyond 64 bits, booleans, C++ ``nan`` tokens, ``1e400``), and
require identical people, arrays, rejections and exceptions; then an ingest of a broken
sequence through both paths must write the same tables.
"""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from annotate.panoptic import bodies as B
from annotate.panoptic import faces as F
from annotate.panoptic.calibration import write_calibration
from annotate.panoptic.ingest import TABLE_FILES, ingest_sequence
from annotate.panoptic.layout import BODY_FILE, FACE_FILE, SequenceLayout

SEQ = "fuzz"
CALIB = Path(__file__).parent / "data" / "calibration_160906_band1_hd.json"


# --- documents ---------------------------------------------------------------------------------
def face_person(pid: int, rng: np.random.Generator) -> dict:
    landmarks = rng.normal([10.0, -160.0, 20.0], 5.0, size=(70, 3))
    score = rng.uniform(0.2, 0.9, 70)
    landmarks[68:] = 0.0                                  # two missing landmarks, score 0
    score[68:] = 0.0
    return {"id": pid, "face70": {
        "landmarks": landmarks.reshape(-1).tolist(), "averageScore": score.tolist(),
        "averageReproError": rng.uniform(0.5, 4.0, 70).tolist(),
        "visibility": [sorted(rng.choice(31, size=int(rng.integers(0, 6)), replace=False).tolist())
                       for _ in range(70)]}}


def body(pid: int, rng: np.random.Generator) -> dict:
    joints = np.concatenate([rng.normal([0.0, -120.0, 0.0], 30.0, size=(19, 3)),
                             rng.uniform(0.1, 0.9, (19, 1))], axis=1)
    joints[8] = (0.0, 0.0, 0.0, -1.0)                    # a missing joint
    joints[3, 3] = -1.0                                   # flagged, coordinates kept
    return {"id": pid, "joints19": joints.reshape(-1).tolist()}


# Mutations: (name, function(doc, rng) -> doc). Values chosen where orjson and json differ or
# where a check sits on its boundary.
ODD_NUMBERS = [True, False, None, "1", 2 ** 63, 2 ** 64, 2 ** 70, -(2 ** 63) - 1, 1e30, -1e30, 1.5, 1e4, -1e4,
               10000.000001, 0, -0.0, [1.0], {}, float("nan"), float("inf")]
ODD_CAMERAS = [True, 1.0, "2", None, -1, 31, 32767, 32768, 2 ** 63, 2 ** 64, [1], {}]


def _people(doc):
    return doc.get("people") if isinstance(doc, dict) and isinstance(doc.get("people"), list) else []


def _face_mutation(doc, rng):
    people = [p for p in _people(doc) if isinstance(p, dict) and isinstance(p.get("face70"), dict)]
    kind = int(rng.integers(12))
    if not people:
        return doc
    p = people[int(rng.integers(len(people)))]
    face = p["face70"]
    key = ["landmarks", "averageScore", "averageReproError"][int(rng.integers(3))]
    if kind <= 3 and isinstance(face.get(key), list) and face[key]:
        face[key][int(rng.integers(len(face[key])))] = ODD_NUMBERS[int(rng.integers(len(ODD_NUMBERS)))]
    elif kind == 4 and isinstance(face.get(key), list):
        face[key] = face[key][:-1] if rng.random() < 0.5 else [face[key]]
    elif kind == 5 and isinstance(face.get("visibility"), list) and face["visibility"]:
        i = int(rng.integers(len(face["visibility"])))
        if rng.random() < 0.3:
            face["visibility"][i] = ODD_CAMERAS[int(rng.integers(len(ODD_CAMERAS)))]
        elif isinstance(face["visibility"][i], list):
            face["visibility"][i] = face["visibility"][i] + [ODD_CAMERAS[int(rng.integers(len(ODD_CAMERAS)))]]
    elif kind == 6:
        p["id"] = [-1, -7, "3", True, 2 ** 70, 1.0, None, 0][int(rng.integers(8))]
    elif kind == 7:
        p["id"] = _people(doc)[0].get("id") if isinstance(_people(doc)[0], dict) else 0   # duplicate id
    elif kind == 8:
        face.pop(["landmarks", "averageScore", "averageReproError", "visibility"][int(rng.integers(4))])
    elif kind == 9:
        p.pop("face70")
        if rng.random() < 0.5:
            p["face_coco"] = {}
    elif kind == 10:
        i = int(rng.integers(68))                          # a landmark at (0, 0, 0) with a negative score
        face["landmarks"][3 * i:3 * i + 3] = [0, 0.0, 0]
        face["averageScore"][i] = -0.5 if rng.random() < 0.5 else 0.0
    else:
        doc = [doc, {"people": {}}, {"version": 0.5}, {"people": [1, 2]}, {"people": None}][int(rng.integers(5))]
    return doc


def _body_mutation(doc, rng):
    kind = int(rng.integers(10))
    bodies = [b for b in doc.get("bodies", []) if isinstance(b, dict)] if isinstance(doc, dict) else []
    if kind <= 3 and bodies and isinstance(bodies[0].get("joints19"), list):
        b = bodies[int(rng.integers(len(bodies)))]
        b["joints19"][int(rng.integers(76))] = ODD_NUMBERS[int(rng.integers(len(ODD_NUMBERS)))]
    elif kind == 4 and bodies:
        b = bodies[int(rng.integers(len(bodies)))]
        b["id"] = [-1, "3", True, 2 ** 70, 1.0, None, bodies[0].get("id")][int(rng.integers(7))]
    elif kind == 5 and bodies:
        bodies[0]["joints19"] = bodies[0]["joints19"][:-4] if rng.random() < 0.5 else {}
    elif kind == 6 and isinstance(doc, dict):
        doc["univTime"] = [None, True, "x", 2 ** 64, 2 ** 63, 12, -5.5, 1e30][int(rng.integers(8))]
    elif kind == 7 and isinstance(doc, dict):
        doc["version"] = [None, True, "0.7", 2 ** 70, 1][int(rng.integers(5))]
        if rng.random() < 0.5:
            doc.pop("univTime", None)
    elif kind == 8 and isinstance(doc, dict):
        doc["fpsType"] = [None, 5, "hd"][int(rng.integers(3))]
    elif kind == 9 and bodies:
        b = bodies[0]
        b["joints19"][3:4] = [[-2.0, 1.6, -1, 1.5000001][int(rng.integers(4))]]
        b.pop("joints19") if rng.random() < 0.2 else None
    return doc


TEXT_EDITS = [
    lambda t: t,
    lambda t: t.replace("]", ", nan]", 1),               # Panoptic's C++ tokens
    lambda t: t.replace("[", "[-nan, ", 1),
    lambda t: t.replace(", ", ", inf, ", 1),
    lambda t: t.replace(", ", ", 1e400, ", 1),
    lambda t: t.replace(", ", ", NaN, ", 1),
    lambda t: "\ufeff" + t,                              # a BOM
    lambda t: t[: len(t) // 2],                           # truncated
    lambda t: "",
    lambda t: t.replace(", ", ",\r\n", 3),
    lambda t: t.replace('{"id": ', '{"id": 99, "id": ', 1),   # a repeated key (the last one wins)
    lambda t: t.replace(", ", ', "\\ud800", ', 1),      # a lone surrogate
]


def _write(path: Path, doc, rng) -> Path:
    text = json.dumps(doc) if not isinstance(doc, str) else doc
    edit = TEXT_EDITS[int(rng.integers(len(TEXT_EDITS)))] if rng.random() < 0.3 else TEXT_EDITS[0]
    path.write_bytes(edit(text).encode("utf-8", errors="surrogatepass"))
    return path


# --- comparison -------------------------------------------------------------------------------
def _outcome(read):
    try:
        return "ok", read()
    except Exception as err:                              # the exact reader may raise: so must the fast one
        return "raised", (type(err), str(err))


def _same_array(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def assert_same_faces(fast, exact):
    assert fast[0] == exact[0], (fast, exact)
    if fast[0] == "raised":
        assert fast[1] == exact[1]
        return
    a, b = fast[1], exact[1]
    assert (a.file, a.frame, a.rejections) == (b.file, b.frame, b.rejections)
    assert [p.id for p in a.people] == [p.id for p in b.people]
    for p, q in zip(a.people, b.people):
        assert _same_array(p.landmarks, q.landmarks) and _same_array(p.score, q.score)
        assert _same_array(p.repro_error, q.repro_error)
        assert p.visibility == q.visibility and p.negative_scores == q.negative_scores
        assert p.max_camera_index == q.max_camera_index


def assert_same_bodies(fast, exact):
    assert fast[0] == exact[0], (fast, exact)
    if fast[0] == "raised":
        assert fast[1] == exact[1]
        return
    a, b = fast[1], exact[1]
    assert (a.file, a.frame, a.rejections, a.fps_type) == (b.file, b.frame, b.rejections, b.fps_type)
    assert type(a.version) is type(b.version) and a.version == b.version
    assert (math.isnan(a.univ_time) and math.isnan(b.univ_time)) or a.univ_time == b.univ_time
    assert [x.id for x in a.bodies] == [x.id for x in b.bodies]
    for x, y in zip(a.bodies, b.bodies):
        assert _same_array(x.joints, y.joints) and _same_array(x.confidence, y.confidence)


# --- tests ------------------------------------------------------------------------------------
def test_clean_files_take_the_fast_path(tmp_path):
    rng = np.random.default_rng(0)
    doc = {"version": 0.5, "people": [face_person(0, rng), face_person(3, rng), dict(face_person(-1, rng))]}
    path = _write(tmp_path / FACE_FILE.name(4), doc, np.random.default_rng(99))
    frame = F.read_face_frame(path, sequence=SEQ)
    assert [p.id for p in frame.people] == [0, 3]
    assert all(p.visibility_arrays is not None for p in frame.people)        # read by the fast path
    assert [r.reason for r in frame.rejections] == ["unidentified_person"]
    assert_same_faces(("ok", frame), _outcome(lambda: F._read_face_frame_exact(path, 4, SEQ, F.STAGE)))
    counts, cams = frame.people[0].visibility_arrays
    assert counts.tolist() == [len(v) for v in frame.people[0].visibility]
    assert cams.tolist() == [c for v in frame.people[0].visibility for c in v]

    bpath = _write(tmp_path / BODY_FILE.name(4), {"version": 0.7, "univTime": 1.5, "fpsType": "hd_29_97",
                                                  "bodies": [body(0, rng), body(2, rng)]}, np.random.default_rng(99))
    assert_same_bodies(_outcome(lambda: B.read_body_frame(bpath)),
                       _outcome(lambda: B._read_body_frame_exact(bpath, 4, "", B.STAGE)))


@pytest.mark.parametrize("seed", range(6))
def test_fuzzed_face_files_read_as_the_exact_reader_reads_them(tmp_path, seed):
    rng = np.random.default_rng(seed)
    for k in range(60):
        doc = {"version": 0.5, "people": [face_person(int(i), rng) for i in rng.permutation(4)[:int(rng.integers(0, 4))]]}
        for _ in range(int(rng.integers(0, 3))):
            doc = _face_mutation(copy.deepcopy(doc), rng)
        path = _write(tmp_path / FACE_FILE.name(k), doc, rng)
        fast = _outcome(lambda: F.read_face_frame(path, sequence=SEQ))
        exact = _outcome(lambda: F._read_face_frame_exact(path, k, SEQ, F.STAGE))
        assert_same_faces(fast, exact)


@pytest.mark.parametrize("seed", range(6))
def test_fuzzed_body_files_read_as_the_exact_reader_reads_them(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    for k in range(60):
        doc = {"version": 0.7, "univTime": float(rng.uniform(0, 1e5)), "fpsType": "hd_29_97",
               "bodies": [body(int(i), rng) for i in rng.permutation(4)[:int(rng.integers(0, 4))]]}
        for _ in range(int(rng.integers(0, 3))):
            doc = _body_mutation(copy.deepcopy(doc), rng)
        path = _write(tmp_path / BODY_FILE.name(k), doc, rng)
        fast = _outcome(lambda: B.read_body_frame(path, sequence=SEQ))
        exact = _outcome(lambda: B._read_body_frame_exact(path, k, SEQ, B.STAGE))
        assert_same_bodies(fast, exact)


def _broken_sequence(root: Path) -> None:
    from annotate.panoptic.calibration import read_calibration

    lay = SequenceLayout(root, SEQ)
    lay.face_dir.mkdir(parents=True)
    lay.body_dir.mkdir(parents=True)
    write_calibration(lay.calibration, read_calibration(CALIB))             # the real 31 HD cameras
    rng = np.random.default_rng(7)
    for f in range(40):
        if f == 17:
            continue                                     # a gap
        doc = {"version": 0.5, "people": [face_person(i, rng) for i in range(3)]}
        if f % 5 == 1:
            doc = _face_mutation(doc, rng)
        if f == 9:
            doc["people"][0]["face70"]["visibility"][3] = [0, 31]    # a camera the rig lacks (31 HD)
        _write(lay.face_file(f), doc, rng if f % 7 == 3 else np.random.default_rng(0))
        bdoc = {"version": 0.7, "univTime": 1000.0 + f, "fpsType": "hd_29_97", "bodies": [body(i, rng) for i in range(3)]}
        if f % 6 == 2:
            bdoc = _body_mutation(bdoc, rng)
        if f != 30:
            _write(lay.body_file(f), bdoc, np.random.default_rng(0))
    (lay.face_dir / "notes.txt").write_text("x")


def test_ingest_tables_match_the_exact_readers(tmp_path, monkeypatch):
    _broken_sequence(tmp_path / "root")
    fast = ingest_sequence(tmp_path / "root", SEQ, tmp_path / "fast")
    import annotate.panoptic.layout as L

    monkeypatch.setattr(L, "read_json_fast", lambda path: None)   # every file through json
    exact = ingest_sequence(tmp_path / "root", SEQ, tmp_path / "exact")
    assert fast.rejections_by_reason == exact.rejections_by_reason and fast.rows == exact.rows
    assert fast.negative_scores == exact.negative_scores
    assert fast.rejections > 5 and fast.rows["faces3d"] > 50
    for name, file in TABLE_FILES.items():
        a, b = pq.read_table(tmp_path / "fast" / file), pq.read_table(tmp_path / "exact" / file)
        assert a.schema.equals(b.schema, check_metadata=True), name
        assert str(a.to_pylist()) == str(b.to_pylist()), name                # str: NaN == NaN
        assert (tmp_path / "fast" / file).read_bytes() == (tmp_path / "exact" / file).read_bytes(), name


def test_cli_start_up_imports_no_heavy_package():
    code = ("import sys, annotate.cli; print(sorted(m for m in ('pandas', 'torch', 'matplotlib', 'snakemake', "
            "'open3d') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
