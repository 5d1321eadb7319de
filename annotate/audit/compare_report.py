"""HTML of a label comparison (``annotate.audit.compare``): the audit report's "Other
labels" section, and the same as a self-contained page (``label_comparison.html``).

Per file compared: the counts by match and verdict, the disagreement histogram with its
threshold, and the worst disagreements with our audit's reasons.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from annotate.audit import figures
from annotate.audit.report import CSS, esc, image, not_measured, note, row, table
from annotate.core.atomic import write_text_atomic

WORST_ROWS = 30
WORST_COLUMNS = ["entry", "sequence", "frame", "camera", "person", "geodesic_deg", "face_offset_deg",
                 "view_residual_deg", "yaw_diff", "pitch_diff", "roll_diff", "valid", "audit_reasons", "verdict"]


def comparison_section(table: pd.DataFrame | None, summary: dict | None, worst_n: int = WORST_ROWS) -> str:
    """The section body; a "not compared" line without a comparison."""
    if table is None or summary is None or not summary.get("sources"):
        return not_measured("other labels", "not compared (audit.compare_labels, or annotate compare-labels)")
    parts = [note(f"A label of the other file disagrees with ours when the rotations differ by more than "
                  f"{summary['threshold_deg']:g} deg (the two fits of the head differ), or when its view residual "
                  f"exceeds {summary['view_threshold_deg']:g} deg (other_view_error: it contradicts the same file's "
                  f"labels of that head in other views). Boxes match when their intersection covers "
                  f"{summary['min_overlap']:g} of the smaller box. disagree_unflagged: our audit passes our label "
                  "while the other file says otherwise.")]
    for source, s in summary["sources"].items():
        t = table[table["source"].astype(str) == source]
        counts = pd.DataFrame([{"entries": s["entries"], **{f"match: {k}": v for k, v in s["match"].items()},
                                **s["verdict"], "median geodesic (deg)": s["median_geodesic_deg"],
                                "p90 geodesic (deg)": s["p90_geodesic_deg"]}])
        worst = t[t["disagrees"]].sort_values("geodesic_deg", ascending=False).head(worst_n)
        parts.append(f"<h3>{esc(Path(source).name)} ({esc(s['format'])})</h3>{table_html(counts)}")
        parts.append(row(image(figures.histogram(t["geodesic_deg"], "disagreement with our label (deg)",
                                                 summary["threshold_deg"], log_x=True), "disagreement")))
        parts.append(table_html(worst[WORST_COLUMNS]) if len(worst) else note("no disagreement"))
    return "".join(parts)


def table_html(df: pd.DataFrame) -> str:
    return table(df, text_columns=[c for c in ("sequence", "camera", "audit_reasons", "verdict") if c in df])


def write_comparison_report(path: str | Path, table_: pd.DataFrame, summary: dict,
                            title: str = "Other labels against ours") -> Path:
    """The section as one self-contained HTML page (no script, no external URL)."""
    text = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"
            f"{comparison_section(table_, summary)}</body></html>\n")
    return write_text_atomic(path, text)
