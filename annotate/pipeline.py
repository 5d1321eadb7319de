"""Stage entry points shared by the CLI and the Snakemake rule scripts.

Each function takes a resolved config (``annotate.config.resolve_config``) and explicit
input/output paths, does one stage, and returns a printable summary. The Snakemake rules
and ``annotate <command>`` call exactly these, so both paths behave the same.

Per-sequence output layout (``<out>`` = ``results/<sequence>`` under Snakemake)::

    <out>/ingest/cameras.parquet      cameras table (schemas/cameras.schema.yaml)
    <out>/ingest/faces3d.parquet      3D face landmarks per frame and person
    <out>/ingest/bodies.parquet       3D body skeletons
    <out>/ingest/rejections.parquet   every input record that was not used, with a reason
    <out>/labels/head_fits.parquet    per frame and person: world_from_head, residual, status
    <out>/labels/labels.parquet       per frame, person and camera: the pose labels
    <out>/labels/summary.json         counts by status and reject reason
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path

from annotate.atomic import write_text_atomic
from annotate.config import (fit_config, head_frame_spec, resolve_config, smoothing_config, subject_config,
                             view_config)
from annotate.labels.head_model import HeadModel, load_head_model, save_head_model


def synth_scene_config(config: dict, index: int = 0):
    """The SceneConfig of synthetic sequence ``index`` (seed offset by the index)."""
    from annotate.synth.scene import SceneConfig

    s = dict(config["synthetic"])
    s.pop("sequences")
    s.pop("render_video")
    s["seed"] = s["seed"] + index
    s["image_size"] = tuple(s["image_size"])
    return SceneConfig(**s)


def run_synth(config: dict, root: str | Path, sequence: str, n_jobs: int = 2) -> Path:
    """Generate one synthetic Panoptic-format sequence under ``root/sequence``."""
    from annotate.synth.generate import generate_sequence

    index = int(sequence.rsplit("_", 1)[-1]) if sequence.rsplit("_", 1)[-1].isdigit() else 0
    return generate_sequence(root, sequence, synth_scene_config(config, index),
                             render_video=config["synthetic"]["render_video"], n_jobs=n_jobs)


def run_ingest(config: dict, root: str | Path, sequence: str, out_dir: str | Path):
    """Read a Panoptic-layout sequence into the ingest tables under ``out_dir``."""
    from annotate.panoptic.ingest import ingest_sequence

    ing = config["ingest"]
    return ingest_sequence(root, sequence, out_dir, cameras=ing["cameras"], frame_start=ing["frame_start"],
                           frame_end=ing["frame_end"], frame_step=ing["frame_step"], on_error=ing["on_error"])


def run_head_model(config: dict, faces3d_paths: list[str | Path], out_path: str | Path) -> HeadModel:
    """Build the mean head model from the ingested faces (or copy the configured one)."""
    from annotate.labels.stage import build_model_from_tables

    given = config["head_model"]["path"]
    if given:
        model = load_head_model(given)
    else:
        model = build_model_from_tables(faces3d_paths, config["head_model"]["max_faces"], head_frame_spec(config))
    save_head_model(model, out_path)
    return model


def run_label(config: dict, faces3d_path: str | Path, cameras_path: str | Path, model_path: str | Path,
              out_dir: str | Path):
    """Fit every face and label it in every camera; writes head_fits, labels and summary."""
    from annotate.labels.stage import label_sequence

    model = load_head_model(model_path)
    summary = label_sequence(faces3d_path, cameras_path, model, out_dir, fit_config(config), view_config(config),
                             chunk_faces=config["label"]["chunk_faces"], subject_config=subject_config(config),
                             smoothing=smoothing_config(config))
    write_json(Path(out_dir) / "summary.json", {
        "faces": summary.faces, "fits_ok": summary.fits_ok, "labels": summary.labels,
        "labels_valid": summary.labels_valid, "fit_status": dict(summary.fit_status),
        "reject_reasons": {k or "accepted": v for k, v in summary.reject_reasons.items()},
        "visibility": summary.visibility_json(),
        "seconds": round(summary.seconds, 3)})
    return summary


def run_label_sequence(config: dict | None, root: str | Path, sequence: str, out_dir: str | Path):
    """Ingest, build the head model (unless configured) and label one sequence, no Snakemake."""
    config = resolve_config(config)
    out_dir = Path(out_dir)
    ingest = run_ingest(config, root, sequence, out_dir / "ingest")
    model_path = out_dir / "head_model.json"
    run_head_model(config, [out_dir / "ingest" / "faces3d.parquet"], model_path)
    summary = run_label(config, out_dir / "ingest" / "faces3d.parquet", out_dir / "ingest" / "cameras.parquet",
                        model_path, out_dir / "labels")
    return ingest, summary


def run_triangulate(config: dict, root: str | Path, sequence: str, ingest_dir: str | Path, out_dir: str | Path):
    """Detect 2D landmarks in every view and triangulate them: ``out_dir/faces3d.parquet``
    (source=triangulated), ``rejections.parquet`` and ``summary.json``."""
    from annotate.config import triangulate_stage_config
    from annotate.labels.triangulate_stage import (
        make_backend,
        selected_frames,
        triangulate_sequence,
    )
    from annotate.panoptic.ingest import load_cameras

    ingest_dir, out_dir = Path(ingest_dir), Path(out_dir)
    seq_dir = Path(root) / sequence
    backend = make_backend(config, seq_dir, load_cameras(ingest_dir / "cameras.parquet"))
    frames = selected_frames(ingest_dir / "bodies.parquet", ingest_dir / "faces3d.parquet")
    summary = triangulate_sequence(seq_dir, ingest_dir / "cameras.parquet", ingest_dir / "bodies.parquet", frames,
                                   backend, out_dir, triangulate_stage_config(config),
                                   frame_source=config["detect"]["frames_from"])
    write_json(out_dir / "summary.json", {"backend": backend.name, **summary.as_dict()})
    return summary


def run_crosscheck(published: str | Path, triangulated: str | Path, out_dir: str | Path) -> dict:
    """Published vs triangulated faces: ``out_dir/crosscheck.parquet``, the combined
    ``out_dir/faces3d_combined.parquet`` (published + triangulated gap fill) and
    ``out_dir/crosscheck.json``."""
    from annotate.labels.triangulate_stage import crosscheck_faces3d

    out_dir = Path(out_dir)
    figures = crosscheck_faces3d(published, triangulated, out_dir / "crosscheck.parquet",
                                 out_dir / "faces3d_combined.parquet")
    write_json(out_dir / "crosscheck.json", figures)
    return figures


def audit_inputs(config: dict, results: str | Path, sequences: list[str], root: str | Path | None = None) -> list:
    """The audit's inputs per sequence under the Snakemake layout (``results/<sequence>/``):
    detections only with ``audit.detections``, the videos (under ``root``, default the
    config's sequence root) only with ``audit.video_sync``."""
    from annotate.audit.stage import SequenceInputs
    from annotate.config import sequence_root

    results = Path(results)
    out = []
    for seq in sequences:
        base = results / seq
        detections = base / "triangulate" / "detections2d.parquet"
        crosscheck = base / "triangulate" / "crosscheck.parquet"
        out.append(SequenceInputs(
            sequence=seq, labels=base / "labels" / "labels.parquet", fits=base / "labels" / "head_fits.parquet",
            bodies=base / "ingest" / "bodies.parquet",
            detections=detections if config["audit"]["detections"] and detections.is_file() else None,
            crosscheck=crosscheck if crosscheck.is_file() else None,
            rejections=[base / "ingest" / "rejections.parquet", base / "triangulate" / "rejections.parquet",
                        results / "dataset" / "parts" / f"{seq}-rejections.parquet"],
            seq_dir=Path(root or sequence_root(config)) / seq if config["audit"]["video_sync"] else None,
            frame_source=config["detect"]["frames_from"], frame_step=config["ingest"]["frame_step"],
            sync_windows=config["audit"]["sync_windows"], sync_window_frames=config["audit"]["sync_window_frames"]))
    return out


def run_audit(config: dict, results: str | Path, sequences: list[str], out_dir: str | Path,
              model_path: str | Path | None = None, shards_dir: str | Path | None = None,
              root: str | Path | None = None):
    """Audit the labels of ``sequences`` under ``results`` into ``out_dir`` (annotate.audit.stage)."""
    from annotate.audit.stage import run_audit as audit

    results = Path(results)
    model_path = model_path or results / "head_model.json"
    if shards_dir is None and (results / "dataset" / "index.json").is_file():
        shards_dir = results / "dataset"
    return audit(audit_inputs(config, results, sequences, root), model_path, config, out_dir, shards_dir)


def run_label_and_audit(config: dict, root: str | Path, sequence: str, results: str | Path):
    """One sequence without Snakemake: ingest, head model and labels (``run_label_sequence``,
    into ``results/<sequence>/``), 2D detection, triangulation and the published/triangulated
    cross-check when ``audit.detections`` (for the per-view checks), then the audit into
    ``results/audit/``. Returns the
    ``AuditResult``."""
    results = Path(results)
    seq_out = results / sequence
    run_label_sequence(config, root, sequence, seq_out)
    if config["audit"]["detections"]:
        run_triangulate(config, root, sequence, seq_out / "ingest", seq_out / "triangulate")
        run_crosscheck(seq_out / "ingest" / "faces3d.parquet", seq_out / "triangulate" / "faces3d.parquet",
                       seq_out / "triangulate")
    return run_audit(config, results, [sequence], results / "audit", model_path=seq_out / "head_model.json",
                     root=root)


def write_json(path: str | Path, doc) -> Path:
    """Write JSON atomically."""
    if is_dataclass(doc):
        doc = asdict(doc)
    return write_text_atomic(path, json.dumps(doc, indent=1, default=str))


@contextlib.contextmanager
def logged(log_path: str | Path):
    """Send stdout and stderr (progress bars included) to a rule's log file.

    On an exception the traceback is written to the log before it propagates, so a failed
    rule's log says why.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            yield
        except BaseException:
            import traceback

            traceback.print_exc(file=log)
            raise
