"""The audit end to end on a small synthetic sequence: clean, then with injected faults."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from annotate.synth import faults
from annotate.cli import main as cli_main
from annotate.config import resolve_config
from workflow_runs import label_and_audit
from annotate.stages.synth import run as run_synth

pytestmark = pytest.mark.slow            # end to end: tens of seconds

SEQ = "synth_000"
SMALL = {"synthetic": {"num_frames": 36, "num_cameras": 8, "num_people": 3, "image_size": [960, 540]},
         "audit": {"contact_sheet_size": 4}}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit_source")
    run_synth(resolve_config(SMALL), root, SEQ)
    return root / SEQ


def audited(source, tmp_path, fault=None):
    """Copy the sequence, apply ``fault(seq_dir) -> manifest``, label and audit it."""
    faults.copy_sequence(source, tmp_path / "seq", SEQ)
    manifest = fault(tmp_path / "seq" / SEQ) if fault else None
    result = label_and_audit(SMALL, tmp_path / "seq", SEQ, tmp_path / "results")
    return result, manifest


@pytest.fixture(scope="module")
def clean(source, tmp_path_factory):
    work = tmp_path_factory.mktemp("clean")
    return audited(source, work)[0], work


def clean_dir(clean):
    return clean[1] / "results" / "audit"


def test_clean_sequence_passes_with_every_check_run(clean):
    result, _ = clean
    assert result.passed, result.flags.groupby("reason").size()
    assert result.samples["flagged"].mean() <= 0.01
    assert all(m["passed"] is not None for m in result.metrics["checks"].values())   # every check ran
    assert result.metrics["checks"]["crosscheck"]["measured"] > 0
    assert (result.cameras["sync_lag_frames"] == 0).all()


def test_outputs_follow_their_schemas(clean):
    result, _ = clean
    audit_dir = clean_dir(clean)
    for name, schema in (("samples", "audit_samples"), ("flags", "audit_flags"), ("cameras", "audit_cameras")):
        assert pq.read_schema(audit_dir / f"{name}.parquet").metadata[b"schema_name"] == schema.encode()
    samples = pq.read_table(audit_dir / "samples.parquet").to_pandas()
    labels = pq.read_table(audit_dir.parent / SEQ / "labels" / "labels.parquet", columns=["frame"])
    assert len(samples) == labels.num_rows == result.metrics["counts"]["labels"]
    assert not samples[["sequence", "frame", "person", "camera"]].duplicated().any()
    assert json.loads((audit_dir / "metrics.json").read_text())["passed"] is True


def test_garbage_faces_are_flagged(source, tmp_path):
    rng = np.random.default_rng(0)
    result, manifest = audited(source, tmp_path, lambda d: faults.garbage_landmarks(d, [5, 17, 29], [1], rng))
    faulty = manifest.label_mask(result.samples)
    flagged = result.samples["flagged"].to_numpy()
    assert faulty.sum() > 0 and flagged[faulty].all()
    assert flagged[~faulty].mean() <= 0.01
    assert not result.passed                      # 3 of 36 frames of one person: more than 2% rejected fits


def test_rotated_camera_is_flagged_and_strict_cli_fails(source, tmp_path):
    camera = "00_03"
    result, manifest = audited(source, tmp_path, lambda d: faults.rotate_camera(d, camera, 3.0))
    faulty = manifest.label_mask(result.samples)
    flagged = result.samples["flagged"].to_numpy()
    # With 8 cameras the bad one also spoils some triangulated faces, which the cross-check
    # then flags (their published labels are fine): count the other reasons.
    not_crosscheck = result.samples["reasons"].str.replace("crosscheck", "").str.strip(",") != ""
    assert flagged[faulty].mean() >= 0.95 and (flagged & not_crosscheck)[~faulty].mean() <= 0.01
    assert result.cameras.set_index("camera").loc[camera, "flagged"]
    assert result.metrics["cameras_flagged"] == [f"{SEQ}/{camera}"]
    # The CLI on the same results folder: --strict makes the failed check an exit status of 1.
    results = tmp_path / "results"
    args = ["audit", "--results", str(results), "--sequences", SEQ, "--out", str(tmp_path / "again"),
            "--root", str(tmp_path / "seq")]
    assert cli_main(args) == 0
    assert cli_main(args + ["--strict"]) == 1
    metrics = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert metrics["checks"]["camera_reprojection"]["passed"] is False
    flags = pq.read_table(tmp_path / "again" / "flags.parquet")
    assert flags.schema.metadata[b"schema_name"] == b"audit_flags"
    assert (tmp_path / "again" / "report.html").stat().st_size > 10_000


def test_shifted_video_is_found(source, tmp_path):
    camera = "00_05"
    result, _ = audited(source, tmp_path, lambda d: faults.shift_video(d, camera, 3))
    row = result.cameras.set_index("camera").loc[camera]
    assert row["sync_lag_frames"] == 3 and row["flagged"]
    others = result.cameras[result.cameras["camera"] != camera]
    assert (others["sync_lag_frames"] == 0).all() and not others["flagged"].any()
    # The remedy the report names: that camera's ingest.frame_offsets lowered by the lag.
    fixed = label_and_audit({**SMALL, "ingest": {"frame_offsets": {SEQ: {camera: -3}}}}, tmp_path / "seq", SEQ,
                            tmp_path / "fixed")
    assert (fixed.cameras["sync_lag_frames"] == 0).all() and not fixed.cameras["flagged"].any()
    assert "ingest.frame_offsets" in (tmp_path / "results" / "audit" / "report.html").read_text()
