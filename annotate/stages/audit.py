"""Stage ``audit``: the labels of a results folder audited (annotate.audit.stage)."""
from __future__ import annotations

from pathlib import Path

from annotate.config import sequence_root
from annotate.core.results import ResultsLayout


def inputs(config: dict, results: str | Path, sequences: list[str], root: str | Path | None = None) -> list:
    """The audit's inputs per sequence of ``results``: detections only with
    ``audit.detections`` (and when present), the videos (under ``root``, default the
    config's sequence root) only with ``audit.video_sync``."""
    from annotate.audit.stage import SequenceInputs
    from annotate.panoptic.tables import load_frame_offsets

    layout = ResultsLayout(results)
    out = []
    for seq in sequences:
        s = layout.sequence(seq)
        detections, crosscheck = s.triangulate("detections2d"), s.triangulate("crosscheck")
        out.append(SequenceInputs(
            sequence=seq, labels=s.labels("labels"), fits=s.labels("head_fits"), bodies=s.ingest("bodies"),
            detections=detections if config["audit"]["detections"] and detections.is_file() else None,
            crosscheck=crosscheck if crosscheck.is_file() else None,
            rejections=[s.ingest("rejections"), s.triangulate("rejections"),
                        layout.dataset / "parts" / f"{seq}-rejections.parquet"],
            seq_dir=Path(root or sequence_root(config)) / seq if config["audit"]["video_sync"] else None,
            frame_source=config["detect"]["frames_from"], frame_step=config["ingest"]["frame_step"],
            sync_windows=config["audit"]["sync_windows"], sync_window_frames=config["audit"]["sync_window_frames"],
            frame_offsets=load_frame_offsets(s.ingest("cameras")) if s.ingest("cameras").is_file() else {}))
    return out


def run(config: dict, results: str | Path, sequences: list[str], out_dir: str | Path,
        model_path: str | Path | None = None, shards_dir: str | Path | None = None,
        root: str | Path | None = None):
    """Audit ``sequences`` of ``results`` into ``out_dir``; the dataset's shards are read when
    ``results/dataset/index.json`` exists (or ``shards_dir`` is given)."""
    from annotate.audit.stage import run_audit

    layout = ResultsLayout(results)
    model_path = model_path or layout.head_model
    if shards_dir is None and (layout.dataset / "index.json").is_file():
        shards_dir = layout.dataset
    from annotate.stages.compare_labels import audit_hook

    return run_audit(inputs(config, results, sequences, root), model_path, config, out_dir, shards_dir,
                     audit_hook(results, config["audit"]["compare_labels"]))
