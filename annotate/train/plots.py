"""Evaluation plots (matplotlib, Agg backend: files only, no display needed).

matplotlib rather than a hand-written PNG writer: axes, ticks, legends and text come for
free and stay readable; it is a pure pip wheel, and the audit report can share it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def binned_mean(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of ``y`` in each ``[edges[i], edges[i+1])`` bin of ``x``; NaN for empty bins."""
    idx = np.digitize(x, edges) - 1
    out = np.full(len(edges) - 1, np.nan)
    for i in range(len(out)):
        sel = idx == i
        if sel.any():
            out[i] = y[sel].mean()
    return out


def plot_error_by_yaw(errors: dict[str, np.ndarray], true_yaw_deg: np.ndarray, path: str | Path,
                      baseline: dict[str, np.ndarray] | None = None, bin_deg: float = 15.0,
                      title: str = "") -> Path:
    """Mean yaw/pitch/roll/geodesic error per true-yaw bin (the model; the baseline dashed)."""
    plt = _pyplot()
    edges = np.arange(-180.0, 180.0 + bin_deg, bin_deg)
    centres = 0.5 * (edges[:-1] + edges[1:])
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for key in ("yaw", "pitch", "roll", "geodesic"):
        ax.plot(centres, binned_mean(true_yaw_deg, errors[key], edges), marker="o", ms=3, label=f"{key}")
    if baseline is not None:
        ax.plot(centres, binned_mean(true_yaw_deg, baseline["geodesic"], edges), "k--",
                label="geodesic, constant prediction")
    ax.axvspan(-180, -90, color="0.93")
    ax.axvspan(90, 180, color="0.93")
    ax.set_xlim(-180, 180)
    ax.set_xticks(np.arange(-180, 181, 45))
    ax.set_xlabel("true yaw (deg); shaded: back of the head")
    ax.set_ylabel("mean error (deg)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_pred_vs_true(pred_deg: np.ndarray, true_deg: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Scatter of predicted against true yaw, pitch and roll."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), dpi=100)
    for i, (ax, name) in enumerate(zip(axes, ("yaw", "pitch", "roll"))):
        lim = 180 if i == 0 else 100
        ax.scatter(true_deg[:, i], pred_deg[:, i], s=3, alpha=0.4)
        ax.plot([-lim, lim], [-lim, lim], "k:", lw=1)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xlabel(f"true {name} (deg)")
        ax.set_ylabel(f"predicted {name} (deg)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
