"""The Snakemake workflow end to end on a tiny synthetic config, in a temporary directory."""
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.slow            # end to end: tens of seconds

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "results": "results",
    "synthetic": {"num_frames": 4, "num_cameras": 4, "num_people": 2, "image_size": [640, 360],
                  "render_video": True},
    # The embedded default trains; 2 people in 4 frames have no test split to evaluate on.
    "train": {"in_default_run": False},
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("workflow")
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    run = snakemake(work, "--configfile", str(work / "tiny.yaml"), "--cores", "2")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return work


def test_workflow_builds_labels_from_the_synthetic_sequence(workflow_run):
    res = workflow_run / "results"
    seq = res / "synthetic" / "synth_000"
    assert (seq / "calibration_synth_000.json").is_file()
    assert sorted(p.name for p in (seq / "hdVideos").iterdir()) == [f"hd_00_{i:02d}.mp4" for i in range(4)]
    assert (res / "head_model.json").is_file()
    for table in ("cameras", "faces3d", "bodies", "rejections"):
        assert pq.read_schema(res / "synth_000" / "ingest" / f"{table}.parquet").metadata[b"schema_name"] == table.encode()
    faces = pq.read_table(res / "synth_000" / "ingest" / "faces3d.parquet")
    labels = pq.read_table(res / "synth_000" / "labels" / "labels.parquet")
    assert labels.num_rows == 4 * faces.num_rows > 0
    assert (res / "synth_000" / "labels" / "summary.json").is_file()
    assert (res / "logs" / "label" / "synth_000.log").read_text().strip()


def test_workflow_builds_the_dataset_card_and_exports(workflow_run):
    import json

    ds = workflow_run / "results" / "dataset"
    card = json.loads((ds / "card.json").read_text())
    index = json.loads((ds / "index.json").read_text())
    labels = pq.read_table(workflow_run / "results" / "synth_000" / "labels" / "labels.parquet",
                           columns=["reject_reason"]).column("reject_reason").to_pylist()
    assert card["samples"] == sum(s["rows"] for s in index["shards"]) == labels.count("") > 0
    for shard in index["shards"]:
        assert pq.read_schema(ds / shard["path"]).metadata[b"schema_name"] == b"samples"
    assert (ds / "card.md").is_file() and (ds / "rejections.parquet").is_file()
    splits = list(card["splits"])
    assert sum((ds / "exports" / "whenet" / f"{s}.txt").read_text().count("\n") for s in splits) == card["samples"]
    assert all((ds / "exports" / "300wlp" / f"{s}_filenames.txt").is_file() for s in splits)
    coco = json.loads((ds / "exports" / "coco" / f"{splits[0]}.json").read_text())
    assert coco["annotations"] and all((ds / "exports" / "coco" / "images" / splits[0] / i["file_name"]).is_file()
                                       for i in coco["images"])
    assert (workflow_run / "results" / "logs" / "dataset_shards" / "synth_000.log").read_text().strip()


def test_workflow_writes_the_audit(workflow_run):
    import json

    audit = workflow_run / "results" / "audit"
    metrics = json.loads((audit / "metrics.json").read_text())
    samples = pq.read_table(audit / "samples.parquet")
    labels = pq.read_table(workflow_run / "results" / "synth_000" / "labels" / "labels.parquet", columns=["frame"])
    assert samples.num_rows == labels.num_rows == metrics["counts"]["labels"]
    assert samples.schema.metadata[b"schema_name"] == b"audit_samples"
    # The detections came from the triangulate rule, so the per-view check ran.
    assert (workflow_run / "results" / "synth_000" / "triangulate" / "detections2d.parquet").is_file()
    assert metrics["checks"]["reprojection"]["measured"] > 0
    assert "<img" in (audit / "report.html").read_text()
    # 4 frames are too few to estimate a video lag: not run rather than a guess.
    assert metrics["checks"]["video_sync"]["passed"] is None


def test_second_run_has_nothing_to_do(workflow_run):
    run = snakemake(workflow_run, "--configfile", str(workflow_run / "tiny.yaml"), "--cores", "2", "-n")
    assert run.returncode == 0
    assert "Nothing to be done" in run.stdout + run.stderr


