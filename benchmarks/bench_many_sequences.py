"""The workflow on many small synthetic sequences: DAG build time, the whole run, peak memory,
and how many jobs the SLURM profile submits with and without its bundles (job groups).

    python benchmarks/bench_many_sequences.py [--sequences 65] [--cores 2] [--work DIR] [--no-run]

The config (written to ``--work``, a temporary folder by default): ``--sequences`` synthetic
sequences of 4 frames, 4 HD cameras and 2 people, no video, no training; every other stage
as in the default run (ingest, triangulation and cross-check, head model, labels, dataset
with exports, audit).

Printed, each command in its own process, timed from the outside:

- DAG build: ``snakemake -n --cores N`` (a dry run: parse, config, DAG, nothing run) for 1
  sequence and for ``--sequences``, with the ratio;
- the whole run: ``snakemake --cores N`` on ``--sequences`` (unless ``--no-run``), wall
  seconds, and the peak resident memory of the largest process (``ru_maxrss`` of the
  children: Snakemake itself or one of its jobs) and of the dry run (Snakemake alone);
- the jobs: rule jobs of the DAG, and sbatch submissions of a dry run with
  ``--workflow-profile pipelines/profiles/slurm`` as it is (bundles) and with its ``groups``
  and ``group-components`` removed (one sbatch job per rule job). Needs
  snakemake-executor-plugin-slurm (the ``test`` extra); nothing is submitted.
"""
from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "pipelines" / "profiles" / "slurm"


def config(sequences: int) -> dict:
    return {
        "results": "results",
        "synthetic": {"sequences": sequences, "num_frames": 4, "num_cameras": 4, "num_people": 2,
                      "image_size": [640, 360], "render_video": False},
        "train": {"in_default_run": False},
    }


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """Runs ``cmd`` under a fresh Python that waits for it: (wall s, CPU s (user + system of
    every process it ran), peak RSS MiB of its largest process, its output). One measuring
    process per command keeps the peaks apart; CPU seconds are what a busy, shared machine
    disturbs least."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "w = time.perf_counter() - t; u = resource.getrusage(resource.RUSAGE_CHILDREN); "
             "sys.stdout.write(r.stdout + r.stderr); "
             "print(f'\\n@@ {w} {u.ru_utime + u.ru_stime} {u.ru_maxrss} {r.returncode}')")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], cwd=cwd, capture_output=True, text=True).stdout
    text, _, tail = out.rpartition("\n@@ ")
    wall, cpu, rss_kib, code = tail.split()
    if int(code) != 0:
        raise SystemExit(f"failed ({code}): {' '.join(cmd)}\n{text[-3000:]}")
    return float(wall), float(cpu), int(rss_kib) // 1024, text


def snakemake(work: Path, configfile: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
            "--configfile", str(configfile), *args]


RULE_JOB = re.compile(r"^(?:\[[^\]]*\] )?rule (\w+):$", re.M)          # a job outside any group
GROUP_JOB = re.compile(r"^(?:\[[^\]]*\] )?Group job (\w+) ", re.M)      # one bundle of jobs
STATS_TOTAL = re.compile(r"^total\s+(\d+)$", re.M)


def submitted_jobs(dry_run: str, local_rules: set[str]) -> Counter:
    """sbatch jobs a dry run's jobs make: ``{"group prepare": 9, "head_model": 1, ...}``.
    Jobs inside a bundle are indented under its ``Group job`` line; ``local_rules`` (the
    target rule ``all``, which runs no command) are not submitted."""
    jobs = Counter(f"group {name}" for name in GROUP_JOB.findall(dry_run))
    jobs.update(name for name in RULE_JOB.findall(dry_run) if name not in local_rules)
    return jobs


def profile_without_groups(folder: Path) -> Path:
    """A copy of the SLURM profile without ``groups`` and ``group-components``."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    profile.pop("groups"), profile.pop("group-components")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, default=65)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--no-run", action="store_true", help="DAG and job counts only")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_many_"))
    work.mkdir(parents=True, exist_ok=True)
    cores = ["--cores", str(args.cores)]
    print(f"{args.sequences} synthetic sequences (4 frames, 4 cameras, 2 people, no video), --cores {args.cores}, "
          f"in {work}")

    dry = {}
    for n in sorted({1, args.sequences}):
        cfg = work / f"seq{n}.yaml"
        cfg.write_text(yaml.safe_dump(config(n)))
        dry[n] = timed(snakemake(work / f"dry{n}", cfg, *cores, "-n"), work)
    many = work / f"seq{args.sequences}.yaml"
    rule_jobs = int(STATS_TOTAL.search(dry[args.sequences][3]).group(1))
    print(f"\nDAG build (dry run, whole process: start-up, parse, DAG):")
    for n, (wall, cpu, rss, text) in dry.items():
        print(f"  {n:4d} sequences: {wall:6.1f} s wall, {cpu:6.1f} s CPU, {int(STATS_TOTAL.search(text).group(1)):5d} "
              f"jobs, peak {rss} MiB")
    if len(dry) == 2:
        (w1, c1, r1, _), (wn, cn, rn, _) = dry[1], dry[args.sequences]
        print(f"  ratio {args.sequences} : 1 sequences: wall {wn / w1:.2f}x, CPU {cn / c1:.2f}x, memory {rn / r1:.2f}x")

    counts = {}
    for label, profile in (("bundles (the profile)", PROFILE),
                           ("no bundles", profile_without_groups(work / "profile_without_groups"))):
        text = timed(snakemake(work / "dry_slurm", many, "--workflow-profile", str(profile), "-n"), work)[3]
        counts[label] = submitted_jobs(text, local_rules={"all"})
    print(f"\nSLURM submissions for {args.sequences} sequences ({rule_jobs} rule jobs, 'all' runs nothing):")
    for label, jobs in counts.items():
        detail = ", ".join(f"{name} {k}" for name, k in sorted(jobs.items()))
        print(f"  {label:22s} {sum(jobs.values()):5d} sbatch jobs: {detail}")
    (_, grouped), (_, single) = counts.items()
    print(f"  ratio: {sum(single.values()) / sum(grouped.values()):.1f}x fewer sbatch jobs with bundles")

    if not args.no_run:
        wall, cpu, rss, _ = timed(snakemake(work / "run", many, *cores), work)
        jobs = rule_jobs - 1                                   # 'all' runs nothing
        print(f"\nwhole run, {args.sequences} sequences, --cores {args.cores}: {wall:.0f} s wall "
              f"({wall / 60:.1f} min, {wall / args.sequences:.1f} s per sequence), {cpu:.0f} s CPU "
              f"({cpu / jobs:.1f} s per job, {jobs} jobs); peak {rss} MiB (the largest process); "
              f"Snakemake alone (dry run) {dry[args.sequences][2]} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
