"""Torch versions of the rotation functions the trainer differentiates through.

The numpy originals live in ``annotate.geometry.rotations`` (the project's one place for the
Euler convention, 6D form and geodesic distance); these mirror them for tensors on any
device and are tested against them. Radians throughout; any leading batch shape ``(...)``.
"""
from __future__ import annotations

import math

import torch


def matrix_from_sixd(six: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two columns ``[c0 | c1]``.

    Same layout as ``rotations.sixd_from_matrix``: ``six = [r00, r10, r20, r01, r11, r21]``.
    """
    a, b = six[..., :3], six[..., 3:]
    c0 = torch.nn.functional.normalize(a, dim=-1)
    b = b - (c0 * b).sum(-1, keepdim=True) * c0
    c1 = torch.nn.functional.normalize(b, dim=-1)
    c2 = torch.linalg.cross(c0, c1, dim=-1)
    return torch.stack([c0, c1, c2], dim=-1)


def geodesic_distance(R1: torch.Tensor, R2: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Angle (radians, (...,)) of ``R1^T R2`` for (..., 3, 3) rotation stacks.

    ``acos((trace - 1) / 2)`` with the cosine clamped to ``[-1 + eps, 1 - eps]`` so the
    gradient stays finite at 0 and pi (as 6DRepNet's loss); accurate to about
    ``sqrt(2 eps)`` rad at the ends. For metrics use the numpy version, which is exact.
    """
    trace = torch.einsum("...ji,...ji->...", R1, R2)
    cos = ((trace - 1.0) * 0.5).clamp(-1.0 + eps, 1.0 - eps)
    return torch.acos(cos)


def wrapped_difference(a: torch.Tensor, b: torch.Tensor, period: float = 2.0 * math.pi) -> torch.Tensor:
    """``a - b`` wrapped to ``[-period / 2, period / 2)`` (any unit: pass ``period=360.`` for degrees)."""
    return torch.remainder(a - b + 0.5 * period, period) - 0.5 * period
