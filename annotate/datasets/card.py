"""The dataset card (card.json + card.md), the shard index and the media rejections table.

Written beside the shards once every sequence is built: counts per split and sequence,
yaw/pitch/roll histograms per split (read from the label columns of the shards, no image
is read), the labels that did not become samples (by reason), the samples whose media
failed (by reason), the shard list, the configuration and the code version.
"""
from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from annotate.core.atomic import write_json_atomic, write_text_atomic
from annotate.datasets.frame_choice import describe_windows
from annotate.datasets.readers import INDEX_FILE, read_columns
from annotate.core.schema import load_schema
from annotate.core.tables import StreamingTableWriter, read_table

HIST_BIN_DEG = 10
ANGLE_RANGES = {"yaw": (-180, 180), "pitch": (-90, 90), "roll": (-90, 90)}


def code_version() -> str:
    """``git describe --always --dirty`` of the source tree, else the installed package version."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "describe", "--tags", "--always", "--dirty"], cwd=here, capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"git {out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"annotate {version('annotate')}"
    except PackageNotFoundError:
        return "unknown"


def angle_histograms(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray, bin_deg: int = HIST_BIN_DEG) -> dict:
    """{angle: {"edges": [...], "counts": [...]}} in ``bin_deg`` bins over each angle's range."""
    out = {}
    for name, values in (("yaw", yaw), ("pitch", pitch), ("roll", roll)):
        lo, hi = ANGLE_RANGES[name]
        edges = np.arange(lo, hi + bin_deg, bin_deg)
        counts, _ = np.histogram(np.clip(values, lo, hi), bins=edges)
        out[name] = {"edges": edges.tolist(), "counts": counts.tolist()}
    return out


def _shard_list(sequence_docs: Sequence[dict]) -> list[dict]:
    shards = []
    for doc in sequence_docs:
        for unit in doc["units"]:
            for s in unit["shards"]:
                shards.append({**s, "sequence": doc["sequence"], "camera": unit["camera"]})
    return sorted(shards, key=lambda s: (s["split"], s["path"]))


def merge_rejections(paths: Sequence[str | Path], out_path: str | Path) -> Counter:
    """Concatenate per-sequence media rejection tables into one; returns counts by reason."""
    counts: Counter = Counter()
    with StreamingTableWriter(out_path, "rejections") as out:
        for p in paths:
            t = read_table(p, "rejections")
            if t.num_rows:
                out.write(t)
                counts.update(t.column("reason").to_pylist())
        if out.rows == 0:
            out.write(load_schema("rejections").arrow.empty_table())
    return counts


def build_card(out_dir: str | Path, plan_summary: dict, sequence_docs: Sequence[dict], config: dict,
               media_rejections: Counter) -> dict:
    """The card document (see the module docstring)."""
    out_dir = Path(out_dir)
    shards = _shard_list(sequence_docs)
    labels = read_columns([out_dir / s["path"] for s in shards], ["split", "sequence", "camera", "subject", "yaw",
                                                                  "pitch", "roll", "facing_camera"])
    split = np.asarray(labels.column("split").to_pylist(), dtype=object) if labels.num_rows else np.array([], object)
    per_split = {}
    for name in sorted(set(split.tolist())):
        m = split == name
        t = labels.filter(pa.array(m))
        per_split[name] = {
            "samples": int(m.sum()),
            "sequences": sorted(set(t.column("sequence").to_pylist())),
            "subjects": len(set(t.column("subject").to_pylist())),
            "facing_camera": int(np.sum(t.column("facing_camera").to_numpy(zero_copy_only=False))),
            "histograms": angle_histograms(*(t.column(a).to_numpy() for a in ("yaw", "pitch", "roll"))),
        }
    schema = load_schema("samples")
    return {
        "name": "annotate head-pose dataset",
        "schema": {"name": schema.name, "version": schema.version},
        "code_version": code_version(),
        "samples": int(labels.num_rows),
        "splits": per_split,
        "sequences": {doc["sequence"]: doc["samples"] for doc in sequence_docs},
        "cameras": len({(s["sequence"], s["camera"]) for s in shards}),
        "shards": {"count": len(shards), "bytes": int(sum(s["bytes"] for s in shards))},
        "labels_not_used": {
            "labels": plan_summary.get("labels", 0),
            "rejected_labels_by_reason": plan_summary.get("label_rejections", {}),
            "frames_not_selected": plan_summary.get("frames_not_selected", 0),
            "thinned": plan_summary.get("thinned", 0),
            "balanced_out": plan_summary.get("balanced_out", 0),
        },
        "frame_selection": {
            "frame_choice": config.get("dataset", {}).get("frame_choice", "exact"),
            "key_frame_windows": plan_summary.get("key_frame_windows", 0),
            "other_frame_windows": plan_summary.get("other_frame_windows", 0),
            "reference_frame_windows": plan_summary.get("reference_frame_windows", 0),
            "frame_kinds_unknown": plan_summary.get("frame_kinds_unknown", []),
        },
        "media_rejections_by_reason": dict(sorted(media_rejections.items())),
        "histogram_bin_deg": HIST_BIN_DEG,
        "conventions": "Euler angles (deg): R_cam_head @ diag(1,-1,-1) == Rx(-pitch) @ Ry(yaw) @ Rz(roll) "
                       "(WHENet / 300W-LP / HopeNet); crop_from_image maps full-frame px to crop px.",
        "config": config,
    }


