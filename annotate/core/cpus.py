"""How many CPUs (and how much memory) this process may use: the ceiling for its worker pools.

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


def available_memory_bytes() -> int | None:
    """Physical memory not in use now (Linux ``MemAvailable``: free plus reclaimable cache),
    bytes; None where it cannot be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_capped_workers(requested: int, bytes_per_worker: float, available: int | None = None) -> int:
    """``requested`` workers, at most as many as ``available`` memory (default: now
    available, ``available_memory_bytes``; unknown = no cap) holds at ``bytes_per_worker``
    each, at least 1."""
    available = available_memory_bytes() if available is None else available
    if available is None:
        return max(1, int(requested))
    return max(1, min(int(requested), int(available // bytes_per_worker)))
