"""The label stages' processes (``annotate ingest``, ``head-model``, ``label``) against a plain
per-sample WHENet loop process.

    python benchmarks/bench_label_process.py [--frames 3000] [--work DIR] [--repeats 1] [--no-before]

Both sides run as separate processes on one core (``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS``
/ ``MKL_NUM_THREADS`` = 1, and ``taskset -c 0`` where it exists), and each is timed from the
outside, interpreter start-up and imports included: wall seconds, and CPU seconds (user +
system of the child) which a shared, busy machine disturbs less. With ``--repeats N`` the
runs are interleaved and the least of each is kept.

(a) the three stage commands the workflow runs, one process each, times added up:
    ``annotate ingest`` (calibration, every face and body file), ``annotate head-model``,
    ``annotate label`` (fits, per-camera labels, landmark visibility and the Parquet tables).
(b) the per-sample loop of WHENet's published preparation recipe, as a small script
    (``whenet_loop`` below, run in its own process): read the calibration and every
    ``hdFace3d`` file with the standard ``json`` module; per face fit WHENet's reference head
    (Horn), then per face and HD camera call ``annotate.head.whenet_oracle.whenet_label_one``
    (the fit and WHENet's Euler angles, step by step) and project WHENet's 648-point helmet
    sphere (radius 22 * scale around the fitted head) with ``cv2.projectPoints`` for the box;
    the rows are collected in a list.

The sequence is synthetic (``annotate.synth``; default 3,000 frames x 3 people x 31 HD
cameras, no video), generated once into ``--work`` (a temporary folder by default) and
reused. Also printed, each from its own one-core process: the same three commands with
every frame file through the standard-``json`` readers and the audit module imported at
start-up (what ingest and the CLI did before the orjson fast path), the seconds of each part
of the process (imports, ingest, head model, labels), the start-up cost of
``import annotate.cli``, and the parsing of all face and body files with ``json`` against
orjson, alone and with the readers' checks.

The top of this file imports only the standard library, so the loop process (b) is not
charged for anything it does not use.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ONE_CORE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# WHENet's helmet: 648 points on a sphere of radius HELMET_CM * scale around the fitted head.
HELMET_CM = 22.0
HELMET_RINGS, HELMET_PER_RING = 18, 36


# --- (b) the per-sample WHENet loop -----------------------------------------------------------
def helmet_sphere(n_rings: int = HELMET_RINGS, per_ring: int = HELMET_PER_RING):
    """(n_rings * per_ring, 3) unit-sphere points, rings of latitude strictly between the poles."""
    import numpy as np

    lat = (np.arange(n_rings) + 0.5) / n_rings * np.pi - np.pi / 2
    lon = np.arange(per_ring) / per_ring * 2 * np.pi
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    return np.stack([np.cos(la) * np.cos(lo), np.sin(la), np.cos(la) * np.sin(lo)], -1).reshape(-1, 3)


def whenet_loop(root: str, sequence: str) -> dict:
    """WHENet's per-sample preparation over one sequence; returns counts and the rows' length.

    Reads the files as WHENet's code does (``json.load`` per file), then one sample at a
    time: per face the Horn fit for the helmet's translation and scale (WHENet's ``align``:
    ``s = sum(data_c . R model_c) / sum |model_c|^2``, ``trans = mean(data) - s R mean(model)``),
    per face and camera ``whenet_label_one`` and ``cv2.projectPoints`` of the helmet.
    """
    import json

    import cv2
    import numpy as np

    from annotate.head.whenet_reference import WHENET_FACE70, WHENET_MIN_POINTS, WHENET_SCORE_GATE, \
        reference_points_cm
    from annotate.head.whenet_oracle import whenet_label_one
    from annotate.panoptic.layout import FACE_FILE, SequenceLayout

    layout = SequenceLayout(root, sequence)
    with open(layout.calibration) as fh:
        calib = json.load(fh)
    cameras = sorted((c for c in calib["cameras"] if c["type"] == "hd"), key=lambda c: c["name"])
    cams = []
    for c in cameras:
        R = np.array(c["R"], dtype=np.float64)
        cams.append((c["name"], R, cv2.Rodrigues(R)[0], np.array(c["t"], dtype=np.float64).reshape(3),
                     np.array(c["K"], dtype=np.float64), np.array(c["distCoef"], dtype=np.float64)))
    sphere = helmet_sphere()
    reference = reference_points_cm()
    names = sorted(n for n in os.listdir(layout.face_dir) if FACE_FILE.parse(n) is not None)
    rows, faces = [], 0
    for name in names:
        frame = FACE_FILE.parse(name)
        with open(layout.face_dir / name) as fh:
            doc = json.load(fh)
        for person in doc["people"]:
            face = person["face70"]
            landmarks = np.array(face["landmarks"], dtype=np.float64).reshape(70, 3)
            scores = np.array(face["averageScore"], dtype=np.float64)
            keep = [i for i, k in enumerate(WHENET_FACE70) if scores[k] > WHENET_SCORE_GATE]
            if len(keep) < WHENET_MIN_POINTS:
                continue
            faces += 1
            # WHENet's align: Horn rotation, then scale and translation of the reference head
            model = reference[keep].T
            data = landmarks[[WHENET_FACE70[i] for i in keep]].T
            model_c = model - model.mean(1, keepdims=True)
            data_c = data - data.mean(1, keepdims=True)
            U, _, Vh = np.linalg.svd(data_c @ model_c.T)
            S = np.eye(3)
            if np.linalg.det(U) * np.linalg.det(Vh) < 0:
                S[2, 2] = -1.0
            R_fit = U @ S @ Vh
            s = float(np.sum(data_c * (R_fit @ model_c)) / np.sum(model_c ** 2))
            trans = data.mean(1) - s * R_fit @ model.mean(1)
            helmet = sphere * (HELMET_CM * s) + trans
            for cam_name, R_cam, rvec, tvec, K, dist in cams:
                angles = whenet_label_one(landmarks, scores, R_cam)
                if angles is None:
                    continue
                px, _ = cv2.projectPoints(helmet, rvec, tvec, K, dist)
                px = px.reshape(-1, 2)
                x0, y0 = px.min(0)
                x1, y1 = px.max(0)
                rows.append((frame, person["id"], cam_name, *angles, float(x0), float(y0), float(x1), float(y1)))
    return {"files": len(names), "faces": faces, "rows": len(rows)}


# --- helpers ------------------------------------------------------------------------------------
def _pinned() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") else []


def _env() -> dict:
    env = dict(os.environ, **ONE_CORE)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds of one process (started and ended inside the timing), its CPU seconds
    (user + system: what it cost its core, whatever else the machine runs), and its stdout."""
    cpu = _cpu_children()
    start = time.perf_counter()
    done = subprocess.run(_pinned() + cmd, env=_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {done.returncode}")
    return seconds, _cpu_children() - cpu, done.stdout


def _timed_chain(cmds: list[list[str]]) -> tuple[float, float, str]:
    """``_timed`` of processes run one after the other: wall and CPU seconds added up, the
    last stdout."""
    runs = [_timed(cmd) for cmd in cmds]
    return sum(r[0] for r in runs), sum(r[1] for r in runs), runs[-1][2]


def _best(cmd: list[str], repeats: int) -> tuple[float, float, str]:
    """The fastest of ``repeats`` runs: least wall and least CPU seconds, last stdout."""
    runs = [_timed(cmd) for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2]


def make_sequence(root: Path, name: str, frames: int) -> Path:
    """Generate ``root/name`` (synthetic, no video) unless a complete one is there."""
    seq = root / name
    if (seq / "ground_truth.json").is_file():
        return seq
    code = ("import sys; from annotate.synth.generate import generate_sequence; "
            "from annotate.synth.scene import SceneConfig; "
            "generate_sequence(sys.argv[1], sys.argv[2], SceneConfig(num_frames=int(sys.argv[3])), "
            "render_video=False)")
    subprocess.run([sys.executable, "-c", code, str(root), name, str(frames)], env=_env(), check=True)
    return seq


# The same command through the reference (standard json) frame readers, as ingest read every
# file before the orjson fast path, and with the audit module imported at start-up as the CLI
# did: the "before" of this work with everything else unchanged.
_LABEL_BEFORE = r"""
import sys
import annotate.audit.checks
import annotate.panoptic.layout as L
L.read_json_fast = lambda path: None
from annotate.cli import main
sys.exit(main(sys.argv[1:]))
"""

# Seconds of each stage, in one process.
_PHASES = r"""
import sys, time
t0 = time.perf_counter()
from annotate.config import resolve_config
from annotate.stages import head_model, ingest, label
t1 = time.perf_counter()
from pathlib import Path
root, name, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
cfg = resolve_config(None)
ingest.run(cfg, root, name, out / "ingest")
t2 = time.perf_counter()
head_model.run(cfg, [out / "ingest" / "faces3d.parquet"], out / "head_model.json")
t3 = time.perf_counter()
s = label.run(cfg, out / "ingest" / "faces3d.parquet", out / "ingest" / "cameras.parquet",
              out / "head_model.json", out / "labels")
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""

# Parsing (and checking) every face and body file: the standard json parser as read_json uses
# it against orjson, and the exact readers against the readers with the fast path.
_JSON = r"""
import json, os, sys, time
from pathlib import Path
from annotate.panoptic import bodies as B, faces as F
from annotate.panoptic.layout import BODY_FILE, FACE_FILE, SequenceLayout, list_frames, read_json_fast
lay = SequenceLayout(sys.argv[1], sys.argv[2])
faces = [(str(lay.face_file(f)), int(f)) for f in list_frames(lay.face_dir, FACE_FILE).frames]
bodies = [(str(lay.body_file(f)), int(f)) for f in list_frames(lay.body_dir, BODY_FILE).frames]
files = [p for p, _ in faces + bodies]
jobs = {
    "json": lambda: [json.loads(Path(p).read_text(encoding="utf-8")) for p in files],
    "orjson": lambda: [read_json_fast(p) for p in files],
    "readers_json": lambda: ([F._read_face_frame_exact(Path(p), f, "", F.STAGE) for p, f in faces],
                             [B._read_body_frame_exact(Path(p), f, "", B.STAGE) for p, f in bodies]),
    "readers_fast": lambda: ([F.read_face_file(p, f) for p, f in faces], [B.read_body_file(p, f) for p, f in bodies]),
}
best = {}
for _ in range(int(sys.argv[3])):
    for label, job in jobs.items():
        t = time.perf_counter()
        job()
        best[label] = min(best.get(label, 1e9), time.perf_counter() - t)
print(" ".join(str(best[k]) for k in jobs))
"""


# --- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--sequence", default=None, help="sequence name (default synth_<frames>)")
    p.add_argument("--work", help="folder for the sequence and outputs (kept; default: a temporary one)")
    p.add_argument("--repeats", type=int, default=1, help="best of N runs of each process")
    p.add_argument("--no-before", action="store_true", help="skip the run through the standard-json readers")
    p.add_argument("--whenet-loop", nargs=2, metavar=("ROOT", "SEQUENCE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.whenet_loop:                      # the loop process (b)
        print(whenet_loop(*args.whenet_loop)["rows"])
        return 0

    name = args.sequence or f"synth_{args.frames}"
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="bench_label_process_")
    work = Path(args.work or tmp.name)
    try:
        root = work / "root"
        make_sequence(root, name, args.frames)
        out = work / "out"
        faces3d, cameras, model = out / "ingest" / "faces3d.parquet", out / "ingest" / "cameras.parquet", out / "model.json"
        stage_args = [["ingest", "--root", str(root), "--sequence", name, "--out", str(out / "ingest")],
                      ["head-model", "--faces3d", str(faces3d), "--out", str(model)],
                      ["label", "--faces3d", str(faces3d), "--cameras", str(cameras), "--model", str(model),
                       "--out", str(out / "labels")]]
        runs = {"ours": [[sys.executable, "-m", "annotate.cli", *a] for a in stage_args],
                "before": [[sys.executable, "-c", _LABEL_BEFORE, *a] for a in stage_args],
                "loop": [[sys.executable, str(Path(__file__).resolve()), "--whenet-loop", str(root), name]]}
        if args.no_before:
            del runs["before"]
        timings: dict[str, list] = {k: [] for k in runs}
        for _ in range(args.repeats):          # interleaved, so a busy spell hits every side
            for key, cmd in runs.items():
                if key != "loop":
                    shutil.rmtree(out, ignore_errors=True)
                timings[key].append(_timed_chain(cmd))
        best = {k: (min(r[0] for r in v), min(r[1] for r in v), v[-1][2]) for k, v in timings.items()}
        import pyarrow.parquet as pq

        labels = pq.ParquetFile(out / "labels" / "labels.parquet").metadata.num_rows   # same either way
        loop_rows = int(best["loop"][2].split()[-1])
        _, _, phases = _timed([sys.executable, "-c", _PHASES, str(root), name, str(work / "phases")])
        imports, ingest, head, label = (float(v) for v in phases.split())
        reps = max(3, args.repeats)
        bare = _best([sys.executable, "-c", "pass"], reps)[0]
        imp = _best([sys.executable, "-c", "import annotate.cli"], reps)[0] - bare
        imp_before = _best([sys.executable, "-c", "import annotate.cli, annotate.audit.checks"], reps)[0] - bare
        _, _, parsed = _timed([sys.executable, "-c", _JSON, str(root), name, str(max(1, args.repeats))])
        std_json, fast_json, readers_json, readers_fast = (float(v) for v in parsed.split())

        pinned = "taskset -c 0, " if _pinned() else ""
        print(f"sequence {name}: {args.frames} frames, {labels} camera labels; one core ({pinned}BLAS threads 1); "
              f"best of {args.repeats}, interleaved")
        print(f"{'whole process':47s}{'wall s':>8s}{'labels/s':>10s}{'CPU s':>8s}")
        names = {"ours": "ingest + head-model + label", "before": "the same, standard-json readers (before)",
                 "loop": "WHENet per-sample loop"}
        for key, (wall, cpu, _) in best.items():
            count = loop_rows if key == "loop" else labels
            print(f"{names[key]:47s}{wall:8.2f}{count / wall:10.0f}{cpu:8.2f}"
                  + (f"   ({loop_rows} rows)" if key == "loop" else ""))
        ratio = {k: (best["loop"][0] / v[0], best["loop"][1] / v[1]) for k, v in best.items() if k != "loop"}
        print("speed-up over the WHENet loop: " + "; ".join(
            f"{dict(ours='the stages', before='before')[k]} {w:.1f}x wall, {c:.1f}x CPU" for k, (w, c) in ratio.items()))
        print(f"the stages in one process: imports {imports:.2f} s, ingest {ingest:.2f} s, head model {head:.2f} s, "
              f"labels {label:.2f} s (fits, per-camera labels, visibility, tables)")
        print(f"start-up, import annotate.cli beyond a bare interpreter ({bare:.2f} s): {imp:.2f} s "
              f"(with the audit module as before: {imp_before:.2f} s)")
        print(f"all {args.frames} face + body files: parse json {std_json:.2f} s -> orjson {fast_json:.2f} s; "
              f"parse + check: json readers {readers_json:.2f} s -> fast readers {readers_fast:.2f} s")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
