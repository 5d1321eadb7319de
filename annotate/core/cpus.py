"""How many CPUs this process may use: the ceiling for its worker pools.

Snakemake hands a rule as many threads as ``--cores`` allows, which need not be the CPUs
the machine has (``snakemake --cores 16`` on a 2-core machine), and a container's or a
cluster job's CPU limit shows in the process's affinity mask, not in ``os.cpu_count()``.
"""
from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where there is none), >= 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                                   # not on Linux
        return max(1, os.cpu_count() or 1)


def capped_workers(requested: int) -> int:
    """``requested`` workers, at most ``available_cpus()``, at least 1."""
    return max(1, min(int(requested), available_cpus()))
