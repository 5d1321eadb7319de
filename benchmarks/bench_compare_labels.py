"""Benchmark of ``annotate compare-labels``: does it find wrong labels in other people's files?

    python benchmarks/bench_compare_labels.py [--frames 60] [--cameras 31] [--people 4] [--each 40] [--seed 0]

A synthetic sequence is generated (no video) and labelled and audited as the workflow does
(ingest, head model, labels, audit). Its ``hdFace3d`` files are first made less tidy than
the generator writes them: every third frame lists its people in reverse order and every
seventh frame's first face has WHENet's 14 landmarks scored 0.05 (WHENet skips it without counting it), so
WHENet's face index k is not the person id. Another labeller is then simulated: WHENet's
own labelling maths on the same files (``tests/other_labels.py``), with boxes 1.3x ours,
written as a WHENet list, a DirectMHP COCO JSON and an opal23 list. Errors are injected
(``--each`` labels of each kind, at most one per face): yaw + 180 deg, two people of one
view swapping angles, pitch + 10 deg. Per file and error kind:

- recall = injected labels the comparison calls disagreeing / injected labels;
- false positives = clean labels it calls ``other_view_error`` (a mistake in that view) /
  clean labels;

with the default thresholds (5 deg, 2 deg for the view residual). The clean labels' median
and 99th-percentile disagreement, and their share beyond 5 deg, measure how far WHENet's
14-point fit of each head is from ours: whole-face disagreements, which the comparison
reports as ``disagree_flagged`` / ``disagree_unflagged``, not as view mistakes. Both labels
are also scored against the synthetic truth (median geodesic error), and for the clean
labels beyond 5 deg, the share where theirs is the one further from the truth.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from other_labels import inject_errors, untidy_face_files, whenet_style_labels   # noqa: E402
from workflow_runs import label_and_audit                                          # noqa: E402

from annotate.audit.external_labels import write_directmhp_coco, write_opal_list, write_whenet_list  # noqa: E402
from annotate.config import resolve_config                                         # noqa: E402
from annotate.core.results import ResultsLayout                                    # noqa: E402
from annotate.stages import compare_labels                                         # noqa: E402
from annotate.stages.synth import run as run_synth                                 # noqa: E402

SEQUENCE = "synth_000"
AUDIT = {"audit": {"detections": False, "video_sync": False, "contact_sheet_size": 0}}


def labelled_sequence(work: Path, frames: int, cameras: int, people: int) -> Path:
    """Generate, untidy, label and audit; returns the results folder."""
    cfg = {"synthetic": {"num_frames": frames, "num_cameras": cameras, "num_people": people, "render_video": False}}
    run_synth(resolve_config(cfg), work / "src", SEQUENCE)
    untidy_face_files(work / "src" / SEQUENCE)
    label_and_audit(AUDIT, work / "src", SEQUENCE, work / "results")
    return work / "results"


def write_files(rows: pd.DataFrame, out: Path) -> list[tuple[str, str]]:
    """The three formats of ``rows``; the box formats hold the rows with a box."""
    ypr = rows[["yaw", "pitch", "roll"]].to_numpy()
    boxed = rows[np.isfinite(np.stack(rows["box"].to_numpy())).all(axis=1)]
    box, bypr = np.stack(boxed["box"].to_numpy()), boxed[["yaw", "pitch", "roll"]].to_numpy()
    return [
        (str(write_whenet_list(out / "annotation.txt", rows["sequence"], rows["camera"], rows["frame"],
                               rows["face_index"], ypr)), "whenet"),
        (str(write_directmhp_coco(out / "coco_style_sampled_val.json", boxed["sequence"], boxed["camera"],
                                  boxed["frame"], box, bypr)), "directmhp"),
        (str(write_opal_list(out / "panoptic_ann_test.txt", boxed["sequence"], boxed["camera"], boxed["frame"],
                             box, bypr)), "opal"),
    ]


def injected_of_entries(rows: pd.DataFrame, fmt: str) -> np.ndarray:
    """The injection of each entry of the written file, in file order."""
    if fmt == "whenet":
        return rows["injected"].to_numpy()
    return rows[np.isfinite(np.stack(rows["box"].to_numpy())).all(axis=1)]["injected"].to_numpy()


def truth_errors(table: pd.DataFrame, results: Path, seq_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic errors (deg) against the synthetic truth of the other label and of ours, per
    matched entry (NaN elsewhere)."""
    from annotate.geometry.rotations import geodesic_distance, matrix_from_euler
    from annotate.panoptic.tables import load_cameras
    from annotate.synth.generate import load_ground_truth

    gt = load_ground_truth(seq_dir)
    rig = load_cameras(ResultsLayout(results).sequence(SEQUENCE).ingest("cameras"))
    cam_pos = {str(n): i for i, n in enumerate(rig.names)}
    frame_pos = {int(f): i for i, f in enumerate(gt.frames)}
    person_pos = {int(p): i for i, p in enumerate(gt.person_ids)}
    hit = (table["match"] == "matched").to_numpy()
    t = table[hit]
    R_true = rig.R_cam_world[[cam_pos[c] for c in t["camera"].astype(str)]] @ gt.R_world_head[
        [frame_pos[int(f)] for f in t["frame"]], [person_pos[int(p)] for p in t["person"]]]
    errors = []
    for cols in (["other_yaw", "other_pitch", "other_roll"], ["yaw", "pitch", "roll"]):
        e = np.full(len(table), np.nan)
        e[hit] = np.degrees(geodesic_distance(matrix_from_euler(*np.radians(t[cols].to_numpy()).T), R_true))
        errors.append(e)
    return errors[0], errors[1]


