"""Angle bins of the classification heads (HopeNet, WHENet, Hybrid coarse-fine).

A ``BinSpec`` is ``count`` bins of ``width_deg`` starting at ``start_deg``: bin ``i`` covers
``[start + i w, start + (i + 1) w)`` and its centre is ``start + (i + 1/2) w``. The
continuous prediction is the expectation of the bin centres under the softmax (HopeNet's
"expectation", the coarse-fine paper's "integral regression"). The published codes take
the bin *starts* (``sum(p * idx) * 3 - 99``), a constant 1.5 deg bias; centres remove it.

A spec covering exactly 360 deg is periodic (WHENet's full-range yaw): angles are wrapped
into it before binning, and ``circular=True`` decodes with the circular mean, which (unlike
the plain expectation) is right when the mass straddles +-180.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BinSpec:
    """``count`` bins of ``width_deg`` degrees starting at ``start_deg``."""

    start_deg: float
    width_deg: float
    count: int

    @property
    def end_deg(self) -> float:
        return self.start_deg + self.width_deg * self.count

    @property
    def periodic(self) -> bool:
        return math.isclose(self.width_deg * self.count, 360.0)

    def centres_deg(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """(count,) bin centres in degrees."""
        i = torch.arange(self.count, device=device, dtype=dtype)
        return self.start_deg + (i + 0.5) * self.width_deg

    def index(self, angle_deg: torch.Tensor) -> torch.Tensor:
        """(...,) degrees -> (...,) long bin indices.

        Periodic specs wrap the angle first; others clamp it to the first/last bin, so a
        label just outside the range (e.g. pitch 100 with bins over [-99, 99)) still gets
        the nearest class while the regression term sees its true value.
        """
        a = angle_deg.to(torch.float64)
        if self.periodic:
            a = torch.remainder(a - self.start_deg, 360.0) + self.start_deg
        i = torch.floor((a - self.start_deg) / self.width_deg).long()
        return i.clamp(0, self.count - 1)

    @classmethod
    def from_list(cls, triple) -> "BinSpec":
        start, width, count = triple
        return cls(float(start), float(width), int(count))


def expectation_deg(logits: torch.Tensor, spec: BinSpec, circular: bool = False) -> torch.Tensor:
    """(B, count) logits -> (B,) expected angle in degrees.

    ``circular`` (periodic specs only): ``atan2(sum p sin c, sum p cos c)``, in (-180, 180].
    """
    p = torch.softmax(logits.float(), dim=-1)
    c = spec.centres_deg(device=logits.device)
    if not circular:
        return (p * c).sum(-1)
    if not spec.periodic:
        raise ValueError(f"circular expectation needs a 360-degree bin spec, got {spec}")
    r = torch.deg2rad(c)
    return torch.rad2deg(torch.atan2((p * torch.sin(r)).sum(-1), (p * torch.cos(r)).sum(-1)))


# The published layouts.
HOPENET_BINS = BinSpec(-99.0, 3.0, 66)          # HopeNet, WHENet pitch and roll
WHENET_YAW_BINS = BinSpec(-180.0, 3.0, 120)     # WHENet full-range yaw
# Hybrid coarse-fine (Wang et al. 2019, accurate-head-pose): 1, 3, 11, 66 and 99 degree bins
# over [-99, 99); cross-entropy weights 7, 5, 3, 1, 1; integral regression on the finest.
COARSE_FINE_WIDTHS = (1.0, 3.0, 11.0, 66.0, 99.0)
COARSE_FINE_CE_WEIGHTS = (7.0, 5.0, 3.0, 1.0, 1.0)


def coarse_fine_specs(start_deg: float = -99.0, end_deg: float = 99.0,
                      widths=COARSE_FINE_WIDTHS) -> list[BinSpec]:
    """One spec per width over ``[start, end)``, finest first."""
    out = []
    for w in widths:
        n = int(round((end_deg - start_deg) / w))
        if not math.isclose(n * w, end_deg - start_deg):
            raise ValueError(f"bin width {w} does not divide [{start_deg}, {end_deg})")
        out.append(BinSpec(start_deg, w, n))
    return out
