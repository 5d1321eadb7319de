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