def planned_rules(workdir: Path, config: dict) -> set[str]:
    """The rules a dry run would run with ``config``."""
    (workdir / "changed.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(workdir, "--configfile", str(workdir / "changed.yaml"), "--cores", "2", "-n", "--quiet", "rules")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    text = run.stdout + run.stderr
    if "Nothing to be done" in text:
        return set()
    stats = text.split("Job stats:", 1)[1].splitlines()
    return {line.split()[0] for line in stats[3:] if line.split() and line.split()[0] not in ("total", "job", "---")}


DOWNSTREAM_OF_LABELS = {"label", "dataset_plan", "dataset_shards", "dataset_card", "audit_report"}


@pytest.mark.parametrize("section, key, value, reruns, keeps", [
    ("synthetic", "seed", 7, {"synth", "ingest", "head_model", "label"}, set()),
    ("ingest", "frame_step", 2, {"ingest", "head_model", "label"}, {"synth"}),
    ("head_model", "helmet_radius_cm", 11.0, {"head_model", "label"}, {"synth", "ingest"}),
    ("fit", "max_rms_cm", 0.05, DOWNSTREAM_OF_LABELS, {"synth", "ingest", "head_model"}),
    ("views", "min_box_px", 40, DOWNSTREAM_OF_LABELS, {"synth", "ingest", "head_model"}),
    ("subjects", "min_faces", 5, DOWNSTREAM_OF_LABELS, {"synth", "ingest", "head_model"}),
    ("smoothing", "half_window_s", 0.3, DOWNSTREAM_OF_LABELS, {"synth", "ingest", "head_model"}),
    ("detect", "synthetic", {"sigma_px": 3.0}, {"triangulate", "audit_report"}, {"label", "ingest"}),
    ("dataset", "jpeg_quality", 80, {"dataset_shards", "dataset_card"}, {"label", "head_model"}),
    # Frame kinds are read from the videos: the plan then depends on the sequences too.
    ("dataset", "frame_choice", "cheapest_to_decode", {"dataset_plan", "dataset_shards", "dataset_card"},
     {"label", "synth"}),
    ("audit", "checks", {"fit_residual": {"threshold": 2.0}}, {"audit_report"}, {"label", "dataset_shards"}),
    # A synthetic run downloads nothing, so download settings rerun nothing (a panoptic run
    # with download.enabled: tests/test_download.py).
    ("download", "retries", 7, set(), {"synth", "ingest", "head_model", "label"}),
])
def test_a_config_change_reruns_its_stage_and_what_follows(workflow_run, section, key, value, reruns, keeps):
    """Issue: config edits left stale results. Each stage declares the config it reads as
    params, so a change reruns that stage and everything downstream, nothing upstream."""
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config.setdefault(section, {})[key] = value
    planned = planned_rules(workflow_run, config)
    assert reruns <= planned, planned
    assert not (keeps & planned), planned


def test_invalid_config_is_refused_with_the_key(tmp_path):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"fit": {"landmarks": "nose_only"}}))
    run = snakemake(tmp_path, "--configfile", str(tmp_path / "bad.yaml"), "--cores", "1", "-n")
    assert run.returncode != 0
    assert "nose_only" in run.stdout + run.stderr


def test_lint_is_clean():
    run = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


# Last: it reruns the audit of workflow_run with another config.
def test_strict_audit_gate_fails_a_failed_check_and_keeps_the_report(workflow_run, tmp_path):
    strict = dict(TINY, audit={"strict": True, "checks": {"fit_residual": {"threshold": 0.01}}})
    (workflow_run / "strict.yaml").write_text(yaml.safe_dump(strict))
    run = snakemake(workflow_run, "--configfile", str(workflow_run / "strict.yaml"), "--cores", "2")
    assert run.returncode != 0
    assert "fit_residual" in (workflow_run / "results" / "logs" / "audit_gate.log").read_text()
    assert (workflow_run / "results" / "audit" / "report.html").is_file()
    assert not (workflow_run / "results" / "audit" / "passed").exists()
