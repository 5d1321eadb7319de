"""Label accuracy, throughput and memory of the label stage, with baselines side by side.

    python benchmarks/bench_labels.py [--frames 120] [--quick]

1. Accuracy against the synthetic ground truth: geodesic error of R_cam_head for every
   label of every camera, for this pipeline (robust, score-weighted fit on all 70 landmarks)
   and for WHENet's published recipe (14 landmarks, plain Umeyama, no weighting), on the
   same data (default noise: 0.3 cm, 5% outliers at 3 cm, shape variation).
2. Speed on one core: head fit + per-camera labels (camera-labels per second), batched,
   next to a plain per-sample Python loop doing the same work (one fit per face, one
   projection per camera).
3. Memory: peak RSS of the label stage on the default sequence and on a 10x longer one.
"""
from __future__ import annotations

import os

# One core for the speed figures: set before numpy loads its BLAS.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from annotate.config import resolve_config
from annotate.geometry.rotations import geodesic_distance
from annotate.labels.fit import FitConfig
from annotate.head.per_view import ViewConfig
from annotate.labels.stage import label_faces
from annotate.stages.head_model import run as run_head_model
from annotate.stages.ingest import run as run_ingest
from annotate.stages.label import run as run_label
from annotate.synth.generate import generate_sequence, load_ground_truth
from annotate.synth.scene import SceneConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))        # sibling benchmarks
sys.path.insert(0, str(REPO / "tests"))                          # workflow_runs


def make_sequence(root: Path, name: str, frames: int, seed: int = 0, **scene) -> Path:
    return generate_sequence(root, name, SceneConfig(seed=seed, num_frames=frames, **scene), render_video=False)


def run_labels(root: Path, name: str, out: Path, config: dict):
    """Ingest, head model and labels of one sequence with config overrides; the labels table
    (frame, person, camera_index, angles, R_cam_head, reject_reason) as pandas."""
    import pyarrow.parquet as pq

    cfg = resolve_config(config)
    run_ingest(cfg, root, name, out / "ingest")
    run_head_model(cfg, [out / "ingest" / "faces3d.parquet"], out / "head_model.json")
    run_label(cfg, out / "ingest" / "faces3d.parquet", out / "ingest" / "cameras.parquet",
              out / "head_model.json", out / "labels")
    return pq.read_table(out / "labels" / "labels.parquet",
                         columns=["frame", "person", "camera_index", "yaw", "pitch", "roll", "R_cam_head",
                                  "reject_reason"]).to_pandas()


def true_rotations(root: Path, name: str, rig, frame, person, camera_index) -> np.ndarray:
    """(N, 3, 3) ground-truth R_cam_head of labels given by (frame, person, camera_index)."""
    gt = load_ground_truth(root / name)
    frame_pos = {int(f): i for i, f in enumerate(gt.frames)}
    person_pos = {int(p): i for i, p in enumerate(gt.person_ids)}
    fi = np.array([frame_pos[int(f)] for f in frame])
    pi = np.array([person_pos[int(p)] for p in person])
    return rig.R_cam_world[np.asarray(camera_index)] @ gt.R_world_head[fi, pi]


def label_errors(root: Path, name: str, out: Path, config: dict) -> np.ndarray:
    """Geodesic error (deg) of every camera label of every fitted face."""
    from annotate.panoptic.tables import load_cameras

    t = run_labels(root, name, out, config)
    rig = load_cameras(out / "ingest" / "cameras.parquet")
    R_true = true_rotations(root, name, rig, t["frame"], t["person"], t["camera_index"])
    R_est = np.stack(t["R_cam_head"].to_numpy()).reshape(-1, 3, 3)
    # Every label with a rotation counts, including fits the pipeline flags as poor:
    # WHENet's recipe has no such checks, so the comparison must not drop its failures.
    ok = np.isfinite(R_est).all(axis=(1, 2))
    return np.degrees(geodesic_distance(R_est[ok], R_true[ok]))


