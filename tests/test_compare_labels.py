"""Other people's label files (WHENet, DirectMHP, opal23) read, matched to ours and compared."""
import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from annotate.audit import compare
from annotate.audit.external_labels import (read_directmhp_coco, read_opal_list, read_whenet_list,
                                            write_directmhp_coco, write_opal_list, write_whenet_list)
from annotate.geometry.rotations import euler_from_matrix, matrix_from_euler

ANGLES = np.array([[10.0, -20.0, 5.0], [170.0, 30.0, -10.0], [-100.0, -45.0, 60.0], [-179.0, 80.0, -85.0]])
SEQ, CAM = ["seq_a"] * 4, ["00_03", "00_03", "00_17", "00_30"]
FRAMES = [120, 120, 125, 8302]
BOXES = np.array([[100, 200, 180, 290], [400, 210, 470, 300], [900, 50, 1000, 160], [10, 20, 60, 75]], float)


def canonical(ypr):
    return np.degrees(euler_from_matrix(matrix_from_euler(*np.radians(np.asarray(ypr)).T)))


def test_whenet_list_round_trip_and_names(tmp_path):
    path = write_whenet_list(tmp_path / "annotation.txt", SEQ, CAM, FRAMES, [0, 1, 0, 2], ANGLES)
    assert path.read_text().splitlines()[0].startswith("seq_a/03_0_00000120.jpg,10.0,-20.0,5.0")
    ext = read_whenet_list(path)
    assert ext.camera == CAM and ext.frame.tolist() == FRAMES and ext.face_index.tolist() == [0, 1, 0, 2]
    np.testing.assert_allclose(ext.yaw_pitch_roll, canonical(ANGLES), atol=1e-9)
    assert np.isnan(ext.box).all() and ext.entry.tolist() == [1, 2, 3, 4]


def test_whenet_list_variants_and_other_datasets(tmp_path):
    path = tmp_path / "combine_train.txt"
    path.write_text("PANOPTIC/170407_haggling_a1/05_1_00001230.jpg,10,2,3\n"
                    "170407_haggling_a1/05_1_12_00001230.jpg,10,2,3\n"       # the variant with a visibility count
                    "300W/AFW/AFW_1051618982_1_0.jpg,1,2,3\n\n")
    ext = read_whenet_list(path)
    assert ext.sequence[:2] == ["170407_haggling_a1"] * 2 and ext.camera[:2] == ["00_05"] * 2
    assert ext.face_index[:2].tolist() == [1, 1] and ext.frame[:2].tolist() == [1230, 1230]
    assert ext.problem == ["", "", "not_panoptic"]


@pytest.mark.parametrize("text, message", [("seq/00_0_00000001.jpg,1,2\n", ":1: expected"),
                                           ("seq/00_0_00000001.jpg,1,x,3\n", ":1: expected numbers"),
                                           ("../00_0_00000001.jpg,1,2,3\n", "not a plain name")])
def test_whenet_list_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_whenet_list(path)


def test_opal_list_reads_as_opal_reads_it(tmp_path):
    """opal's Panoptic loader makes Rotation.from_euler('XYZ', [pitch, yaw, roll]); that is
    D @ R_cam_head @ diag(1, -1, -1) @ D (D = diag(1, 1, -1)) of the rotation we read."""
    path = write_opal_list(tmp_path / "panoptic_ann_test.txt", SEQ, CAM, FRAMES, BOXES, ANGLES)
    lines = path.read_text().splitlines()
    assert lines[0] == "#;image;x_min;y_min;w;h;yaw;pitch;roll"
    assert lines[1].startswith("seq_a/hdImgs/00_03/00_03_00000120.jpg;100;200;80;90;-10.0;-20.0;5.0")
    ext = read_opal_list(path)
    D, F = np.diag([1.0, 1, -1]), np.diag([1.0, -1, -1])
    for line, R in zip(lines[1:], ext.R_cam_head):
        parts = line.split(";")
        opal = Rotation.from_euler("XYZ", [float(parts[6]), float(parts[5]), float(parts[7])], degrees=True).as_matrix()
        np.testing.assert_allclose(opal, D @ R @ F @ D, atol=1e-12)
    np.testing.assert_allclose(ext.yaw_pitch_roll, canonical(ANGLES), atol=1e-9)
    np.testing.assert_allclose(ext.box, BOXES)
    assert ext.camera == CAM and ext.frame.tolist() == FRAMES


def test_directmhp_coco_round_trip_and_ids(tmp_path):
    path = write_directmhp_coco(tmp_path / "coco_style_sampled_val.json", SEQ, CAM, FRAMES, BOXES, ANGLES)
    doc = json.loads(path.read_text())
    assert [i["id"] for i in doc["images"]] == [10100012003, 10100012517, 10100830230]
    assert [a["id"] for a in doc["annotations"]] == [1010001200300, 1010001200301, 1010001251700, 1010083023000]
    assert doc["annotations"][0]["euler_angles"] == [-20.0, 10.0, 5.0]            # [pitch, yaw, roll]
    ext = read_directmhp_coco(path)
    assert ext.camera == CAM and ext.frame.tolist() == FRAMES and ext.sequence == SEQ
    np.testing.assert_allclose(ext.yaw_pitch_roll, canonical(ANGLES), atol=1e-9)
    np.testing.assert_allclose(ext.box, BOXES)