def score(table: pd.DataFrame, rows: pd.DataFrame, results: Path, seq_dir: Path) -> pd.DataFrame:
    out = []
    for (source, fmt), t in table.groupby(["source", "format"], sort=False, observed=True):
        injected = injected_of_entries(rows, str(fmt))
        found = t["disagrees"].to_numpy()
        view_error = (t["verdict"] == "other_view_error").to_numpy()
        clean = (injected == "") & (t["match"].to_numpy() == "matched")
        geo = t["geodesic_deg"].to_numpy()[clean]
        line = {"format": fmt, "entries": len(t), "matched": int((t["match"] == "matched").sum())}
        for kind in ("flip_yaw", "swap", "pitch10"):
            k = injected == kind
            line[f"recall {kind}"] = f"{found[k].mean():.1%} ({int(found[k].sum())}/{int(k.sum())})"
        line["false positives"] = f"{view_error[clean].mean():.2%} ({int(view_error[clean].sum())}/{int(clean.sum())})"
        line["clean median / p99 (deg)"] = f"{np.median(geo):.2f} / {np.percentile(geo, 99):.2f}"
        line["clean beyond 5 deg"] = f"{(geo > 5).mean():.1%}"
        other_err, our_err = (e[clean] for e in truth_errors(t.reset_index(drop=True), results, seq_dir))
        line["error vs truth: theirs / ours (median, deg)"] = f"{np.median(other_err):.2f} / {np.median(our_err):.2f}"
        beyond = geo > 5
        line["beyond 5 deg: theirs worse"] = f"{(other_err[beyond] > our_err[beyond]).mean():.1%}"
        out.append(line)
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--cameras", type=int, default=31)
    ap.add_argument("--people", type=int, default=4)
    ap.add_argument("--each", type=int, default=40, help="labels per injected error kind (one error per face at most)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        results = labelled_sequence(work, args.frames, args.cameras, args.people)
        t1 = time.perf_counter()
        rows = whenet_style_labels(work / "src" / SEQUENCE, SEQUENCE,
                                   ResultsLayout(results).sequence(SEQUENCE).labels("labels"), args.seed)
        rows = inject_errors(rows, args.each, args.seed)
        sources = write_files(rows, work)
        t2 = time.perf_counter()
        compare_labels.run(results, sources)
        t3 = time.perf_counter()
        table = pd.read_parquet(ResultsLayout(results).audit / compare_labels.FILES["table"])
        scores = score(table, rows, results, work / "src" / SEQUENCE)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)
    print(f"{args.frames} frames x {args.cameras} cameras x {args.people} people; {len(rows)} WHENet labels, "
          f"{args.each} of each error; label + audit {t1 - t0:.0f} s, comparison of 3 files {t3 - t2:.1f} s")
    print(scores.to_string(index=False))


if __name__ == "__main__":
    main()
