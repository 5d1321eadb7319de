"""Stagewise soft regression (SSR-Net, Yang et al. 2018), the pose output of SSR-Net and
FSA-Net (Yang et al. 2019), with a circular first stage for full-range yaw.

An angle is the sum of K stages' refinements. Stage k cuts its parent's interval into
``s_k`` bins; from the stage's features the network predicts a distribution ``p_k`` over
them (softmax), a shift ``eta_k(i)`` in (-1, 1) per bin (moves bin ``i``'s centre by up to
one bin) and a dynamic range ``delta_k`` in (-1, 1) (scales the stage's bin width):

    w_0 = span,   w_k = w_{k-1} / (s_k (1 + lambda_d delta_k))
    angle = sum_k sum_i p_k(i) (i - (s_k - 1) / 2 + eta_k(i)) w_k

The indices are centred (FSA-Net's ``i - s // 2``), so angle 0 is the middle of the range,
and with every ``p_k`` one-hot and no shift or range change the stages land on the centres
of the finest bins of ``[-span / 2, span / 2)``. Pitch and roll use ``span_deg`` (198:
+-99 deg, FSA-Net's V = 99). ``yaw: linear`` treats yaw the same way (the published
narrow-range set-up).

Full-range yaw (``yaw: circular``): a head seen from behind has yaw near +-180, where the
plain soft regression breaks: the expectation of mass split between +179 and -179 is 0, the
front. So yaw's first stage is circular: ``s_1`` sectors of ``360 / s_1`` deg with centres
``c_i = (i - (s_1 - 1) / 2 + eta_1(i)) 360 / s_1`` (-120, 0 and 120 for three), decoded
with the circular mean ``atan2(sum p sin c, sum p cos c)``, which is right on either side
of the seam. The finer stages are local refinements (offsets around the first stage's
answer, nowhere near a seam) with ``w_1 = 360 / (s_1 (1 + lambda_d delta_1))``, and the
sum is wrapped into [-180, 180). The loss wraps the yaw difference (``annotate.train.losses``).

Head outputs (flat dict, per stage k = 0, 1, ...): ``ssr/p{k}`` (B, 3, s_k) logits,
``ssr/eta{k}`` (B, 3, s_k) and ``ssr/delta{k}`` (B, 3), each (B, 3, ...) in [yaw, pitch,
roll] order.
"""
from __future__ import annotations

import torch
from torch import nn

from annotate.train.rotations_torch import wrapped_difference

ANGLES = ("yaw", "pitch", "roll")


def stage_offsets(p: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """(..., s) probabilities and shifts -> (...,) expected centred bin index ``sum p (i - (s-1)/2 + eta)``."""
    s = p.shape[-1]
    idx = torch.arange(s, device=p.device, dtype=p.dtype) - 0.5 * (s - 1)
    return (p * (idx + eta)).sum(-1)


def refinements(probs: list[torch.Tensor], etas: list[torch.Tensor], deltas: list[torch.Tensor], parent_width,
                lambda_d: float) -> torch.Tensor:
    """The stages' summed contributions, starting from a parent interval ``parent_width`` wide.

    probs, etas: per stage (..., s_k); deltas: per stage (...,); parent_width: (...,) or a number.
    """
    total, width = 0.0, parent_width
    for p, eta, delta in zip(probs, etas, deltas):
        width = width / (p.shape[-1] * (1.0 + lambda_d * delta))
        total = total + stage_offsets(p, eta) * width
    return total


def linear_ssr(probs, etas, deltas, span_deg: float, lambda_d: float) -> torch.Tensor:
    """SSR-Net's soft regression over ``[-span / 2, span / 2)`` (degrees), shape (...,)."""
    return refinements(probs, etas, deltas, span_deg, lambda_d)


def circular_ssr(probs, etas, deltas, lambda_d: float) -> torch.Tensor:
    """Full-range angle (degrees, in [-180, 180)): circular first stage, linear refinements."""
    p1, eta1, delta1 = probs[0], etas[0], deltas[0]
    sector = 360.0 / p1.shape[-1]
    idx = torch.arange(p1.shape[-1], device=p1.device, dtype=p1.dtype) - 0.5 * (p1.shape[-1] - 1)
    centres = torch.deg2rad((idx + eta1) * sector)
    coarse = torch.rad2deg(torch.atan2((p1 * torch.sin(centres)).sum(-1), (p1 * torch.cos(centres)).sum(-1)))
    fine = refinements(probs[1:], etas[1:], deltas[1:], sector / (1.0 + lambda_d * delta1), lambda_d)
    return wrapped_difference(coarse + fine, torch.zeros_like(coarse), 360.0)


class SSRHead(nn.Module):
    """Per stage, from that stage's features, the SSR terms of the three angles.

    Input: (B, K * stage_dim) features, stage-major (stage k's are columns
    ``k * stage_dim .. (k + 1) * stage_dim``; stage 0 is the coarsest). ``stages`` = [s_1, ...].
    """

    def __init__(self, stage_dim: int, stages: list[int], lambda_d: float = 1.0, span_deg: float = 198.0,
                 circular_yaw: bool = True):
        super().__init__()
        self.stage_dim, self.stages = stage_dim, list(stages)
        self.lambda_d, self.span_deg, self.circular_yaw = float(lambda_d), float(span_deg), circular_yaw
        n = len(ANGLES)
        self.p = nn.ModuleList(nn.Linear(stage_dim, n * s) for s in self.stages)
        self.eta = nn.ModuleList(nn.Linear(stage_dim, n * s) for s in self.stages)
        self.delta = nn.ModuleList(nn.Linear(stage_dim, n) for _ in self.stages)

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for k, s in enumerate(self.stages):
            f = feats[:, k * self.stage_dim:(k + 1) * self.stage_dim]
            out[f"ssr/p{k}"] = self.p[k](f).view(-1, len(ANGLES), s)
            out[f"ssr/eta{k}"] = torch.tanh(self.eta[k](f)).view(-1, len(ANGLES), s)
            out[f"ssr/delta{k}"] = torch.tanh(self.delta[k](f))
        return out

    def angles_deg(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 3) [yaw, pitch, roll] in degrees, differentiable (the loss uses it)."""
        K = range(len(self.stages))
        probs = [torch.softmax(out[f"ssr/p{k}"].float(), dim=-1) for k in K]
        etas = [out[f"ssr/eta{k}"].float() for k in K]
        deltas = [out[f"ssr/delta{k}"].float() for k in K]
        angles = linear_ssr(probs, etas, deltas, self.span_deg, self.lambda_d)            # (B, 3)
        if self.circular_yaw:
            yaw = circular_ssr([p[:, 0] for p in probs], [e[:, 0] for e in etas], [d[:, 0] for d in deltas],
                               self.lambda_d)
            angles = torch.cat([yaw[:, None], angles[:, 1:]], dim=1)
        return angles

    def decode(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"euler_deg": self.angles_deg(out)}