def test_directmhp_coco_without_sequence_or_pose(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"images": [{"id": 10100012003, "file_name": "10100012003.jpg"}], "annotations": []}))
    with pytest.raises(ValueError, match="image 10100012003 has no 'seq'"):
        read_directmhp_coco(path)
    path.write_text(json.dumps({"images": [{"id": 10100012003, "seq": "s"}], "annotations": [
        {"id": 7, "image_id": 10100012003, "bbox": [1, 2, 3, 4], "iscrowd": 1}]}))
    assert read_directmhp_coco(path).problem == ["no_pose"]


def test_box_matching_is_one_to_one_nearest_first():
    ours = np.array([[0, 0, 100, 100], [90, 0, 190, 100]], float)
    theirs = np.array([[95, -10, 205, 110], [-15, -15, 115, 115], [400, 400, 450, 450]], float)
    match, overlap = compare.match_boxes(theirs, ours, 0.5)
    assert match.tolist() == [1, 0, -1] and overlap[:2] == pytest.approx([0.95, 1.0]) and np.isnan(overlap[2])
    # larger helmets: IoU would be ~0.59 here, intersection over the smaller box is 1
    assert compare.box_overlap(theirs[1:2], ours[:1])[0, 0] == pytest.approx(1.0)


def _ours(rows):
    keys = pd.DataFrame(rows, columns=["sequence", "frame", "person", "camera", "valid"])
    ypr = np.array([[0.0, 0, 0], [90.0, 0, 0], [-30.0, 10, 0]])
    return compare.OurLabels(keys, ypr, matrix_from_euler(*np.radians(ypr).T), BOXES[:3].copy())


def test_verdicts_combine_disagreement_and_our_audit(tmp_path):
    ours = _ours([("seq_a", 120, 0, "00_03", True), ("seq_a", 120, 1, "00_03", True),
                  ("seq_a", 125, 4, "00_17", False)])
    other = np.array([[2.0, 1, 0], [90.0, 0, 12], [0.0, 10, 0], [5.0, 5, 5]])
    path = write_opal_list(tmp_path / "o.txt", ["seq_a", "seq_a", "seq_a", "seq_b"], ["00_03", "00_03", "00_17", "00_03"],
                           [120, 120, 125, 120], BOXES[[0, 1, 2, 0]] + 3, other)
    flags = pd.DataFrame({"sequence": ["seq_a"], "frame": [120], "person": [1], "camera": ["00_03"],
                          "reason": ["angular_speed"], "value": [1.0], "threshold": [0.5], "detail": [""]})
    table = compare.compare_labels(read_opal_list(path), ours, flags)
    assert table["match"].tolist() == ["matched", "matched", "matched", "no_sequence"]
    assert table["person"].tolist() == [0, 1, 4, -1]
    assert table["verdict"].tolist() == ["agree", "disagree_flagged", "disagree_flagged", "unmatched"]
    assert table["audit_reasons"].tolist() == ["", "angular_speed", "", ""]
    assert table["valid"].tolist() == [True, True, False, False]
    assert table.loc[1, "roll_diff"] == pytest.approx(12.0) and table.loc[2, "yaw_diff"] == pytest.approx(30.0)
    assert table.loc[1, "geodesic_deg"] == pytest.approx(12.0)
    compare.write_comparison(table, tmp_path / "label_comparison.parquet")           # follows its schema
    summary = compare.comparison_summary(table, compare.CompareConfig())
    assert summary["sources"][str(path)]["verdict"] == {"agree": 1, "other_view_error": 0, "disagree_flagged": 2,
                                                       "disagree_unflagged": 0, "unmatched": 1}