def oracle_table(faces3d: Path, cameras: Path):
    """WHENet's own labels (``annotate.head.whenet_oracle``) of every face of an ingested
    sequence in every camera: frame, person, camera_index, status, yaw/pitch/roll, R_cam_ref."""
    import pandas as pd
    import pyarrow.parquet as pq

    from annotate.core.tables import fixed_list_to_numpy
    from annotate.head.whenet_oracle import whenet_euler, whenet_fit
    from annotate.panoptic.tables import load_cameras

    faces = pq.read_table(faces3d)
    rig = load_cameras(cameras)
    ok, R_world_ref, _, _ = whenet_fit(fixed_list_to_numpy(faces.column("landmarks_world"), (70, 3)).astype(float),
                                       fixed_list_to_numpy(faces.column("score"), (70,)).astype(float))
    R_cam_ref = np.einsum("cij,mjk->mcik", rig.R_cam_world, R_world_ref)
    status, angles = whenet_euler(R_cam_ref)
    M, C = len(ok), len(rig)
    return pd.DataFrame({
        "frame": np.repeat(faces.column("frame").to_numpy(), C), "person": np.repeat(faces.column("person").to_numpy(), C),
        "camera_index": np.tile(np.arange(C), M), "fitted": np.repeat(ok, C), "status": (status & ok[:, None]).ravel(),
        "yaw": angles[..., 0].ravel(), "pitch": angles[..., 1].ravel(), "roll": angles[..., 2].ravel(),
        "R_cam_head": list(R_cam_ref.reshape(-1, 9))})


def oracle_errors(root: Path, name: str, out: Path) -> np.ndarray:
    """Geodesic error (deg) of WHENet's own recipe: every fitted face in every camera."""
    from annotate.panoptic.tables import load_cameras

    t = oracle_table(out / "ingest" / "faces3d.parquet", out / "ingest" / "cameras.parquet")
    t = t[t["fitted"]]
    rig = load_cameras(out / "ingest" / "cameras.parquet")
    R_true = true_rotations(root, name, rig, t["frame"], t["person"], t["camera_index"])
    return np.degrees(geodesic_distance(np.stack(t["R_cam_head"].to_numpy()).reshape(-1, 3, 3), R_true))


def stats(e: np.ndarray) -> str:
    return (f"{np.median(e):7.3f} {np.percentile(e, 90):7.3f} {np.percentile(e, 99):7.3f} "
            f"{e.max():7.3f} {len(e):8d}")


NO_SMOOTHING = {"enabled": False}
RECIPES = {
    "annotate (subjects, modes, smoothing)": {},
    "annotate, per-frame (no smoothing)": {"smoothing": NO_SMOOTHING},
    "mean head, no subjects, smoothing": {"subjects": {"enabled": False}},
    "mean head, no subjects, per-frame": {"subjects": {"enabled": False}, "smoothing": NO_SMOOTHING},
    "inner 53 lm, no subjects, per-frame": {"fit": {"landmarks": "inner"}, "subjects": {"enabled": False},
                                            "smoothing": NO_SMOOTHING},
    "plain Umeyama, 70 lm, per-frame": {"fit": {"robust": False, "use_scores": False},
                                        "subjects": {"enabled": False}, "smoothing": NO_SMOOTHING},
}


def accuracy(frames: int) -> None:
    print(f"\n== 1. Accuracy vs ground truth (geodesic error of R_cam_head, deg; {frames} frames, 31 cameras)")
    with tempfile.TemporaryDirectory() as tmp:
        root, work = Path(tmp) / "seq", Path(tmp) / "work"
        for expressions in (True, False):
            name = f"synth_acc_{'talking' if expressions else 'still'}"
            make_sequence(root, name, frames, expressions=expressions)
            print(f"\n-- {'with expressions (talking, smiling, brows, blinks): the default' if expressions else 'without expressions'}")
            print(f"{'recipe':44s} {'median':>7s} {'p90':>7s} {'p99':>7s} {'max':>7s} {'labels':>8s}")
            results = {}
            for i, (label, config) in enumerate(RECIPES.items()):
                results[label] = label_errors(root, name, work / name / f"recipe{i}", config)
                print(f"{label:44s} {stats(results[label])}")
            whenet = oracle_errors(root, name, work / name / "recipe0")
            print(f"{'WHENet recipe (oracle: 14 lm, Horn, gate)':44s} {stats(whenet)}")
            ours = results["annotate (subjects, modes, smoothing)"]
            print(f"ratio WHENet/annotate: median {np.median(whenet) / np.median(ours):.1f}x, "
                  f"p99 {np.percentile(whenet, 99) / np.percentile(ours, 99):.1f}x")
            if expressions:
                met = np.median(ours) <= 0.8 and np.percentile(ours, 99) <= 2.0
                print(f"target with expressions: median <= 0.8 and p99 <= 2.0 deg: {'met' if met else 'NOT met'}")
            else:
                met = np.median(ours) <= 0.825 and np.percentile(ours, 99) <= 1.948
                print(f"target without expressions: no worse than 0.825 / 1.948: {'met' if met else 'NOT met'}")


