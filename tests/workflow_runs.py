"""Labelled sequences for the end-to-end tests and the benchmarks.

``label_sequence`` runs the product's workflow (``annotate run``: the Snakefile) on a
Panoptic-layout folder. ``label_and_audit`` calls the stage entry points one after the
other on one sequence, so that a test can label and audit a sequence it has damaged on
purpose without building a dataset; the order is the workflow's (ingest, triangulate and
cross-check, head model, label, audit).
"""
from __future__ import annotations

from pathlib import Path

from annotate.config import deep_merge, resolve_config
from annotate.core.results import ResultsLayout, SequenceLayout
from annotate.stages import audit, head_model, ingest, label, triangulate
from annotate.stages.workflow import run_workflow


def panoptic_config(root: str | Path, sequences: list[str], results: str | Path, config: dict | None = None) -> dict:
    """``config`` reading ``sequences`` under ``root`` into ``results`` (these win over
    what ``config`` says of them)."""
    base = {"source": "panoptic", "results": str(results),
            "panoptic": {"root": str(root), "sequences": list(sequences)}}
    return deep_merge(config or {}, base)


def label_sequence(root: str | Path, sequence: str, results: str | Path, config: dict | None = None,
                   cores: int = 2) -> SequenceLayout:
    """Ingest, head model and labels of ``root/sequence`` by the workflow; returns the
    sequence's output layout (``results/<sequence>/``)."""
    results = Path(results)
    layout = ResultsLayout(results)
    run_workflow(panoptic_config(root, [sequence], results, config), [layout.sequence(sequence).labels("labels")],
                 cores=cores, workdir=results)
    return layout.sequence(sequence)


def label_and_audit(config: dict | None, root: str | Path, sequence: str, results: str | Path):
    """One sequence's labels (with triangulation and cross-check when ``audit.detections``)
    and its audit into ``results/audit``; returns the ``AuditResult``."""
    cfg = resolve_config(panoptic_config(root, [sequence], results, config))
    layout = ResultsLayout(results)
    seq = layout.sequence(sequence)
    ingest.run(cfg, root, sequence, seq.ingest_dir)
    if cfg["audit"]["detections"]:
        triangulate.run(cfg, root, sequence, seq.ingest_dir, seq.triangulate_dir)
        triangulate.crosscheck(seq.ingest("faces3d"), seq.triangulate("faces3d"), seq.triangulate_dir)
    head_model.run(cfg, [seq.faces3d_for_labels(cfg["landmarks3d"])], layout.head_model)
    label.run(cfg, seq.faces3d_for_labels(cfg["landmarks3d"]), seq.ingest("cameras"), layout.head_model,
              seq.labels_dir)
    return audit.run(cfg, results, [sequence], layout.audit, root=root)


def build_dataset(root: str | Path, sequences: list[str], results: str | Path, config: dict | None = None,
                  cores: int = 2) -> Path:
    """Labels and the dataset (shards, card, enabled exports) of ``sequences`` by the
    workflow; returns the dataset folder (``results/dataset``)."""
    from annotate.stages.dataset import enabled_exports, export_folder

    user = panoptic_config(root, sequences, results, config)
    dataset = ResultsLayout(results).dataset
    targets = [dataset / "card.json"] + [dataset / "exports" / export_folder(e)
                                          for e in enabled_exports(resolve_config(user))]
    run_workflow(user, targets, cores=cores, workdir=results)
    return dataset
