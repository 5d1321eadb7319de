"""The stages: one module each, the entry points the Snakemake rules and the CLI call.

Each ``run(config, ...)`` takes a resolved config (``annotate.config.resolve_config``),
builds its typed parameters from it (``annotate.config``) and explicit input/output paths
(``annotate.core.results`` names them), does one stage and returns a printable summary::

    synth        generate a synthetic Panoptic-format sequence
    ingest       calibration, faces, bodies -> Parquet tables (+ rejections)
    triangulate  2D detection in every view -> triangulated faces3d; the cross-check
    head_model   the mean head model of all sequences
    label        per-face head fits and per-camera labels
    dataset      plan, shards, card, exports
    audit        report, metrics, flags

The order in which they run is the workflow's (``Snakefile``), and only the workflow's:
``annotate run`` runs it (``annotate.stages.workflow``).
"""