def test_one_wrong_view_stands_out_from_its_face(tmp_path):
    """Five views of one head labelled from one 3D pose by both: the other labeller's head
    is 7 deg off ours in every view (a face-level disagreement); one view also has its pitch
    10 deg off (a view mistake), which the view residual isolates."""
    rng = np.random.default_rng(3)
    R_world_head = Rotation.from_euler("xyz", [10, 40, -5], degrees=True).as_matrix()
    offset = Rotation.from_rotvec(np.radians(7.0) * np.array([0.6, 0.8, 0.0])).as_matrix()
    R_cam_world = Rotation.random(5, random_state=4).as_matrix()
    ours_R = R_cam_world @ R_world_head
    theirs = np.degrees(euler_from_matrix(ours_R @ offset))
    theirs[2, 1] += 10.0
    cams = [f"00_{c:02d}" for c in range(5)]
    keys = pd.DataFrame({"sequence": "s", "frame": 4, "person": 2, "camera": cams, "valid": True})
    boxes = np.tile([100.0, 100, 200, 200], (5, 1)) + rng.uniform(-3, 3, (5, 4))
    ours = compare.OurLabels(keys, np.degrees(euler_from_matrix(ours_R)), ours_R, boxes)
    path = write_opal_list(tmp_path / "o.txt", ["s"] * 5, cams, [4] * 5, boxes, theirs)
    table = compare.compare_labels(read_opal_list(path), ours, None)
    assert table["face_offset_deg"].to_numpy() == pytest.approx(np.full(5, 7.0), abs=1e-6)
    assert table["view_residual_deg"].to_numpy() == pytest.approx([0, 0, 10, 0, 0], abs=1e-6)
    assert table["verdict"].tolist() == ["disagree_unflagged"] * 2 + ["other_view_error"] + ["disagree_unflagged"] * 2
    table = compare.compare_labels(read_opal_list(path), ours, None, cfg=compare.CompareConfig(threshold_deg=8))
    assert table["verdict"].tolist() == ["agree"] * 2 + ["other_view_error"] + ["agree"] * 2


@pytest.mark.slow
def test_compare_labels_command_finds_injected_errors(tmp_path):
    """A synthetic sequence labelled and audited; WHENet's labelling of its own files written
    as the three formats, with flipped yaws, swapped people and 10 deg pitch errors injected:
    ``annotate compare-labels`` finds every one, and calls no clean label a view mistake."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from other_labels import inject_errors, untidy_face_files, whenet_style_labels
    from workflow_runs import label_and_audit

    from annotate.cli import main as cli_main
    from annotate.config import resolve_config
    from annotate.stages.synth import run as run_synth

    seq = "synth_000"
    run_synth(resolve_config({"synthetic": {"num_frames": 24, "num_cameras": 6, "num_people": 3,
                                            "render_video": False}}), tmp_path / "src", seq)
    untidy_face_files(tmp_path / "src" / seq)
    label_and_audit({"audit": {"detections": False, "video_sync": False, "contact_sheet_size": 0}},
                    tmp_path / "src", seq, tmp_path / "results")
    rows = whenet_style_labels(tmp_path / "src" / seq, seq, tmp_path / "results" / seq / "labels" / "labels.parquet")
    assert (rows["face_index"] != rows["person"]).any()                 # k is not the person id
    rows = inject_errors(rows, 6, seed=1, min_swap_deg=10.0)
    ypr = rows[["yaw", "pitch", "roll"]].to_numpy()
    box = np.stack(rows["box"].to_numpy())
    assert np.isfinite(box).all()
    write_whenet_list(tmp_path / "annotation.txt", rows["sequence"], rows["camera"], rows["frame"], rows["face_index"], ypr)
    write_directmhp_coco(tmp_path / "val.json", rows["sequence"], rows["camera"], rows["frame"], box, ypr)
    write_opal_list(tmp_path / "ann.txt", rows["sequence"], rows["camera"], rows["frame"], box, ypr)
    assert cli_main(["compare-labels", "--whenet", str(tmp_path / "annotation.txt"), "--directmhp",
                     str(tmp_path / "val.json"), "--opal", str(tmp_path / "ann.txt"),
                     "--results", str(tmp_path / "results")]) == 0
    audit = tmp_path / "results" / "audit"
    table = pd.read_parquet(audit / "label_comparison.parquet")
    html = (audit / "label_comparison.html").read_text()
    assert "<script" not in html and "annotation.txt" in html
    summary = json.loads((audit / "label_comparison.json").read_text())
    injected = rows["injected"].to_numpy()
    for source, t in table.groupby("source", sort=False, observed=True):
        assert (t["match"] == "matched").all() and (t["person"].to_numpy() == rows["person"].to_numpy()).all()
        found = t["disagrees"].to_numpy()
        assert found[injected != ""].all() and (injected != "").sum() == 24
        assert not (t["verdict"].to_numpy()[injected == ""] == "other_view_error").any()
        assert (t["verdict"].to_numpy()[injected == "flip_yaw"] == "other_view_error").all()
        assert summary["sources"][source]["entries"] == len(rows)
    # The audit runs the same comparison when the config names the files; its report shows it.
    from annotate.stages import audit as audit_stage

    cfg = resolve_config({"results": str(tmp_path / "results"), "audit": {
        "detections": False, "video_sync": False, "contact_sheet_size": 0,
        "compare_labels": {"files": [{"path": str(tmp_path / "annotation.txt"), "format": "whenet"}]}}})
    audit_stage.run(cfg, tmp_path / "results", [seq], audit)
    report = (audit / "report.html").read_text()
    assert 'id="other_labels"' in report and "annotation.txt" in report and "other_view_error" in report
    assert set(pd.read_parquet(audit / "label_comparison.parquet")["format"]) == {"whenet"}
