"""The SLURM profile against a real SLURM cluster: a tiny synthetic config runs through
``snakemake --workflow-profile pipelines/profiles/slurm`` and through a local run, every job
goes through sbatch (the scheduler's own records say so), the per-sequence jobs go in
bundles, and both runs write the same tables.

The cluster is the one-node cluster ``tools/start_slurm.sh`` starts (CI runs it first, see
.ci/run). Without it this module skips, unless ANNOTATE_REQUIRE_SLURM=1, which makes it fail.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.slow            # two runs of the workflow: minutes

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "pipelines" / "profiles" / "slurm"
PARTITION = "annotate_ci"                # tools/start_slurm.sh's partition (not the default one)
REQUIRE = os.environ.get("ANNOTATE_REQUIRE_SLURM") == "1"
TINY = {
    "results": "results",
    "synthetic": {"sequences": 2, "num_frames": 4, "num_cameras": 4, "num_people": 2,
                  "image_size": [640, 360], "render_video": False},
    "train": {"in_default_run": False},
}
# The profile's bundles (groups): with two sequences, one sbatch job each.
BUNDLES = {"prepare", "label", "shards"}
BUNDLED_RULES = {"synth", "ingest", "triangulate", "crosscheck", "label", "dataset_shards"}


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def cluster_problem() -> str | None:
    """Why the SLURM profile cannot run here, or None."""
    missing = [c for c in ("sbatch", "sinfo", "squeue", "scontrol") if shutil.which(c) is None]
    if missing:
        return f"no SLURM commands {missing}: run `bash tools/start_slurm.sh`"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed: pip install -e '.[test]'"
    state = _run(["sinfo", "--noheader", "--partition", PARTITION, "--format", "%T"], timeout=30)
    if state.stdout.split()[:1] not in (["idle"], ["mixed"], ["allocated"]):
        return (f"SLURM partition {PARTITION} is not up (sinfo: {state.stdout.strip()!r} "
                f"{state.stderr.strip()!r}): run `bash tools/start_slurm.sh`")
    return None


def slurm_config() -> dict[str, str]:
    """``scontrol show config`` as a dict (``JobCompType`` -> ``jobcomp/filetxt``, ...)."""
    out = _run(["scontrol", "show", "config"], timeout=30, check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in out.splitlines()) if _}


def start_snakemake(workdir: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """Snakemake on the tiny config in ``workdir``, started (not waited for); its output goes
    to ``workdir/snakemake.out``."""
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "tiny.yaml"), *args]
    with open(workdir / "snakemake.out", "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)


def finished(process: subprocess.Popen, workdir: Path) -> str:
    """Waits for ``process``; its output, which must end in success."""
    process.wait(timeout=1500)
    log = (workdir / "snakemake.out").read_text()
    assert process.returncode == 0, f"snakemake in {workdir} failed:\n{log[-6000:]}"
    return log


@pytest.fixture(scope="module")
def cluster():
    problem = cluster_problem()
    if problem:
        if REQUIRE:
            pytest.fail(f"ANNOTATE_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)
    cpus, mem_mb = _run(["sinfo", "--noheader", "--partition", PARTITION, "--format", "%c %m"],
                        timeout=30, check=True).stdout.split()[:2]
    return {"cpus": int(cpus), "mem_mb": int(mem_mb.rstrip("+")), "config": slurm_config()}


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """The tiny config through the SLURM profile and locally, side by side (the SLURM run
    spends most of its time waiting between status checks): {"slurm": (workdir, log),
    "local": (workdir, log)}."""
    slurm, local = tmp_path_factory.mktemp("slurm"), tmp_path_factory.mktemp("local")
    on_slurm = start_snakemake(
        slurm, "--workflow-profile", str(PROFILE),
        # A node this small takes a smaller job than the profile's largest (16 CPUs, 16 GB):
        # --cores caps every job's CPUs, --resources mem_mb every job's (and bundle's) memory.
        "--cores", str(cluster["cpus"]), "--resources", f"mem_mb={cluster['mem_mb'] // 2}",
        # No accounting database (slurmdbd) here, so sacct has nothing: job states come from
        # squeue, which keeps finished jobs for MinJobAge (600 s).
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "5",
        env=dict(os.environ, ANNOTATE_SLURM_PARTITION=PARTITION))
    on_this_machine = start_snakemake(local, "--cores", str(cluster["cpus"]))
    started = {"slurm": (slurm, on_slurm), "local": (local, on_this_machine)}
    try:
        return {name: (work, finished(process, work)) for name, (work, process) in started.items()}
    finally:
        for _, process in started.values():
            if process.poll() is None:
                process.terminate()           # Snakemake cancels its SLURM jobs on SIGTERM


SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def submissions(log: str) -> dict[str, str]:
    """SLURM job id -> what it ran, from the plugin's log folder: ``group_<bundle>_<rules>`` or
    ``rule_<name>``."""
    ran = {}
    for _, slurm_id, path in SUBMITTED.findall(log):
        parts = Path(path).parts
        ran[slurm_id] = parts[parts.index("slurm_logs") + 1]
    return ran


def scheduler_records(config: dict[str, str]) -> dict[str, dict[str, str]]:
    """SLURM job id -> the scheduler's record of the finished job (JobState, Partition, WorkDir,
    Name ...): the job-completion log of tools/start_slurm.sh's cluster (it has no accounting
    database for sacct)."""
    assert config.get("JobCompType") == "jobcomp/filetxt", "the cluster keeps no job-completion log"
    records = {}
    for line in Path(config["JobCompLoc"]).read_text().splitlines():
        record = dict(field.split("=", 1) for field in line.split() if "=" in field)
        records[record["JobId"]] = record
    return records


def test_every_job_went_through_sbatch_and_completed(cluster, runs):
    work, log = runs["slurm"]
    submitted = submissions(log)
    assert submitted, log[-3000:]
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    records = scheduler_records(cluster["config"])
    assert set(submitted) <= set(records), f"submitted but not recorded by the scheduler: {set(submitted) - set(records)}"
    for job in submitted:
        record = records[job]
        assert record["JobState"] == "COMPLETED", (job, submitted[job], record)
        assert record["Partition"] == PARTITION, record         # the profile's partition setting reached sbatch
        assert record["Name"] == run_id and record["WorkDir"] == str(work), record


def test_per_sequence_jobs_went_in_bundles(runs):
    _, log = runs["slurm"]
    ran = list(submissions(log).values())
    bundles = sorted(name.split("_")[1] for name in ran if name.startswith("group_"))
    singles = {name.removeprefix("rule_") for name in ran if name.startswith("rule_")}
    assert bundles == sorted(BUNDLES), ran                       # one sbatch job per bundle
    assert not singles & BUNDLED_RULES, ran
    assert {"head_model", "dataset_plan", "dataset_card", "audit_report"} <= singles, ran


def _columns_equal(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    """Equal values and nulls, NaN equal to NaN, nested lists compared value by value."""
    a, b = a.combine_chunks(), b.combine_chunks()
    if a.type != b.type or len(a) != len(b):
        return False
    while pa.types.is_list(a.type) or pa.types.is_large_list(a.type) or pa.types.is_fixed_size_list(a.type):
        if not a.is_null().equals(b.is_null()):
            return False
        if not pa.types.is_fixed_size_list(a.type) and not a.offsets.equals(b.offsets):
            return False
        a, b = a.flatten(), b.flatten()
    if pa.types.is_floating(a.type):
        return (a.is_null().equals(b.is_null())
                and np.array_equal(a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False), equal_nan=True))
    return a.equals(b)


def _tables(results: Path) -> dict[str, Path]:
    return {str(p.relative_to(results)): p for p in sorted(results.rglob("*.parquet"))}


def test_outputs_equal_a_local_run(runs):
    slurm_tables = _tables(runs["slurm"][0] / "results")
    local_tables = _tables(runs["local"][0] / "results")
    assert sorted(slurm_tables) == sorted(local_tables)
    assert any(name.endswith("labels/labels.parquet") for name in local_tables)
    for name, path in local_tables.items():
        local, remote = pq.read_table(path), pq.read_table(slurm_tables[name])
        assert local.schema.equals(remote.schema, check_metadata=False), name
        assert local.num_rows == remote.num_rows, name
        unequal = [c for c in local.column_names if not _columns_equal(local[c], remote[c])]
        assert not unequal, f"{name}: columns {unequal} differ between the local and the SLURM run"
