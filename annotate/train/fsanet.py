"""The feature extractors of SSR-Net and FSA-Net (Yang et al. 2018, 2019) on 64 x 64 crops.

Both start with the same two-stream CNN (``TwoStream``): two stacks of separable 3x3
convolutions (16, 32, 64, 128 channels), one with ReLU and average pooling, one with tanh
and max pooling. At three depths (deepest first: 8x8 after the last block, 8x8 after the
third, 16x16 after the second, average-pooled to 8x8) a 1x1 convolution brings each stream
to 64 channels and the two are multiplied: three stage maps U_k of (B, 64, 8, 8). The
deepest feeds the coarsest SSR stage (``annotate.train.ssr``).

- SSR-Net (``aggregation: none``, ``StageVectors``): each stage map -> 1x1 conv (8
  channels, ReLU) -> flatten -> Linear -> the stage's feature vector.
- FSA-Net (``aggregation: fsa``, ``FineGrainedAggregation``): a score function rates every
  pixel of each stage map (``score``: ``conv`` = 1x1 convolution + sigmoid, ``variance`` =
  variance across the channels, ``uniform`` = 1 everywhere, the paper's variant without
  attention); from the scores, learned mappings (sigmoid) S_k = L R_k, row-normalised,
  pool the 3 x 64 pixel features of all stages into ``primary_capsules / 3`` features per
  stage (the fine-grained structure); a capsule layer with dynamic routing turns those
  ``primary_capsules`` vectors into one ``capsule_dim`` vector per stage.

Either returns (B, K * stage_dim) features, stage-major, for the SSR head.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGE_CHANNELS = 64
STAGE_SIDE = 8
SCORES = ("conv", "variance", "uniform")


def separable_block(cin: int, cout: int, activation: nn.Module) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1 (Keras' SeparableConv2D), batch norm, activation."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1),
                         nn.BatchNorm2d(cout), activation)


class Stream(nn.Module):
    """One of the two streams: images (B, 3, 64, 64) -> feature maps after blocks 2, 3, 4
    ((B, 32, 16, 16), (B, 64, 8, 8), (B, 128, 8, 8))."""

    def __init__(self, activation: type[nn.Module], pool: type[nn.Module]):
        super().__init__()
        act = activation
        self.block1 = nn.Sequential(separable_block(3, 16, act()), pool(2))
        self.block2 = nn.Sequential(separable_block(16, 32, act()), separable_block(32, 32, act()), pool(2))
        self.block3 = nn.Sequential(separable_block(32, 64, act()), separable_block(64, 64, act()), pool(2))
        self.block4 = nn.Sequential(separable_block(64, 128, act()), separable_block(128, 128, act()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        l2 = self.block2(self.block1(x))
        l3 = self.block3(l2)
        return l2, l3, self.block4(l3)


class TwoStream(nn.Module):
    """images (B, 3, 64, 64) -> the three stage maps, deepest first, each (B, 64, 8, 8)."""

    def __init__(self):
        super().__init__()
        self.relu_stream = Stream(nn.ReLU, nn.AvgPool2d)
        self.tanh_stream = Stream(nn.Tanh, nn.MaxPool2d)
        widths = (128, 64, 32)                                  # block 4, 3, 2
        self.relu_proj = nn.ModuleList(nn.Conv2d(c, STAGE_CHANNELS, 1) for c in widths)
        self.tanh_proj = nn.ModuleList(nn.Conv2d(c, STAGE_CHANNELS, 1) for c in widths)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.shape[-2:] != (64, 64):
            raise ValueError(f"the SSR-Net / FSA-Net streams take 64 x 64 crops (data.image_size: 64), "
                             f"got {tuple(images.shape[-2:])}")
        relu_maps = self.relu_stream(images)[::-1]
        tanh_maps = self.tanh_stream(images)[::-1]
        stages = []
        for r, t, pr, pt in zip(relu_maps, tanh_maps, self.relu_proj, self.tanh_proj):
            u = F.relu(pr(r)) * torch.tanh(pt(t))
            if u.shape[-1] != STAGE_SIDE:
                u = F.adaptive_avg_pool2d(u, STAGE_SIDE)
            stages.append(u)
        return stages


class StageVectors(nn.Module):
    """SSR-Net: each stage map -> 1x1 conv (8 channels) -> flatten -> Linear -> (B, stage_dim)."""

    def __init__(self, num_stages: int, stage_dim: int, channels: int = 8):
        super().__init__()
        self.reduce = nn.ModuleList(nn.Conv2d(STAGE_CHANNELS, channels, 1) for _ in range(num_stages))
        self.fc = nn.ModuleList(nn.Linear(channels * STAGE_SIDE ** 2, stage_dim) for _ in range(num_stages))

    def forward(self, stages: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([F.relu(fc(F.relu(conv(u)).flatten(1)))
                          for u, conv, fc in zip(stages, self.reduce, self.fc)], dim=1)


def pixel_scores(u: torch.Tensor, score: str, conv: nn.Module | None) -> torch.Tensor:
    """(B, C, H, W) stage map -> (B, H * W) pixel scores (FSA-Net's score functions)."""
    if score == "conv":
        return torch.sigmoid(conv(u)).flatten(1)
    if score == "variance":
        return u.var(dim=1, unbiased=False).flatten(1)
    if score == "uniform":
        return u.new_ones(u.shape[0], u.shape[-2] * u.shape[-1])
    raise ValueError(f"unknown FSA-Net score function {score!r}; choose one of {', '.join(SCORES)}")


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-7) -> torch.Tensor:
    """Capsule non-linearity: keeps the direction, maps the length to |s|^2 / (1 + |s|^2)."""
    n2 = (s * s).sum(dim, keepdim=True)
    return s * (n2 / (1.0 + n2)) / torch.sqrt(n2 + eps)


