"""``annotate compare-labels``: other people's labels of the same Panoptic frames against ours.

    annotate compare-labels [--whenet F ...] [--directmhp F ...] [--opal F ...]
                            [--results DIR] [--audit DIR] [--out DIR] [--threshold-deg 5]
                            [--view-threshold-deg 2] [--min-overlap 0.5]

Reads our labels (``results/<sequence>/labels/labels.parquet`` of every sequence the files
name), the ingest faces3d tables (to resolve WHENet's face indices) and our audit's
``flags.parquet`` (``annotate audit`` first), and writes to ``--out`` (default: the audit
folder) ``label_comparison.parquet`` (schemas/label_comparison.schema.yaml),
``label_comparison.json`` (the summary) and ``label_comparison.html`` (the report section as
a page; docs/audit.md). With ``audit.compare_labels.files`` in the config, the audit stage
runs the same comparison (``audit_hook``) and its report gets the section.
"""
from __future__ import annotations

from pathlib import Path

FILES = {"table": "label_comparison.parquet", "summary": "label_comparison.json", "report": "label_comparison.html"}


def compare(results: str | Path, sources: list[tuple[str, str]], flags, threshold_deg: float = 5.0,
            view_threshold_deg: float = 2.0, min_overlap: float = 0.5):
    """(label_comparison rows, summary) of ``sources`` ([(path, format)]) against the labels
    of ``results``, with our audit's ``flags`` (the flags.parquet rows)."""
    import pandas as pd

    from annotate.audit import compare as cmp
    from annotate.audit.external_labels import read_external_labels
    from annotate.core.results import ResultsLayout

    if not sources:
        raise ValueError("compare-labels needs at least one labels file (--whenet, --directmhp or --opal)")
    layout = ResultsLayout(results)
    files = [read_external_labels(path, fmt) for path, fmt in sources]
    named = sorted({s for ext in files for s in ext.sequence if s})
    present = [s for s in named if layout.sequence(s).labels("labels").is_file()]
    ours = cmp.read_our_labels([layout.sequence(s).labels("labels") for s in present])
    faces = None
    if any(ext.format == "whenet" for ext in files):
        missing = [str(p) for p in (layout.sequence(s).ingest("faces3d") for s in present) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"WHENet's face indices are resolved from the ingest faces3d tables; "
                                    f"missing: {', '.join(missing)}")
        faces = cmp.whenet_face_persons([layout.sequence(s).ingest("faces3d") for s in present])
    cfg = cmp.CompareConfig(threshold_deg=threshold_deg, view_threshold_deg=view_threshold_deg,
                            min_overlap=min_overlap)
    table = pd.concat([cmp.compare_labels(ext, ours, flags, faces, cfg) for ext in files], ignore_index=True)
    return table, cmp.comparison_summary(table, cfg)


def write(out_dir: str | Path, table, summary: dict) -> None:
    """label_comparison.parquet, .json and .html in ``out_dir``."""
    from annotate.audit.compare import write_comparison
    from annotate.audit.compare_report import write_comparison_report
    from annotate.core.atomic import write_json_atomic

    out = Path(out_dir)
    write_comparison(table, out / FILES["table"])
    write_json_atomic(out / FILES["summary"], summary)
    write_comparison_report(out / FILES["report"], table, summary)


def audit_hook(results: str | Path, settings: dict):
    """For the audit stage: flags -> (table, summary), written beside the audit; None when
    ``audit.compare_labels.files`` is empty."""
    sources = [(f["path"], f["format"]) for f in settings["files"]]
    if not sources:
        return None

    def hook(flags, out_dir):
        table, summary = compare(results, sources, flags, settings["threshold_deg"], settings["view_threshold_deg"],
                                 settings["min_overlap"])
        write(out_dir, table, summary)
        return table, summary
    return hook


def run(results: str | Path, sources: list[tuple[str, str]], out_dir: str | Path | None = None,
        audit_dir: str | Path | None = None, threshold_deg: float = 5.0, view_threshold_deg: float = 2.0,
        min_overlap: float = 0.5) -> dict:
    """Compare ``sources`` with the labels and audit of ``results``; writes the outputs and
    returns the summary."""
    from annotate.core.results import ResultsLayout
    from annotate.core.tables import read_table

    audit_dir = Path(audit_dir) if audit_dir else ResultsLayout(results).audit
    flags_path = audit_dir / "flags.parquet"
    if not flags_path.is_file():
        raise FileNotFoundError(f"{flags_path} does not exist: run 'annotate audit' on {results} first "
                                "(the comparison reports our audit's verdict on each label)")
    flags = read_table(flags_path, "audit_flags").to_pandas()
    table, summary = compare(results, sources, flags, threshold_deg, view_threshold_deg, min_overlap)
    write(out_dir or audit_dir, table, summary)
    return summary


def cmd_compare_labels(args) -> None:
    import json

    from annotate.config import resolve_config

    sources = [(p, fmt) for fmt in ("whenet", "directmhp", "opal") for p in (getattr(args, fmt) or [])]
    results = args.results or resolve_config(args.config)["results"]
    summary = run(results, sources, args.out, args.audit, args.threshold_deg, args.view_threshold_deg,
                  args.min_overlap)
    print(json.dumps(summary, indent=1))
    print(f"table: {Path(args.out or args.audit or Path(results) / 'audit') / FILES['table']}")


def add_commands(sub) -> None:
    """Register ``compare-labels`` on an argparse sub-parser collection."""
    sp = sub.add_parser("compare-labels", help="compare other people's labels of the same Panoptic frames (WHENet, "
                        "DirectMHP, opal23 files) with ours, label by label, with our audit's verdict",
                        description="match each label of the files to ours (sequence, camera, frame, then WHENet's "
                                    "face index or box overlap) and report the disagreement; docs/audit.md")
    sp.add_argument("--config", help="YAML config (for the results folder); defaults otherwise")
    sp.add_argument("--whenet", action="append", help="a WHENet annotation list (seq/CC_k_FFFFFFFF.jpg,yaw,pitch,roll)")
    sp.add_argument("--directmhp", action="append", help="a DirectMHP COCO JSON of CMU Panoptic frames")
    sp.add_argument("--opal", action="append", help="an opal23 list (seq/hdImgs/cam/cam_frame.jpg;x;y;w;h;yaw;pitch;roll)")
    sp.add_argument("--results", help="the pipeline's results folder (default: the config's)")
    sp.add_argument("--audit", help="the audit folder holding flags.parquet (default RESULTS/audit)")
    sp.add_argument("--out", help="output folder (default: the audit folder)")
    sp.add_argument("--threshold-deg", type=float, default=5.0, help="geodesic angle beyond which labels disagree")
    sp.add_argument("--view-threshold-deg", type=float, default=2.0,
                    help="view residual beyond which a label contradicts the same file's other views of the head")
    sp.add_argument("--min-overlap", type=float, default=0.5,
                    help="box intersection over the smaller box needed to match (directmhp, opal)")
    sp.set_defaults(func=cmd_compare_labels)
