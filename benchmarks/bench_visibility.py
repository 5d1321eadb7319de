"""Speed and agreement of per-landmark visibility (annotate.head.visibility).

    python benchmarks/bench_visibility.py [--frames 200] [--only speed|agreement]

1. Speed on one core (open3d and BLAS on one thread; rates from this process's CPU time,
   which on a shared machine is what one core delivers): view-labels per second, one view-label
   being one (frame, person, camera) with its 70 landmarks classified (outside the image,
   self-occluded, occluded by another head, visible), next to a plain per-view loop doing
   the same work (one cv2.projectPoints and one open3d call per head of the frame per view).
   Poses are the synthetic ground truth, every head is the head model's mesh (as in the
   label stage), chunks of about 200 faces (the stage's default).
2. Agreement with the synthetic generator's face70 visibility lists (its own ray casting,
   noise-free landmarks on each person's own mesh, true poses), split into its two sources:
   the pose (our fit instead of the truth) and the mesh (the mean head model's mesh instead
   of each person's own).
"""
from __future__ import annotations

import os

# One core for the speed figures: set before numpy loads its BLAS.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse
import time

import numpy as np

from annotate.head import visibility as vis
from annotate.labels.fit import fit_heads
from annotate.head.head_mesh import build_head_mesh
from annotate.head.head_model import build_head_model
from annotate.head.per_view import model_landmarks_world
from annotate.head.raycast import HeadFrameCaster, rays_from
from annotate.core.open3d_loader import open3d_module
from annotate.head.face_model import base_face_landmarks
from annotate.synth.generate import landmark_views, scene_frames
from annotate.synth.scene import SceneConfig, published_landmarks, simulate_scene

CHUNK_FACES = 200


def frame_heads(state, frames: slice, landmarks_head: np.ndarray) -> tuple[vis.HeadPoses, np.ndarray]:
    """The true poses of ``frames`` as one-mesh heads, and the posed model landmarks."""
    n, P = frames.stop - frames.start, state.R_world_head.shape[1]
    R = state.R_world_head[frames].reshape(-1, 3, 3)
    t = state.t_world_head[frames].reshape(-1, 3)
    scale = np.tile(state.scale, n)
    heads = vis.HeadPoses.one_mesh(R, t, scale, np.ones(n * P, bool), np.repeat(np.arange(n), P))
    return heads, model_landmarks_world(landmarks_head, R, t, scale)


def loop_baseline(state, caster: HeadFrameCaster, landmarks_head: np.ndarray, frames: range) -> int:
    """The same classification as a plain loop over views: per view one cv2.projectPoints,
    then the 70 rays against each head of the frame in turn. Returns the views done."""
    import cv2

    from annotate.geometry.cameras import max_monotonic_radius2

    rig, P = state.rig, state.R_world_head.shape[1]
    centres, max_r2 = rig.centres_world, max_monotonic_radius2(rig.dist)
    views = 0
    for f in frames:
        R, t, s = state.R_world_head[f], state.t_world_head[f], state.scale
        marks = [s[p] * landmarks_head @ R[p].T + t[p] for p in range(P)]
        for c in range(len(rig)):
            for p in range(P):
                cam = marks[p] @ rig.R_cam_world[c].T + rig.t_cam_world[c]
                px = cv2.projectPoints(cam, np.zeros(3), np.zeros(3), rig.K[c], rig.dist[c])[0][:, 0]
                r2 = (cam[:, 0] ** 2 + cam[:, 1] ** 2) / cam[:, 2] ** 2
                w, h = rig.image_size[c]
                inside = ((cam[:, 2] > 0) & (r2 <= max_r2[c]) & (px[:, 0] >= -0.5) & (px[:, 0] < w - 0.5)
                          & (px[:, 1] >= -0.5) & (px[:, 1] < h - 0.5))
                code = np.where(inside, vis.VISIBLE, vis.OUTSIDE_IMAGE).astype(np.uint8)
                offset = marks[p] - centres[c]
                distance = np.linalg.norm(offset, axis=1)
                direction = offset / distance[:, None]
                for q in [p] + [q for q in range(P) if q != p]:
                    o = np.broadcast_to((centres[c] - t[q]) @ R[q] / s[q], (70, 3))
                    hit = caster.t_hit(rays_from(o, direction @ R[q] / s[q])) < distance - vis.TOLERANCE_CM
                    hidden = inside & hit & (code == vis.VISIBLE)
                    code[hidden] = vis.SELF_OCCLUDED if q == p else vis.OCCLUDED_BY_OTHER
                views += 1
    return views


