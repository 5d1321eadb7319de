"""Cost of the download's safety (annotate.panoptic.fetch): throughput over loopback.

    python benchmarks/bench_download.py [--mb 256] [--repeats 3]

A file of ``--mb`` MiB of random bytes is served by ``python -m http.server`` (a separate
process, bound to 127.0.0.1) and fetched three ways, best of ``--repeats``:

1. a plain ``requests`` GET streamed into a file (what a minimal downloader does, and what
   Snakemake's HTTP storage plugin does): the baseline;
2. ``annotate.panoptic.fetch.fetch``: the same transfer with the SHA-256 computed while it
   streams, the size checks and the progress bar;
3. the verify pass of a rerun: the SHA-256 of the file on disk (``sha256_of``).

Loopback is far faster than the Panoptic server, so the ratio in (2) is an upper bound on
what the checks cost; the rate in (3) is what a rerun spends per GB already downloaded.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from annotate.panoptic.fetch import FetchPolicy, fetch, sha256_of


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.head(url, timeout=1.0)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"the benchmark server at {url} did not start")


def plain_get(url: str, out: Path) -> None:
    with requests.get(url, stream=True, timeout=60) as resp, open(out, "wb") as f:
        resp.raise_for_status()
        for chunk in resp.iter_content(1 << 20):
            f.write(chunk)


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        served = tmp / "served"
        served.mkdir()
        rng = np.random.default_rng(0)
        (served / "video.mp4").write_bytes(rng.integers(0, 256, args.mb << 20, dtype=np.uint8).tobytes())
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                   "--directory", str(served)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/video.mp4"
            wait_for(url)
            out = tmp / "out.mp4"

            def ours():
                out.unlink(missing_ok=True)
                fetch(requests.Session(), url, out, FetchPolicy(retries=0))

            plain_s = best_of(args.repeats, lambda: plain_get(url, out))
            ours_s = best_of(args.repeats, ours)
            verify_s = best_of(args.repeats, lambda: sha256_of(out).hexdigest())
        finally:
            server.terminate()
            server.wait()
    mib = args.mb
    print(f"file: {mib} MiB over loopback, best of {args.repeats}")
    print(f"plain requests GET        {mib / plain_s:8.1f} MiB/s")
    print(f"annotate fetch (checked)  {mib / ours_s:8.1f} MiB/s   {plain_s / ours_s:.2f}x the plain GET's rate")
    print(f"verify pass (SHA-256)     {mib / verify_s:8.1f} MiB/s   {verify_s * 1024 / mib:.2f} s per GiB on a rerun")


if __name__ == "__main__":
    main()