FACE_SHAPES = {
    "default face": {},
    "mouth 1 cm forward": {"face_mouth_forward_cm": 1.0},
    "mouth 1 cm back": {"face_mouth_forward_cm": -1.0},
    "face 10% wider": {"face_width_scale": 1.1},
}


def signed_differences(ours, oracle) -> dict:
    """Median signed differences (deg) ours - WHENet per angle, frontal and back views."""
    m = ours.merge(oracle, on=["frame", "person", "camera_index"], suffixes=("", "_w"))
    m = m[(m["reject_reason"] == "") & m["status"]]
    out = {}
    for view, sel in (("frontal", m["yaw"].abs() <= 90), ("back", m["yaw"].abs() > 90)):
        d = m[sel]
        out[view] = (len(d), *[float(np.median((d[a] - d[f"{a}_w"] + 180.0) % 360.0 - 180.0))
                               for a in ("yaw", "pitch", "roll")])
    return out


def zero_pose(frames: int) -> None:
    print(f"\n== 2. Zero pose: our labels minus WHENet's own labelling of the same faces "
          f"(median signed difference, deg; {frames} frames, no expressions, default noise)")
    print(f"{'face shape':22s} {'views':8s} {'labels':>7s} {'yaw':>7s} {'pitch':>7s} {'roll':>7s}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        root, work = Path(tmp) / "seq", Path(tmp) / "work"
        for k, (label, shape) in enumerate(FACE_SHAPES.items()):
            name = f"synth_shape_{k}"
            make_sequence(root, name, frames, seed=k, expressions=False, **shape)
            for orientation in ("whenet", "eye_mouth"):
                out = work / name / orientation
                ours = run_labels(root, name, out, {"head_model": {"orientation": orientation}})
                oracle = oracle_table(out / "ingest" / "faces3d.parquet", out / "ingest" / "cameras.parquet")
                for view, (n, *d) in signed_differences(ours, oracle).items():
                    tag = label if orientation == "whenet" else f"  (eye-mouth rule)"
                    print(f"{tag:22s} {view:8s} {n:7d} " + " ".join(f"{v:+7.2f}" for v in d))
                    if orientation == "whenet":
                        worst = max(worst, *np.abs(d))
    print(f"target |median| <= 0.5 deg for each angle, frontal and back, every shape: "
          f"{'met' if worst <= 0.5 else 'NOT met'} (worst {worst:.2f})")


def audit_talking(frames: int) -> None:
    """The audit on a clean sequence of talking people: allowed shares, uncertainty."""
    print(f"\n== 5. Audit on clean talking faces ({frames} frames, 31 cameras, expressions on, no video)")
    from bench_audit_faults import uncertainty_calibration

    from workflow_runs import label_and_audit

    with tempfile.TemporaryDirectory() as tmp:
        root, results = Path(tmp) / "seq", Path(tmp) / "results"
        name = "synth_000"                                  # the name uncertainty_calibration reads
        make_sequence(root, name, frames, seed=2)
        config = resolve_config({"results": str(results), "audit": {"contact_sheet_size": 0, "video_sync": False}})
        result = label_and_audit(config, root, name, results)
        checks = result.metrics["checks"]
        flagged = int(result.samples["flagged"].sum())
        print(f"labels flagged: {flagged} of {len(result.samples)}; audit "
              f"{'passed' if result.passed else 'FAILED'}")
        for check, m in checks.items():
            if m.get("passed") is not None:
                print(f"  {check:22s} flagged {m.get('flagged', 0):6d} of {m.get('measured', 0):6d}  "
                      f"allowed share {m.get('max_flagged_fraction', float('nan')):.3f}  "
                      f"{'pass' if m['passed'] else 'FAIL'}")
        print(uncertainty_calibration(root / name, results, result.samples))


def loop_baseline(model, rig, landmarks, scores, fit_config, view_config) -> list:
    """The same work as ``label_faces``, written as a plain per-sample loop.

    The strongest simple version: per face one robust fit; per camera one
    ``cv2.projectPoints`` call (C code) on the sphere outline in camera coordinates, the
    Euler angles and quaternion of one matrix, the box, the facing flag.
    """
    import cv2

    from annotate.geometry.rotations import euler_from_matrix, quaternion_from_matrix
    from annotate.labels.fit import fit_heads
    from annotate.head.per_view import sphere_outline_camera

    zero = np.zeros(3)
    rows = []
    for m in range(len(landmarks)):
        f = fit_heads(model, landmarks[m:m + 1], scores[m:m + 1], fit_config)
        R_wh, t_wh, radius = f.R_world_head[0], f.t_world_head[0], model.spec.helmet_radius_cm * f.scale[0]
        for c in range(len(rig)):
            R = rig.R_cam_world[c] @ R_wh
            centre = rig.R_cam_world[c] @ t_wh + rig.t_cam_world[c]
            yaw, pitch, roll = np.degrees(euler_from_matrix(R))
            quat = quaternion_from_matrix(R)
            outline = sphere_outline_camera(centre, np.asarray(radius), view_config.silhouette_points)
            px = cv2.projectPoints(outline, zero, zero, rig.K[c], rig.dist[c])[0][:, 0]
            lo, hi = px.min(0), px.max(0)
            w, h = rig.image_size[c]
            clipped = np.clip(hi, 0, [w, h]) - np.clip(lo, 0, [w, h])
            fraction = clipped.prod() / (hi - lo).prod()
            facing = R[:, 2] @ -centre > 0
            rows.append((yaw, pitch, roll, quat, lo, hi, fraction, facing))
    return rows


def speed(frames: int, faces: int) -> None:
    print("\n== 3. Speed, one core (head fit with subject rest faces, expression modes and weights "
          "+ per-camera labels)")
    from annotate.head.head_model import build_head_model
    from annotate.labels.subjects import learn_subjects
    from annotate.synth.scene import published_landmarks, simulate_scene

    cfg = SceneConfig(num_frames=frames)
    state = simulate_scene(cfg)
    pub = published_landmarks(state, cfg)
    landmarks = pub.landmarks_world.reshape(-1, 70, 3)
    scores = pub.scores.reshape(-1, 70)
    persons = np.tile(state.person_ids, frames)
    reps = int(np.ceil(faces / len(landmarks)))
    landmarks = np.tile(landmarks, (reps, 1, 1))[:faces]
    scores = np.tile(scores, (reps, 1))[:faces]
    persons = np.tile(persons, reps)[:faces]
    model = build_head_model(landmarks[:1000], scores[:1000])
    t0 = time.perf_counter()
    subjects = learn_subjects(model, landmarks[:len(pub.scores.reshape(-1, 70))], scores[:len(pub.scores.reshape(-1, 70))],
                              persons[:len(pub.scores.reshape(-1, 70))])
    learn = time.perf_counter() - t0
    rig = state.rig
    fc, vc = FitConfig(), ViewConfig()
    chunk = 200                     # the label stage's default chunk_faces
    label_faces(model, rig, landmarks[:chunk], scores[:chunk], fc, vc, subjects.for_faces(persons[:chunk]))  # warm-up
    # Best of 3: this shared machine varies by 20% or more from run to run.
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(0, faces, chunk):
            label_faces(model, rig, landmarks[i:i + chunk], scores[i:i + chunk], fc, vc,
                        subjects.for_faces(persons[i:i + chunk]))
        runs.append(time.perf_counter() - t0)
    batched = min(runs)
    print(f"learning the subjects from {len(pub.scores.reshape(-1, 70))} faces: {learn:.2f} s (once per sequence)")
    n_labels = faces * len(rig)

    n_loop = min(300, faces)
    t0 = time.perf_counter()
    loop_baseline(model, rig, landmarks[:n_loop], scores[:n_loop], fc, vc)
    loop = (time.perf_counter() - t0) / (n_loop * len(rig))
    rate = n_labels / batched
    print(f"{'batched (chunks of 200 faces)':34s} {rate:12,.0f} camera-labels/s  ({faces} faces x {len(rig)} cameras in "
          f"{batched:.2f} s, best of {', '.join(f'{r:.2f}' for r in runs)} s)")
    print(f"{'per-sample Python loop':34s} {1 / loop:12,.0f} camera-labels/s  ({n_loop} faces)")
    print(f"speed-up: {rate * loop:.1f}x   target >= 100,000 /s and >= 20x: "
          f"{'met' if rate >= 1e5 and rate * loop >= 20 else 'NOT met'}")


# VmHWM (this process's own peak), not ru_maxrss: Linux carries ru_maxrss across
# fork + exec, so a child would report the (larger) parent's size.
MEMORY_SNIPPET = """
import sys
from annotate.head.head_model import load_head_model
from annotate.labels.stage import label_sequence
ingest, model, out = sys.argv[1:4]
s = label_sequence(ingest + '/faces3d.parquet', ingest + '/cameras.parquet', load_head_model(model), out, progress=False)
print(s.labels / s.seconds)
print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])
"""


def memory(frames: int) -> None:
    print("\n== 4. Memory: peak RSS of the label stage (separate process each)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        peaks = {}
        for label, n in (("default", frames), ("10x longer", 10 * frames)):
            name = f"synth_{n}"
            make_sequence(tmp / "seq", name, n)
            cfg = resolve_config({})
            ingest = tmp / name / "ingest"
            run_ingest(cfg, tmp / "seq", name, ingest)
            model = tmp / name / "head_model.json"
            run_head_model(cfg, [ingest / "faces3d.parquet"], model)
            res = subprocess.run([sys.executable, "-c", MEMORY_SNIPPET, str(ingest), str(model), str(tmp / name / "labels")],
                                 capture_output=True, text=True, check=True, cwd=REPO)
            rate, peak = res.stdout.strip().splitlines()[-2:]
            peaks[label] = int(peak) / 1024.0
            print(f"{label:12s} {n:6d} frames  peak RSS {peaks[label]:8.1f} MiB   "
                  f"whole stage incl. Parquet read/write: {float(rate):9,.0f} camera-labels/s")
        ratio = peaks["10x longer"] / peaks["default"]
        print(f"ratio 10x/default: {ratio:.2f}  target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=600, help="frames of the accuracy sequence")
    ap.add_argument("--faces", type=int, default=20000, help="faces for the speed test")
    ap.add_argument("--only", choices=["accuracy", "zero", "speed", "memory", "audit", "process"])
    ap.add_argument("--process-frames", type=int, default=3000, help="frames of the whole-process comparison")
    args = ap.parse_args()
    if args.only in (None, "accuracy"):
        accuracy(args.frames)
    if args.only in (None, "zero"):
        zero_pose(min(args.frames, 300))
    if args.only in (None, "speed"):
        speed(args.frames, args.faces)
    if args.only in (None, "memory"):
        memory(120)
    if args.only in (None, "audit"):
        audit_talking(90)
    if args.only in (None, "process"):
        print(f"\n== 6. The label stages (ingest, head-model, label processes) against the whole per-sample WHENet loop process "
              f"({args.process_frames} frames, 3 people, 31 cameras; benchmarks/bench_label_process.py)", flush=True)
        import bench_label_process

        bench_label_process.main(["--frames", str(args.process_frames), "--no-before"])


if __name__ == "__main__":
    main()
