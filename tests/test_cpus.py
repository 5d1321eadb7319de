"""Worker pools never ask for more CPUs than the process may use."""
import os

from annotate.config import resolve_config
from annotate.core.cpus import available_cpus, capped_workers
from annotate.datasets.build import BuildConfig, decoder_threads, worker_threads
from annotate.stages.dataset import build_config


def test_available_cpus_follow_the_affinity_mask():
    assert available_cpus() == len(os.sched_getaffinity(0)) >= 1


def test_requests_are_capped_to_the_cpus_and_at_least_one():
    n = available_cpus()
    assert capped_workers(10 ** 6) == n
    assert capped_workers(1) == 1 and capped_workers(0) == 1
    assert worker_threads(BuildConfig(threads=10 ** 6)) == n


def test_default_config_asks_for_16_cameras_at_once_and_gets_what_the_machine_has():
    build = build_config(resolve_config({}))
    assert build.threads == 16
    workers = worker_threads(build)
    assert workers == min(16, available_cpus())
    assert decoder_threads(workers) == (1 if workers > 1 else 0)


def test_workers_are_capped_to_the_memory_available():
    from annotate.core.cpus import available_memory_bytes, memory_capped_workers

    gb = 2 ** 30
    assert memory_capped_workers(16, 1 * gb, available=5 * gb + 1) == 5
    assert memory_capped_workers(4, 1 * gb, available=64 * gb) == 4
    assert memory_capped_workers(8, 1 * gb, available=gb // 2) == 1            # always one
    free = available_memory_bytes()
    assert free is None or free > 0
    assert memory_capped_workers(3, 1.0, available=None) == (3 if free is None else min(3, free))
