"""Throughput of the ray-casting renderer and the video writer (prints figures; not a test).

Scene: 31 HD cameras (1920x1080, f = 1450, Panoptic-like distortion) on a dome of radius
2.85 m around 3 heads near its centre, so each head is about 2.8 m from the cameras.

    python benchmarks/bench_render.py                 # render figures, 1 and 2 workers
    python benchmarks/bench_render.py --videos 120    # + render_videos of 120 frames

Figures: rays/s of open3d's cast alone (one thread), ms per view and per 31-camera frame on
one core (streamed views without id images, as the video writer renders them, and with id
images as ``render_frame`` returns them), frames/s with 1 and 2 worker processes, libx264
encode-only frames/s per core for two presets, and optionally the whole ``render_videos``.
The machine may be shared: the load average is printed beside the figures.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from annotate.geometry.cameras import CameraRig
from annotate.geometry.rotations import rot_y
from annotate.head.head_mesh import build_head_mesh
from annotate.synth import render as rd
from annotate.synth.videos import render_videos
from annotate.head.face_model import base_face_landmarks

DIST = np.array([-0.25, 0.18, 0.0005, 0.0008, -0.04])


def dome_rig(num_cameras: int = 31, radius_cm: float = 285.0, seed: int = 0) -> CameraRig:
    """Cameras on a dome (world y up) looking at the origin; 1080p, f = 1450."""
    rng = np.random.default_rng(seed)
    azimuth = np.linspace(0.0, 2.0 * np.pi, num_cameras, endpoint=False)
    elevation = rng.uniform(-0.1, 0.6, num_cameras)
    centres = radius_cm * np.stack([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                                    np.cos(elevation) * np.cos(azimuth)], axis=1)
    R = []
    for c in centres:
        z = -c / np.linalg.norm(c)
        x = np.cross(z, [0.0, 1.0, 0.0])
        x /= np.linalg.norm(x)
        R.append(np.stack([x, np.cross(z, x), z]))
    R = np.stack(R)
    t = -np.einsum("cij,cj->ci", R, centres)
    K = np.array([[1450.0, 0.0, 963.0], [0.0, 1450.0, 537.0], [0.0, 0.0, 1.0]])
    return CameraRig(tuple(f"00_{i:02d}" for i in range(num_cameras)), np.repeat(K[None], num_cameras, 0),
                     np.repeat(DIST[None], num_cameras, 0), R, t,
                     np.repeat(np.array([[1920, 1080]]), num_cameras, 0))


@dataclass
class Scene:
    """Frame source: three heads walking slowly and turning (picklable for workers)."""

    mesh: object

    def __call__(self, k: int) -> list[rd.RenderPerson]:
        rng = np.random.default_rng(7)
        people = []
        for i, (x, z) in enumerate([(-35.0, 0.0), (30.0, 15.0), (5.0, -35.0)]):
            yaw = rng.uniform(-np.pi, np.pi) + 0.03 * k
            position = np.array([x + 0.4 * k, rng.uniform(-5, 5), z])
            people.append(rd.RenderPerson(i, self.mesh, rot_y(yaw), position, 1.0,
                                          rd.random_palette(rng)))
        return people


def render_frames(rig: CameraRig, source: Scene, frames: list[int]) -> int:
    """Render frames as the video writer does (one thread, one reused buffer)."""
    buffer = None
    for k in frames:
        scene = rd.FrameScene(source(k), nthreads=1)
        for view in rd.iter_views(rig, scene, with_ids=False, out=buffer):
            buffer = view.image if buffer is None else buffer
    return len(frames)


def bench_cast(rig: CameraRig, source: Scene) -> None:
    people = source(0)
    scene = rd.FrameScene(people, nthreads=1)
    boxes = rd.head_pixel_boxes(rig, people)
    rays = np.concatenate([rd.box_rays(rig, c, b) for c in range(len(rig)) for b in boxes[c]
                           if b[2] > b[0]])
    scene.cast(rays)
    start = time.perf_counter()
    hits = scene.cast(rays)
    dt = time.perf_counter() - start
    print(f"cast: {len(rays) / 1e6:.2f} M ROI rays per frame ({(hits.person_index >= 0).mean():.0%} hit), "
          f"{len(rays) / dt / 1e6:.1f} M rays/s on one thread")


def bench_views(rig: CameraRig, source: Scene, repeats: int = 3) -> None:
    """Wall and CPU time per frame: CPU time is what one core costs when others compete."""
    render_frames(rig, source, [0])                      # fill the pixel-direction maps
    for per_cast in (1, 8, 31):
        wall, cpu = time.perf_counter(), time.process_time()
        for k in range(repeats):
            scene = rd.FrameScene(source(k), nthreads=1)
            buffer = None
            for view in rd.iter_views(rig, scene, with_ids=False, cameras_per_cast=per_cast, out=buffer):
                buffer = view.image if buffer is None else buffer
        wall = (time.perf_counter() - wall) / repeats * 1e3
        cpu = (time.process_time() - cpu) / repeats * 1e3
        print(f"one core, {per_cast:2d} camera(s) per cast: {wall:.0f} ms wall ({cpu:.0f} ms CPU) per "
              f"31-camera frame, {cpu / len(rig):.1f} ms CPU per view")
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(repeats):
        for _ in rd.iter_views(rig, rd.FrameScene(source(k), nthreads=1)):
            pass
    wall = (time.perf_counter() - wall) / repeats * 1e3
    cpu = (time.process_time() - cpu) / repeats * 1e3
    print(f"one core, with id images (render_frame's views, streamed): {wall:.0f} ms wall "
          f"({cpu:.0f} ms CPU) per frame")


def bench_workers(rig: CameraRig, source: Scene, num_frames: int = 8) -> None:
    for n_jobs in (1, 2):
        chunks = [list(range(j, num_frames, n_jobs)) for j in range(n_jobs)]
        with Parallel(n_jobs=n_jobs) as parallel:
            parallel(delayed(render_frames)(rig, source, [0]) for _ in range(n_jobs))   # warm
            start = time.perf_counter()
            parallel(delayed(render_frames)(rig, source, c) for c in chunks)
            dt = time.perf_counter() - start
        print(f"{n_jobs} worker(s): {num_frames / dt:.2f} frames/s "
              f"({dt / num_frames * 1e3:.0f} ms per 31-camera frame)")


def bench_encode(rig: CameraRig, source: Scene, num_frames: int = 30) -> None:
    images = [rd.render_view(rig, 0, source(k)).image for k in range(num_frames)]
    rate = Fraction(30000, 1001)
    for preset in ("ultrafast", "veryfast"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "hd_00_00.mp4"
            writer = rd.VideoWriter(path, 1920, 1080, rate, 18, preset)
            wall, cpu = time.perf_counter(), time.process_time()
            for image in images:
                writer.write(image)
            writer.close()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            size = path.stat().st_size / num_frames / 1024
        print(f"encode {preset:9s}: {num_frames / wall:.0f} frames/s wall, {num_frames / cpu:.0f} per CPU "
              f"second (RGB->I420 + libx264, 1080p, crf 18), {size:.1f} KB per frame")


def bench_videos(rig: CameraRig, source: Scene, num_frames: int) -> None:
    for n_jobs in (1, 2):
        seq = tempfile.mkdtemp()
        start = time.perf_counter()
        render_videos(seq, rig, source, num_frames, n_jobs=n_jobs, show_progress=False)
        dt = time.perf_counter() - start
        shutil.rmtree(seq)
        print(f"render_videos {num_frames} frames x {len(rig)} cameras, n_jobs={n_jobs}: {dt:.1f} s "
              f"({num_frames * len(rig) / dt:.0f} camera-frames/s, workers start cold)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=0, help="also time render_videos of N frames")
    args = parser.parse_args()
    start = time.perf_counter()
    mesh = build_head_mesh(base_face_landmarks())
    print(f"head mesh: {len(mesh.triangles)} triangles, built in {time.perf_counter() - start:.2f} s "
          f"(cold); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rig, source = dome_rig(), Scene(mesh)
    bench_cast(rig, source)
    bench_views(rig, source)
    bench_workers(rig, source)
    bench_encode(rig, source)
    if args.videos:
        bench_videos(rig, source, args.videos)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