def _bar(counts: list[int], width: int = 30) -> list[str]:
    top = max(counts) if counts and max(counts) else 1
    return ["#" * int(round(width * c / top)) for c in counts]


def _frame_choice_lines(selection: dict) -> list[str]:
    """The frame_choice cheapest_to_decode counts, when that choice was made."""
    if selection.get("frame_choice") != "cheapest_to_decode":
        return []
    return ["- frames cheapest to decode: " + describe_windows(
        selection["key_frame_windows"], selection["reference_frame_windows"], selection["other_frame_windows"],
        selection.get("frame_kinds_unknown") or [])]


def card_markdown(card: dict) -> str:
    """A human-readable rendering of the card."""
    lines = [f"# {card['name']}", "",
             f"- schema: `{card['schema']['name']}` {card['schema']['version']}",
             f"- code: {card['code_version']}",
             f"- samples: {card['samples']} in {card['shards']['count']} shards "
             f"({card['shards']['bytes'] / 2**20:.1f} MiB), {card['cameras']} cameras",
             f"- sequences: " + ", ".join(f"{k} ({v})" for k, v in card["sequences"].items()), "",
             "## Splits", "", "| split | samples | sequences | subjects | facing camera |", "| --- | --- | --- | --- | --- |"]
    for name, s in card["splits"].items():
        lines.append(f"| {name} | {s['samples']} | {len(s['sequences'])} | {s['subjects']} | {s['facing_camera']} |")
    lu = card["labels_not_used"]
    lines += ["", "## Labels that are not samples", "",
              f"- labels read: {lu['labels']}",
              "- rejected labels: " + (", ".join(f"{k} {v}" for k, v in lu["rejected_labels_by_reason"].items()) or "none"),
              f"- outside the frame selection: {lu['frames_not_selected']}; thinned (yaw change): {lu['thinned']}; "
              f"balanced out: {lu['balanced_out']}",
              *_frame_choice_lines(card.get("frame_selection", {})),
              "- media rejections: " + (", ".join(f"{k} {v}" for k, v in card["media_rejections_by_reason"].items())
                                        or "none") + " (rejections.parquet)", ""]
    for name, s in card["splits"].items():
        for angle in ("yaw", "pitch", "roll"):
            h = s["histograms"][angle]
            lines += [f"## {name}: {angle} ({card['histogram_bin_deg']} deg bins)", "", "```"]
            for lo, c, bar in zip(h["edges"][:-1], h["counts"], _bar(h["counts"])):
                lines.append(f"{lo:5d} {c:7d} {bar}")
            lines += ["```", ""]
    lines += ["## Conventions", "", card["conventions"], "", "## Configuration", "", "```json",
              json.dumps(card["config"], indent=1, sort_keys=True, default=str), "```", ""]
    return "\n".join(lines)


def write_card(out_dir: str | Path, plan_summary_path: str | Path, sequence_json_paths: Sequence[str | Path],
               rejection_paths: Sequence[str | Path], config: dict) -> dict:
    """Write ``index.json``, ``rejections.parquet``, ``card.json`` and ``card.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    plan_summary = json.loads(Path(plan_summary_path).read_text())
    docs = [json.loads(Path(p).read_text()) for p in sequence_json_paths]
    media = merge_rejections(rejection_paths, out_dir / "rejections.parquet")
    write_json_atomic(out_dir / INDEX_FILE, {"schema": "samples", "shards": _shard_list(docs)})
    card = build_card(out_dir, plan_summary, docs, config, media)
    write_json_atomic(out_dir / "card.json", card)
    write_text_atomic(out_dir / "card.md", card_markdown(card))
    return card

