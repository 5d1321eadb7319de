"""The audit's self-contained HTML report.

``write_report`` turns the audit tables (schemas audit_samples, audit_flags,
audit_cameras), the metrics dict and, optionally, the rejections table and a
``CropSource`` into one HTML file. Every plot is a PNG inside a base64 ``data:`` URI, the
CSS is inline, and there is no JavaScript and no external URL, so the file opens offline
and can be mailed or archived as is. A plot whose columns are all NaN (a check that was
not run) becomes a "not measured" line, never an empty figure.

Sections: summary of the checks; coverage; fit quality and rejections; per-camera
consistency and video sync; temporal consistency; published vs triangulated agreement;
uncertainty; flagged samples; contact sheets; other people's labels against ours, when
compared (``annotate.audit.compare_report``).
"""
from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from annotate.core.atomic import write_text_atomic
from annotate.audit import figures
from annotate.audit.contact_sheet import (
    CropSource,
    contact_sheet,
    default_caption,
    normalise_key,
)

__all__ = ["CropSource", "flag_severity", "write_report"]

KEYS = ["sequence", "frame", "person", "camera"]
FIT_KEYS = ["sequence", "frame", "person"]
TEMPORAL_REASONS = ("angular_speed", "identity_jump")
WORST_ROWS = 30
# metrics keys the summary does not list as "other metrics" (shown elsewhere, or bookkeeping)
SUMMARY_SKIP = {"checks", "counts", "passed", "format", "version"}
CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;color:#222;
line-height:1.4;padding:0 16px}
h1{margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f0f0f0}td.text,th.text{text-align:left}
td.result{white-space:nowrap}tr.pass td.result{background:#c8e6c9}tr.fail td.result{background:#ffcdd2;font-weight:bold}
tr.notrun td.result{background:#eeeeee;color:#666}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:bold;color:#fff}
.badge.pass{background:#388e3c}.badge.fail{background:#c62828}
.na{color:#777;font-style:italic}.note{color:#555;font-size:13px}
img{max-width:100%;height:auto;display:block;margin:6px 0}nav a{margin-right:12px}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.row .na{margin:6px 12px}
"""
SECTIONS = [("summary", "Summary"), ("coverage", "Coverage"), ("fit", "Fit quality"),
            ("cameras", "Per-camera consistency"), ("temporal", "Temporal consistency"),
            ("crosscheck", "Published vs triangulated"), ("uncertainty", "Uncertainty"),
            ("flagged", "Flagged samples"), ("sheets", "Contact sheets"), ("other_labels", "Other labels")]


# ----------------------------------------------------------------------------- HTML pieces

def esc(value) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def image(png: bytes | None, alt: str) -> str:
    """An <img> with the PNG as a base64 data URI, or a "not measured" line when None."""
    if png is None:
        return not_measured(alt)
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def not_measured(what: str, why: str = "not measured") -> str:
    """The line written instead of a plot with no data."""
    return f'<p class="na">{esc(what)}: {esc(why)}</p>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def row(*parts: str) -> str:
    """Plots side by side (wrapping on narrow windows)."""
    return f'<div class="row">{"".join(parts)}</div>'


def fmt(value) -> str:
    """Numbers to 4 significant digits, None/NaN as an en dash."""
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return "\u2013"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def table(df: pd.DataFrame, text_columns: Iterable[str] = ()) -> str:
    """A plain HTML table of a DataFrame (values escaped and formatted by ``fmt``)."""
    text = set(text_columns) | {c for c in df.columns
                                if df[c].dtype == object or isinstance(df[c].dtype, pd.CategoricalDtype)}
    head = "".join(f'<th class="{"text" if c in text else ""}">{esc(c)}</th>' for c in df.columns)
    rows = []
    for values in df.itertuples(index=False, name=None):
        cells = "".join(f'<td class="{"text" if c in text else ""}">{esc(fmt(v))}</td>'
                        for c, v in zip(df.columns, values))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


# ----------------------------------------------------------------------------- data helpers

def column(df: pd.DataFrame | None, name: str) -> pd.Series:
    """A column as float64 (nullable ints -> NaN); all NaN when the table lacks it."""
    if df is None or name not in df.columns:
        return pd.Series(np.nan, index=None if df is None else df.index, dtype=np.float64)
    return pd.to_numeric(df[name], errors="coerce").astype(np.float64)


def check_metrics(metrics: dict, name: str) -> dict:
    """metrics["checks"][name], or {} when the check is absent."""
    return (metrics.get("checks") or {}).get(name) or {}


def threshold(metrics: dict, name: str) -> float | None:
    value = check_metrics(metrics, name).get("threshold")
    return None if value is None else float(value)


def has_reason(reasons: pd.Series, codes: Iterable[str]) -> np.ndarray:
    """(N,) bool: the comma-separated reason lists contain one of ``codes``."""
    codes = set(codes)
    return np.array([bool(codes & set(str(r).split(","))) for r in reasons.fillna("")], dtype=bool)


def per_fit(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per head fit (sequence, frame, person): the fit-level columns repeat per camera."""
    if len(samples) == 0:
        return samples
    return samples.drop_duplicates(FIT_KEYS)


def flag_severity(flags: pd.DataFrame) -> pd.Series:
    """How far each flag row is beyond its threshold, as a ratio >= 1.

    value / threshold for an upper limit, threshold / value for a lower limit (value below
    a minimum, e.g. fit_landmarks); 1 where the ratio is undefined (threshold 0, NaN).
    """
    v, t = column(flags, "value").to_numpy(), column(flags, "threshold").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(v >= t, v / t, t / v)
    ratio = np.where(np.isfinite(ratio) & (ratio > 0), np.abs(ratio), 1.0)
    return pd.Series(np.maximum(ratio, 1.0), index=flags.index)


def worst_labels(flags: pd.DataFrame) -> pd.DataFrame:
    """Flagged labels, worst first: highest severity, then most reasons."""
    if len(flags) == 0:
        return pd.DataFrame(columns=KEYS + ["severity", "reasons"])
    f = flags.assign(severity=flag_severity(flags), reason=flags["reason"].astype(str))
    for k in KEYS:
        f[k] = f[k].astype(str) if k in ("sequence", "camera") else f[k].astype(int)
    grouped = f.groupby(KEYS, sort=False).agg(severity=("severity", "max"), n=("reason", "size"),
                                              reasons=("reason", lambda r: ",".join(sorted(set(r)))))
    return grouped.sort_values(["severity", "n"], ascending=False, kind="stable").reset_index()


def camera_names(cameras: pd.DataFrame) -> list[str]:
    """Bar labels: the camera, prefixed by its sequence when there are several."""
    several = cameras["sequence"].astype(str).nunique() > 1
    pairs = zip(cameras["sequence"].astype(str), cameras["camera"].astype(str))
    return [f"{s}/{c}" if several else c for s, c in pairs]


# ----------------------------------------------------------------------------- sections

def summary_section(samples: pd.DataFrame, metrics: dict) -> str:
    """Overall verdict, counts and the checks table."""
    passed = metrics.get("passed")
    badge = "" if passed is None else \
        f'<span class="badge {"pass" if passed else "fail"}">{"PASSED" if passed else "FAILED"}</span>'
    counts = metrics.get("counts") or {"labels": len(samples)}
    other = {k: v for k, v in metrics.items() if k not in SUMMARY_SKIP}
    return "".join([f"<p>{badge}</p>", key_values(counts, "count"), "<h3>Checks</h3>", checks_table(metrics),
                    key_values(other, "metric") if other else ""])


def flat_text(value) -> str:
    """A metrics value as one line: dicts as "key: value, ...", lists comma-separated."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {flat_text(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(flat_text, value)) or "none"
    return fmt(value)


def key_values(values: dict, heading: str) -> str:
    """A two-column table of a dict's entries."""
    return table(pd.DataFrame({heading: list(values), "value": [flat_text(v) for v in values.values()]}), ["value"])


def checks_table(metrics: dict) -> str:
    """One row per check, coloured pass (green), fail (red) or not run (grey)."""
    checks = metrics.get("checks") or {}
    if not checks:
        return not_measured("checks", "no checks in the metrics")
    head = ("<tr><th class='text'>check</th><th>result</th><th>measured</th><th>flagged</th><th>flagged fraction</th>"
            "<th>threshold</th><th>max fraction</th><th>median</th><th>p99</th><th class='text'>unit</th>"
            "<th class='text'>description</th></tr>")
    rows = []
    for name, m in checks.items():
        state = {None: "notrun", True: "pass", False: "fail"}[m.get("passed")]
        result = {"notrun": "not run", "pass": "pass", "fail": "FAIL"}[state]
        cells = [m.get(k) for k in ("measured", "flagged", "flagged_fraction", "threshold", "max_flagged_fraction",
                                    "median", "p99")]
        tds = "".join(f"<td>{esc(fmt(v))}</td>" for v in cells)
        rows.append(f'<tr class="{state}"><td class="text">{esc(name)}</td><td class="result">{result}</td>{tds}'
                    f'<td class="text">{esc(m.get("unit", ""))}</td>'
                    f'<td class="text">{esc(m.get("description", ""))}</td></tr>')
    return f"<table>{head}{''.join(rows)}</table>"


def coverage_section(samples: pd.DataFrame) -> str:
    """Angle histograms, the yaw x pitch map and label counts per sequence, camera, person."""
    valid = samples[samples["valid"].astype(bool)] if "valid" in samples.columns else samples
    yaw, pitch, roll = (column(valid, k) for k in ("yaw", "pitch", "roll"))
    persons = valid["sequence"].astype(str) + ":" + valid["person"].astype(str) if len(valid) else pd.Series(dtype=str)
    return "".join([
        note(f"valid labels: {len(valid)} of {len(samples)}"),
        image(figures.angle_histograms(yaw, pitch, roll), "yaw, pitch, roll histograms"),
        image(figures.yaw_pitch_heatmap(yaw, pitch), "yaw x pitch heat map"),
        row(image(figures.counts_chart(valid["sequence"].astype(str).value_counts().sort_index(), "labels",
                                       "valid labels per sequence"), "labels per sequence"),
            image(figures.counts_chart(persons.value_counts().sort_index(), "labels", "valid labels per person"),
                  "labels per person")),
        image(figures.counts_chart(valid["camera"].astype(str).value_counts().sort_index(), "labels",
                                   "valid labels per camera"), "labels per camera"),
    ])


def fit_section(samples: pd.DataFrame, metrics: dict, rejections: pd.DataFrame | None) -> str:
    """Fit residual, landmarks used and body distance per fit; rejections by reason."""
    fits = per_fit(samples)
    parts = [note(f"head fits: {len(fits)}"),
             row(image(figures.histogram(column(fits, "fit_rms_cm"), "fit RMS residual (cm)",
                                         threshold(metrics, "fit_residual")), "fit_rms_cm distribution"),
                 image(figures.histogram(column(fits, "fit_landmarks_used"), "landmarks used by the fit",
                                         threshold(metrics, "fit_landmarks"), bins=np.arange(-0.5, 71, 1)),
                       "fit_landmarks_used distribution"),
                 image(figures.histogram(column(fits, "body_distance_cm"), "head to body head (cm)",
                                         threshold(metrics, "body_mismatch")), "body_distance_cm distribution")),
             "<h3>Rejections by reason</h3>", rejections_part(rejections)]
    return "".join(parts)


def rejections_part(rejections: pd.DataFrame | None) -> str:
    """Bar chart and table of rejections per (stage, reason)."""
    if rejections is None:
        return not_measured("rejections", "no rejections table given")
    if len(rejections) == 0:
        return note("no rejections")
    r = rejections.assign(stage=rejections["stage"].astype(str), reason=rejections["reason"].astype(str))
    counts = r.groupby(["stage", "reason"]).size().rename("count").reset_index().sort_values("count", ascending=False)
    chart = figures.counts_chart(pd.Series(counts["count"].to_numpy(), index=counts["stage"] + ": " + counts["reason"]),
                                 "items", "rejections by stage and reason")
    return image(chart, "rejections by reason") + table(counts)


def cameras_section(cameras: pd.DataFrame, samples: pd.DataFrame, metrics: dict) -> str:
    """Per-camera reprojection (px, and its ratio to the rig's median with the threshold) and video sync lag."""
    if len(cameras) == 0:
        return not_measured("per-camera consistency", "no cameras table rows")
    names = camera_names(cameras)
    flagged = cameras["flagged"].astype(bool).to_numpy() if "flagged" in cameras.columns else None
    parts = [
        note("red bars: cameras a camera-level check flagged"),
        row(image(figures.bar_chart(names, column(cameras, "reprojection_median_px"), "px",
                                    "median reprojection per camera (px)", highlight=flagged),
                  "reprojection_median_px per camera"),
            image(figures.bar_chart(names, column(cameras, "reprojection_ratio"), "x rig median",
                                    "median reprojection per camera / median camera's",
                                    threshold=threshold(metrics, "camera_reprojection"), highlight=flagged),
                  "reprojection_ratio per camera"),
            image(figures.histogram(column(samples, "reprojection_rel"), "reprojection per label (box sides)",
                                    threshold(metrics, "reprojection")), "reprojection_rel distribution")),
        "<h3>Video synchronisation</h3>",
        "<p>A camera whose video is L frames out of step is corrected by lowering its "
        "<code>ingest.frame_offsets</code> entry by L (docs/captures.md).</p>",
        row(image(figures.bar_chart(names, column(cameras, "sync_lag_frames"), "frames",
                                    "estimated video lag per camera (frames; 0 = in sync)", highlight=flagged),
                  "sync lag per camera"),
            image(figures.bar_chart(names, column(cameras, "sync_score"), "score",
                                    "sync score (best lag vs lag 0; 1 = no better)",
                                    threshold=threshold(metrics, "video_sync"), highlight=flagged),
                  "sync score per camera")),
        table(cameras.assign(sequence=cameras["sequence"].astype(str), camera=cameras["camera"].astype(str))),
    ]
    return "".join(parts)


def track_frames(samples: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per person track: speeds per frame and whether a temporal check flagged that frame."""
    if len(samples) == 0:
        return {}
    s = pd.DataFrame({"sequence": samples["sequence"].astype(str), "person": samples["person"].astype(int),
                      "frame": samples["frame"].astype(int),
                      "angular_speed_deg_s": column(samples, "angular_speed_deg_s"),
                      "head_speed_cm_s": column(samples, "head_speed_cm_s"),
                      "flagged": has_reason(samples["reasons"] if "reasons" in samples.columns
                                            else pd.Series("", index=samples.index), TEMPORAL_REASONS)})
    agg = s.groupby(["sequence", "person", "frame"]).agg(
        angular_speed_deg_s=("angular_speed_deg_s", "median"), head_speed_cm_s=("head_speed_cm_s", "median"),
        flagged=("flagged", "any")).reset_index()
    return {f"{seq} person {p}": t.sort_values("frame") for (seq, p), t in agg.groupby(["sequence", "person"])}


def temporal_section(samples: pd.DataFrame, metrics: dict) -> str:
    """Speed distributions (log) and per-track time series, the worst tracks first."""
    fits = per_fit(samples)
    tracks = track_frames(samples)
    order = sorted(tracks, key=lambda k: (-int(tracks[k]["flagged"].sum()), k))
    shown = {k: tracks[k] for k in order[:figures.MAX_TRACKS]}
    series = [("angular_speed_deg_s", "angular speed (deg/s)", threshold(metrics, "angular_speed")),
              ("head_speed_cm_s", "head speed (cm/s)", threshold(metrics, "identity_jump"))]
    parts = [row(image(figures.histogram(column(fits, "angular_speed_deg_s"), "angular speed (deg/s)",
                                         threshold(metrics, "angular_speed"), log_x=True),
                       "angular_speed_deg_s distribution"),
                 image(figures.histogram(column(fits, "head_speed_cm_s"), "head speed (cm/s)",
                                         threshold(metrics, "identity_jump"), log_x=True),
                       "head_speed_cm_s distribution")),
             "<h3>Per-person tracks</h3>",
             note("red crosses: frames an angular_speed or identity_jump check flagged; dashed: thresholds"),
             image(figures.track_time_series(shown, series), "per-track time series")]
    if len(tracks) > len(shown):
        parts.append(note(f"{len(tracks) - len(shown)} more tracks not drawn (the tracks with most flags are shown)"))
    return "".join(parts)


def distribution_section(samples: pd.DataFrame, metrics: dict, name: str, check: str, xlabel: str,
                         empty: str) -> str:
    """One per-fit distribution with its threshold, or ``empty`` when all NaN."""
    values = column(per_fit(samples), name)
    png = figures.histogram(values, xlabel, threshold(metrics, check))
    return image(png, f"{name} distribution") if png is not None else not_measured(name, empty)


def flagged_section(flags: pd.DataFrame, worst_n: int = WORST_ROWS) -> str:
    """Flag counts per reason and the worst flag rows."""
    if len(flags) == 0:
        return note("no label was flagged")
    counts = flags["reason"].astype(str).value_counts()
    worst = flags.assign(severity=flag_severity(flags)).sort_values("severity", ascending=False, kind="stable")
    worst = worst.head(worst_n)
    for k in ("sequence", "camera", "reason"):
        worst[k] = worst[k].astype(str)
    return "".join([
        image(figures.counts_chart(counts, "flags", "flags per reason"), "flags per reason"),
        table(counts.rename_axis("reason").rename("flags").reset_index()),
        f"<h3>The {len(worst)} worst flags</h3>",
        note("severity: how far the value is beyond its threshold (value / threshold, or threshold / value "
             "for a minimum); 1 where that is undefined"),
        table(worst[KEYS + ["reason", "value", "threshold", "severity", "detail"]], ["detail"]),
    ])


# ----------------------------------------------------------------------------- contact sheets

def sheets_section(samples: pd.DataFrame, flags: pd.DataFrame, crops: CropSource | None, size: int,
                   seed: int) -> str:
    """A random contact sheet of the audited samples and one of the worst flagged."""
    if crops is None:
        return not_measured("contact sheets", "no dataset shards given")
    if size <= 0:
        return not_measured("contact sheets", "turned off (contact_sheet_size 0)")
    keys = [normalise_key(k) for k in samples[KEYS].itertuples(index=False, name=None)] if len(samples) else []
    available = [k for k, ok in zip(keys, crops.has(keys)) if ok]
    rng = np.random.default_rng(seed)
    picked = [available[i] for i in sorted(rng.choice(len(available), min(size, len(available)), replace=False))]
    parts = ["<h3>Random samples</h3>",
             note(f"{len(picked)} of the {len(available)} audited labels that have a crop in the shards "
                  f"({len(keys) - len(available)} have none: rejected or not sampled by the dataset plan)"),
             sheet(crops, picked, None)]
    worst = worst_labels(flags)
    if len(worst) == 0:
        return "".join(parts + ["<h3>Worst flagged samples</h3>", not_measured("worst flagged samples",
                                                                               "no label was flagged")])
    worst_keys = [normalise_key(k) for k in worst[KEYS].itertuples(index=False, name=None)]
    has = crops.has(worst_keys)
    chosen = np.flatnonzero(has)[:size]
    skipped = int((~has[:chosen[-1] + 1]).sum()) if len(chosen) else int((~has).sum())
    captions = {worst_keys[i]: f"{worst['reasons'].iloc[i]} x{worst['severity'].iloc[i]:.3g}" for i in chosen}
    parts += ["<h3>Worst flagged samples</h3>",
              note(f"{len(chosen)} flagged labels, worst first; {skipped} worse-ranked flagged labels have no crop "
                   "in the shards and were skipped"),
              sheet(crops, [worst_keys[i] for i in chosen], captions)]
    return "".join(parts)


def sheet(crops: CropSource, keys: list, captions: dict | None) -> str:
    """One contact sheet; keys without a crop are listed in a note."""
    if not keys:
        return not_measured("contact sheet", "no crops")
    found, missing = crops.read(keys)
    extra = {c.key: "" if captions is None else captions.get(c.key, "") for c in found}
    text = [default_caption(c) + ("\n" + extra[c.key] if extra[c.key] else "") for c in found]
    parts = [image(contact_sheet(found, text), "contact sheet"),
             note("tiles, row by row: " + "; ".join(" ".join(["/".join(map(str, c.key)), extra[c.key]]).strip()
                                                     for c in found))]
    if missing:
        shown = ", ".join("/".join(map(str, k)) for k in missing[:5])
        parts.append(note(f"{len(missing)} crops missing or unreadable, skipped: {shown}"
                          + (" ..." if len(missing) > 5 else "")))
    parts.append(note("axes: x red, y green, z blue (R_cam_head); landmarks: green visible, orange self-occluded, "
                      "red occluded by another head, grey other codes"))
    return "".join(parts)


# ----------------------------------------------------------------------------- the report

def render_report(samples: pd.DataFrame, flags: pd.DataFrame, cameras: pd.DataFrame, metrics: dict,
                  rejections: pd.DataFrame | None = None, crops: CropSource | None = None,
                  contact_sheet_size: int = 24, seed: int = 0, title: str = "Label audit",
                  comparison: tuple[pd.DataFrame, dict] | None = None) -> str:
    """The report's HTML text (see ``write_report``)."""
    from annotate.audit.compare_report import comparison_section   # it builds on this module

    bodies = {
        "summary": summary_section(samples, metrics),
        "coverage": coverage_section(samples),
        "fit": fit_section(samples, metrics, rejections),
        "cameras": cameras_section(cameras, samples, metrics),
        "temporal": temporal_section(samples, metrics),
        "crosscheck": distribution_section(samples, metrics, "crosscheck_cm", "crosscheck",
                                           "published vs triangulated, median distance (cm)",
                                           "not available (no face has both published and triangulated landmarks)"),
        "uncertainty": distribution_section(samples, metrics, "uncertainty_deg", "uncertainty",
                                            "1-sigma rotation uncertainty (deg)", "not measured"),
        "flagged": flagged_section(flags),
        "sheets": sheets_section(samples, flags, crops, contact_sheet_size, seed),
        "other_labels": comparison_section(*(comparison or (None, None))),
    }
    nav = "".join(f'<a href="#{k}">{esc(t)}</a>' for k, t in SECTIONS)
    sections = "".join(f'<section id="{k}"><h2>{esc(t)}</h2>{bodies[k]}</section>' for k, t in SECTIONS)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1><nav>{nav}</nav>{sections}</body></html>\n")


def write_report(path: str | Path, samples: pd.DataFrame, flags: pd.DataFrame, cameras: pd.DataFrame,
                 metrics: dict, rejections: pd.DataFrame | None = None, crops: CropSource | None = None,
                 *, contact_sheet_size: int = 24, seed: int = 0, title: str = "Label audit",
                 comparison: tuple[pd.DataFrame, dict] | None = None) -> Path:
    """Write the self-contained HTML report atomically (temporary file, then rename).

    samples, flags, cameras: the audit tables (schemas audit_samples, audit_flags,
    audit_cameras); metrics: the audit metrics (``checks``: name -> passed, measured,
    flagged, flagged_fraction, threshold, max_flagged_fraction, unit, description, median,
    p99; optional ``passed`` and ``counts``); rejections: the rejections table (sequence,
    stage, frame, person, camera, file, reason, detail) or None; crops: where the contact
    sheets' crops come from, or None for no contact sheets. contact_sheet_size crops per
    sheet, drawn at random with ``seed``. comparison: (label_comparison rows, summary) of
    other people's labels (``annotate.audit.compare``) or None. Returns the path.
    """
    text = render_report(samples, flags, cameras, metrics, rejections, crops, contact_sheet_size, seed, title,
                         comparison)
    return write_text_atomic(path, text)
