"""``annotate run``: the Snakemake workflow (the ``Snakefile``), the one place the stages are
chained, run on a config from Python or the command line.

The workflow is run as ``python -m snakemake`` in a child process: Snakemake owns its working
directory (``.snakemake/``: lock, metadata, incomplete markers), so two runs in different
working directories never share state, and a failed run raises with the end of its output.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence

import yaml

from annotate.core.atomic import write_text_atomic


class WorkflowError(RuntimeError):
    """The workflow failed; the message ends with Snakemake's last lines."""


def snakefile() -> Path:
    """The ``Snakefile`` beside the ``annotate`` package (a checkout of the repository)."""
    path = Path(__file__).resolve().parents[2] / "Snakefile"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no Snakefile beside the annotate package; `annotate run` needs a "
                                "checkout of the repository (pip install -e .), or run snakemake in it")
    return path


def _plain(value):
    """Config values as YAML-safe types (paths as strings, tuples as lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def snakemake_command(config_path: str | Path | None, targets: Sequence[str | Path] = (), cores: int = 2,
                      workdir: str | Path | None = None, extra_args: Sequence[str] = ()) -> list[str]:
    """The ``python -m snakemake`` command line for a run (targets first: ``--configfile``
    takes several values)."""
    cmd = [sys.executable, "-m", "snakemake", *[str(t) for t in targets], "--snakefile", str(snakefile()),
           "--cores", str(cores)]
    if workdir is not None:
        cmd += ["--directory", str(workdir)]
    if config_path is not None:
        cmd += ["--configfile", str(config_path)]
    return cmd + list(extra_args)


def run_workflow(config: dict | None, targets: Sequence[str | Path] = (), cores: int = 2,
                 workdir: str | Path = ".", extra_args: Sequence[str] = (), capture: bool = True) -> str:
    """Run the workflow on ``config`` (merged over the default config as ``--configfile``
    does; relative paths in it are relative to ``workdir``) for ``targets`` (default: the
    workflow's default target). Returns Snakemake's output when ``capture``.

    Raises WorkflowError when Snakemake fails.
    """
    workdir = Path(workdir)
    config_path = None
    if config:
        config_path = workdir / ".annotate" / "run_config.yaml"
        write_text_atomic(config_path, yaml.safe_dump(_plain(config), sort_keys=False))
    cmd = snakemake_command(config_path, targets, cores, workdir, extra_args)
    proc = subprocess.run(cmd, capture_output=capture, text=True)
    if proc.returncode != 0:
        tail = "\n".join(((proc.stdout or "") + (proc.stderr or "")).splitlines()[-40:])
        raise WorkflowError(f"snakemake failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return (proc.stdout or "") + (proc.stderr or "") if capture else ""