def speed(frames: int) -> None:
    print(f"\n== 1. Speed, one core ({frames} frames x 3 people x 31 cameras, 70 landmarks each)")
    state = simulate_scene(SceneConfig(num_frames=frames))
    landmarks_head = base_face_landmarks()
    open3d_module()                                              # the import is not the mesh
    start = time.perf_counter()
    caster = HeadFrameCaster([build_head_mesh(landmarks_head)], nthreads=1)
    print(f"head mesh and BVH: {time.perf_counter() - start:.2f} s (once per head model)")
    P, C = state.R_world_head.shape[1], len(state.rig)
    step = max(1, CHUNK_FACES // P)
    chunks = [slice(f, min(frames, f + step)) for f in range(0, frames, step)]
    prepared = [frame_heads(state, k, landmarks_head) for k in chunks]
    vis.landmark_visibility(state.rig, caster, *prepared[0])                  # warm-up
    codes = []
    start, wall = time.process_time(), time.perf_counter()
    for heads, marks in prepared:
        codes.append(vis.landmark_visibility(state.rig, caster, heads, marks).code)
    batched, wall = time.process_time() - start, time.perf_counter() - wall
    n_views = frames * P * C
    counts = np.bincount(np.concatenate([c.ravel() for c in codes]), minlength=6)
    shares = ", ".join(f"{vis.CODE_NAMES[k]} {counts[k] / counts.sum():.1%}" for k in range(4))
    print(f"codes: {shares}")
    loop_frames = range(min(4, frames))
    start = time.process_time()
    n_loop = loop_baseline(state, caster, landmarks_head, loop_frames)
    loop = (time.process_time() - start) / n_loop
    rate = n_views / batched
    print(f"{'batched (chunks of ~200 faces)':32s} {rate:10,.0f} view-labels/s "
          f"({n_views} views in {batched:.2f} s CPU, {wall:.2f} s wall; "
          f"{n_views * 70 / batched / 1e6:.2f} M landmarks/s)")
    print(f"{'per-view Python loop':32s} {1 / loop:10,.0f} view-labels/s ({n_loop} views)")
    print(f"speed-up {rate * loop:.0f}x   target >= 20,000 view-labels/s per core: "
          f"{'met' if rate >= 20_000 else 'NOT met'}")


def agreement(frames: int) -> None:
    print(f"\n== 2. Agreement with the generator's visibility lists ({frames} frames, 31 cameras)")
    state = simulate_scene(SceneConfig(num_frames=frames))
    source = scene_frames(state)
    truth = landmark_views(state, source)                                 # (F, C, P, 70)
    F, P = state.R_world_head.shape[:2]
    published = published_landmarks(state)
    landmarks = published.landmarks_world.reshape(-1, 70, 3)
    scores = published.scores.reshape(-1, 70)
    model = build_head_model(landmarks, scores)
    fits = fit_heads(model, landmarks, scores)
    group = np.repeat(np.arange(F), P)
    model_mesh = HeadFrameCaster([build_head_mesh(model.landmarks_head)])
    own_meshes = HeadFrameCaster(source.meshes)
    R_true, t_true = state.R_world_head.reshape(-1, 3, 3), state.t_world_head.reshape(-1, 3)
    s_true = np.tile(state.scale, F)
    own_shapes = np.tile(state.shapes_head / state.scale[:, None, None], (F, 1, 1))

    def seen(caster, R, t, s, shape_head, mesh_index):
        marks = s[:, None, None] * np.einsum("mij,mlj->mli", R, shape_head) + t[:, None]
        heads = vis.HeadPoses(R, t, s, np.ones(len(R), bool), group, mesh_index)
        code = vis.landmark_visibility(state.rig, caster, heads, marks).code
        return (code == vis.VISIBLE).reshape(len(state.rig), F, P, 70).transpose(1, 0, 2, 3)

    model_shape = np.broadcast_to(model.landmarks_head, (F * P, 70, 3))
    rows = {
        "label stage: fitted pose, model mesh": seen(model_mesh, fits.R_world_head, fits.t_world_head,
                                                     fits.scale, model_shape, np.zeros(F * P, int)),
        "true pose, model mesh": seen(model_mesh, R_true, t_true, s_true, model_shape, np.zeros(F * P, int)),
        "fitted pose, each person's mesh": seen(own_meshes, fits.R_world_head, fits.t_world_head, fits.scale,
                                                own_shapes, np.tile(np.arange(P), F)),
    }
    for name, ours in rows.items():
        tp, fp = (ours & truth).sum(), (ours & ~truth).sum()
        fn = (~ours & truth).sum()
        print(f"{name:36s} agreement {(ours == truth).mean():.2%}  precision {tp / (tp + fp):.2%}  "
              f"recall {tp / (tp + fn):.2%}")
    worst = (rows["label stage: fitted pose, model mesh"] != truth).mean(axis=(0, 1, 2))
    print("most disagreement (landmark: share): "
          + ", ".join(f"{i}: {worst[i]:.1%}" for i in np.argsort(worst)[::-1][:6]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--only", choices=["speed", "agreement"])
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.only in (None, "speed"):
        speed(args.frames)
    if args.only in (None, "agreement"):
        agreement(min(args.frames, 120))


if __name__ == "__main__":
    main()
