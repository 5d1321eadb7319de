"""The audit report's plots: matplotlib (Agg backend) figures returned as PNG bytes.

Every function takes plain arrays or DataFrames and returns PNG bytes, or ``None`` when
there is nothing to draw (no rows, or every value NaN): the report then writes "not
measured" instead of an empty or broken figure. Nothing here touches files or HTML.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

DPI = 80
FLAG_COLOUR = "#d62728"
BAR_COLOUR = "#4c72b0"
PASS_COLOUR = "#4c9a2a"
# Tracks drawn in the per-person time series; the report says how many were left out.
MAX_TRACKS = 8


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finite(values) -> np.ndarray:
    """The finite values of ``values`` as float64 (nulls and NaN dropped)."""
    a = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(np.float64, na_value=np.nan)
    return a[np.isfinite(a)]


def to_png(fig) -> bytes:
    """Render a figure to PNG bytes and close it."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _threshold_line(ax, threshold: float | None, horizontal: bool = False) -> None:
    """A dashed red line at the check's threshold (when there is one)."""
    if threshold is None or not np.isfinite(threshold):
        return
    line = ax.axhline if horizontal else ax.axvline
    line(threshold, color=FLAG_COLOUR, ls="--", lw=1.2, label=f"threshold {threshold:g}")
    ax.legend(fontsize=8)


def histogram(values, xlabel: str, threshold: float | None = None, bins: int | Sequence[float] = 40,
              log_x: bool = False, title: str = "") -> bytes | None:
    """Histogram of the finite values (log-spaced bins on a log x axis); None when empty."""
    v = finite(values)
    if log_x:
        v = v[v > 0]
    if v.size == 0:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    if log_x:
        lo, hi = v.min(), max(v.max(), v.min() * 1.01)
        if threshold is not None and np.isfinite(threshold) and threshold > 0:
            lo, hi = min(lo, threshold), max(hi, threshold)
        bins = np.geomspace(lo, hi * 1.0001, bins if isinstance(bins, int) else len(bins))
        ax.set_xscale("log")
    ax.hist(v, bins=bins, color=BAR_COLOUR)
    _threshold_line(ax, threshold)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title or f"{xlabel} (n = {v.size})", fontsize=10)
    ax.grid(alpha=0.3)
    return to_png(fig)


def angle_histograms(yaw, pitch, roll) -> bytes | None:
    """Yaw, pitch and roll histograms side by side (5 deg bins); None when all empty."""
    columns = {"yaw": (yaw, 180), "pitch": (pitch, 90), "roll": (roll, 90)}
    if all(finite(v).size == 0 for v, _ in columns.values()):
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    for ax, (name, (values, limit)) in zip(axes, columns.items()):
        v = finite(values)
        if v.size:
            ax.hist(v, bins=np.arange(-limit, limit + 5, 5), color=BAR_COLOUR)
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlim(-limit, limit)
        ax.set_xlabel(f"{name} (deg)")
        ax.set_title(f"{name} (n = {v.size})", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("labels")
    return to_png(fig)


def yaw_pitch_heatmap(yaw, pitch, bin_deg: float = 10.0) -> bytes | None:
    """2D histogram of yaw x pitch (labels per bin, log colour); None when empty."""
    y, p = np.asarray(yaw, np.float64), np.asarray(pitch, np.float64)
    ok = np.isfinite(y) & np.isfinite(p)
    if not ok.any():
        return None
    from matplotlib.colors import LogNorm

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    counts, xe, ye = np.histogram2d(y[ok], p[ok], bins=[np.arange(-180, 180 + bin_deg, bin_deg),
                                                         np.arange(-90, 90 + bin_deg, bin_deg)])
    masked = np.ma.masked_equal(counts.T, 0)
    mesh = ax.pcolormesh(xe, ye, masked, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(counts.max(), 1)))
    fig.colorbar(mesh, ax=ax, label="labels")
    ax.set_xlabel("yaw (deg)")
    ax.set_ylabel("pitch (deg)")
    ax.set_title(f"yaw x pitch coverage, {bin_deg:g} deg bins (white: empty)", fontsize=10)
    return to_png(fig)


def bar_chart(labels: Sequence[str], values: Sequence[float], ylabel: str, title: str = "",
              threshold: float | None = None, highlight: Sequence[bool] | None = None,
              log_y: bool = False) -> bytes | None:
    """Vertical bars, one per label (highlighted bars red), with an optional threshold line.

    None when there are no finite values. Bars with NaN values are left empty and their
    label gets " (n/a)".
    """
    v = np.asarray(values, np.float64)
    if v.size == 0 or not np.isfinite(v).any():
        return None
    names = [str(s) + ("" if np.isfinite(x) else " (n/a)") for s, x in zip(labels, v)]
    colours = [FLAG_COLOUR if h else BAR_COLOUR for h in (highlight if highlight is not None else [False] * len(v))]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, min(16.0, 0.32 * len(v) + 2)), 3.2))
    ax.bar(np.arange(len(v)), np.where(np.isfinite(v), v, 0), color=colours)
    ax.set_xticks(np.arange(len(v)))
    ax.set_xticklabels(names, rotation=60 if len(v) > 6 else 0, ha="right" if len(v) > 6 else "center", fontsize=8)
    if log_y:
        ax.set_yscale("log")
    _threshold_line(ax, threshold, horizontal=True)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return to_png(fig)


def counts_chart(counts: pd.Series, ylabel: str, title: str) -> bytes | None:
    """Bar chart of a value_counts-like Series (index = names); None when empty."""
    if counts is None or len(counts) == 0:
        return None
    return bar_chart([str(i) for i in counts.index], counts.to_numpy(np.float64), ylabel, title)


def _track_panel(ax, frames: np.ndarray, values: np.ndarray, flagged: np.ndarray, threshold: float | None) -> None:
    """One track's speed against frame on a log axis, flagged frames as red crosses."""
    ok = np.isfinite(values) & (values > 0)
    ax.plot(frames[ok], values[ok], lw=0.8, color=BAR_COLOUR)
    bad = ok & flagged
    ax.plot(frames[bad], values[bad], "x", color=FLAG_COLOUR, ms=6, label="flagged")
    if ok.any():
        ax.set_yscale("log")
    if threshold is not None and np.isfinite(threshold):
        ax.axhline(threshold, color=FLAG_COLOUR, ls="--", lw=1)
    ax.grid(alpha=0.3)


def track_time_series(tracks: Mapping[str, pd.DataFrame], series: Sequence[tuple[str, str, float | None]]
                      ) -> bytes | None:
    """Per-track time series: one row per track, one column per (column, label, threshold).

    tracks: name -> DataFrame with ``frame``, the series columns and a bool ``flagged``
    (the frames a temporal check flagged, drawn as red crosses). None when no track has a
    finite value.
    """
    names = [n for n, t in tracks.items() if any(finite(t[c]).size for c, _, _ in series)]
    if not names:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(names), len(series), figsize=(6 * len(series), 2.1 * len(names) + 0.4),
                             squeeze=False)
    for row, name in enumerate(names):
        t = tracks[name]
        for col, (column, label, threshold) in enumerate(series):
            ax = axes[row, col]
            _track_panel(ax, t["frame"].to_numpy(), t[column].to_numpy(np.float64, na_value=np.nan),
                         t["flagged"].to_numpy(bool), threshold)
            ax.set_title(f"{name}: {label}", fontsize=9)
            if row == len(names) - 1:
                ax.set_xlabel("frame")
    return to_png(fig)