class CapsuleLayer(nn.Module):
    """Dynamic routing (Sabour et al. 2017): (B, N, D_in) -> (B, J, D_out)."""

    def __init__(self, num_in: int, dim_in: int, num_out: int, dim_out: int, routings: int):
        super().__init__()
        self.W = nn.Parameter(0.05 * torch.randn(num_in, num_out, dim_out, dim_in))
        self.routings = routings

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u_hat = torch.einsum("njdi,bni->bnjd", self.W, u)                     # (B, N, J, D_out)
        logits = u_hat.new_zeros(u_hat.shape[:3])                             # (B, N, J)
        for r in range(self.routings):
            c = torch.softmax(logits, dim=2)
            v = squash((c.unsqueeze(-1) * u_hat).sum(1))                      # (B, J, D_out)
            if r < self.routings - 1:
                logits = logits + (u_hat * v.unsqueeze(1)).sum(-1)
        return v


class FineGrainedAggregation(nn.Module):
    """FSA-Net's fine-grained structure aggregation and capsules: stage maps -> (B, K * capsule_dim).

    n = K * 64 pixels in all; for stage k, R_k = sigmoid(Linear(scores_k)) is (m, n) and the
    shared L = sigmoid(Linear(all scores)) is (primary_capsules / K, m); S_k = L R_k, each row
    normalised to sum 1, pools the (n, 64) pixel features into primary_capsules / K vectors.
    """

    def __init__(self, num_stages: int, score: str, primary_capsules: int, structure_dim: int,
                 capsule_dim: int, routings: int):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"unknown FSA-Net score function {score!r}; choose one of {', '.join(SCORES)}")
        if primary_capsules % num_stages:
            raise ValueError(f"primary_capsules ({primary_capsules}) must be a multiple of the stage count "
                             f"({num_stages})")
        pixels = STAGE_SIDE ** 2
        self.score, self.K, self.m = score, num_stages, structure_dim
        self.per_stage = primary_capsules // num_stages
        self.n = num_stages * pixels
        self.score_conv = nn.ModuleList(nn.Conv2d(STAGE_CHANNELS, 1, 1) for _ in range(num_stages)) \
            if score == "conv" else None
        self.right = nn.ModuleList(nn.Linear(pixels, structure_dim * self.n) for _ in range(num_stages))
        self.left = nn.Linear(self.n, self.per_stage * structure_dim)
        self.capsules = CapsuleLayer(primary_capsules, STAGE_CHANNELS, num_stages, capsule_dim, routings)

    def forward(self, stages: list[torch.Tensor]) -> torch.Tensor:
        B = stages[0].shape[0]
        scores = [pixel_scores(u, self.score, None if self.score_conv is None else self.score_conv[k])
                  for k, u in enumerate(stages)]                                       # K x (B, 64)
        pixels = torch.cat([u.flatten(2).transpose(1, 2) for u in stages], dim=1)      # (B, n, 64)
        L = torch.sigmoid(self.left(torch.cat(scores, dim=1))).view(B, self.per_stage, self.m)
        primary = []
        for k in range(self.K):
            R = torch.sigmoid(self.right[k](scores[k])).view(B, self.m, self.n)
            S = L @ R                                                                  # (B, per_stage, n)
            S = S / S.sum(-1, keepdim=True).clamp(min=1e-7)
            primary.append(S @ pixels)                                                 # (B, per_stage, 64)
        return self.capsules(torch.cat(primary, dim=1)).flatten(1)                     # (B, K * capsule_dim)


class SSRFeatures(nn.Module):
    """The backbone of ``model.arch`` ssrnet / fsanet: images (B, 3, 64, 64) -> (B, K * stage_dim)."""

    def __init__(self, ssr_cfg: dict):
        super().__init__()
        K = len(ssr_cfg["stages"])
        if K != 3:
            raise ValueError(f"the two-stream backbone gives 3 stage maps; model.ssr.stages has {K} stages")
        self.streams = TwoStream()
        self.stage_dim = ssr_cfg["stage_dim"]
        if ssr_cfg["aggregation"] == "fsa":
            self.aggregate = FineGrainedAggregation(K, ssr_cfg["score"], ssr_cfg["primary_capsules"],
                                                    ssr_cfg["structure_dim"], self.stage_dim, ssr_cfg["routings"])
        else:
            self.aggregate = StageVectors(K, self.stage_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.aggregate(self.streams(images))
