"""What a training run records as it goes: ``log.txt`` and ``metrics.csv`` in its run directory.

``RunLog`` prints a message (rank 0 only) and appends it to ``log.txt``. ``MetricsCSV`` is
``metrics.csv``: one ``train`` row per log interval (lr, loss, each loss part, images/s) and
one ``val`` row per evaluation (the errors of ``annotate.train.metrics`` and the constant
baseline's MAE). ``LogWindow`` sums the loss parts between two ``train`` rows.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from annotate.core.atomic import write_text_atomic

METRIC_FIELDS = ("kind", "epoch", "step", "lr", "loss", "images_per_s", "n", "mae", "yaw", "pitch", "roll",
                 "geodesic", "maev", "baseline_mae", "seconds")


class RunLog:
    """Prints (when ``enabled``: rank 0) and appends to ``path`` (run_dir/log.txt)."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def __call__(self, msg: str) -> None:
        if not self.enabled:
            return
        print(msg, flush=True)
        with open(self.path, "a") as f:
            f.write(msg + "\n")


class MetricsCSV:
    """metrics.csv with fixed columns (METRIC_FIELDS) plus ``loss_<part>`` columns, in a stable order.

    ``truncate_after(step)`` drops the rows logged after a checkpoint, so a resumed run's
    file matches an uninterrupted one's.
    """

    def __init__(self, path: Path, part_names: list[str]):
        self.path = path
        self.fields = list(METRIC_FIELDS) + [f"loss_{p}" for p in part_names]

    def truncate_after(self, step: int) -> None:
        if not self.path.is_file():
            return
        with open(self.path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        text = io.StringIO()
        w = csv.DictWriter(text, self.fields)
        w.writeheader()
        w.writerows(rows)
        write_text_atomic(self.path, text.getvalue())

    def write(self, row: dict) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


@dataclass
class LogWindow:
    """The loss parts summed over the steps since the last ``train`` row.

    The sums stay device tensors between rows (reading them would sync the GPU every
    step); a checkpoint stores them as floats so a resumed run logs the same rows.
    """

    sums: dict[str, torch.Tensor | float] = field(default_factory=dict)
    steps: int = 0
    t0: float = field(default_factory=time.perf_counter)

    def add(self, parts: dict[str, torch.Tensor]) -> None:
        self.steps += 1
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def means(self) -> dict[str, float]:
        return {k: float(v) / self.steps for k, v in self.sums.items()}

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def reset(self) -> None:
        self.sums, self.steps, self.t0 = {}, 0, time.perf_counter()

    def state(self) -> dict:
        return {"sums": {k: float(v) for k, v in self.sums.items()}, "steps": self.steps}

    @classmethod
    def from_state(cls, state: dict) -> "LogWindow":
        return cls(dict(state["sums"]), state["steps"])
