"""Training losses. Targets come from the batch (``annotate.train.data.collate``):

- ``euler_deg`` (B, 3) [yaw, pitch, roll] in degrees, yaw in (-180, 180];
- ``R`` (B, 3, 3) R_cam_head;
- ``landmarks`` (B, 70, 2) as input-image fractions, NaN where unknown;
- ``visible`` (B, 70) float 1 = visible, 0 = not, NaN = unknown.

Each criterion returns ``(total, parts)``: a scalar tensor and a dict of detached scalar
tensors for the metrics log (kept on the device: reading them syncs, so the engine does
that only when it logs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from annotate.train.bins import BinSpec
from annotate.train.models import ANGLES, BinPoseHead
from annotate.train.rotations_torch import geodesic_distance, matrix_from_sixd, wrapped_difference
from annotate.train.ssr import SSRHead


def wrapped_squared_error(pred_deg: torch.Tensor, target_deg: torch.Tensor) -> torch.Tensor:
    """WHENet's wrapped yaw loss ``min(|d|, 360 - |d|)^2`` (deg^2), elementwise."""
    return wrapped_difference(pred_deg, target_deg, 360.0).square()


class BinnedPoseLoss(nn.Module):
    """Sum over angles of ``sum_k w_k CE(logits_k, bin_k) + alpha * reg(expectation, angle)``.

    ``reg`` is the squared error in deg^2, wrapped for yaw when ``wrapped_yaw`` (WHENet),
    plain otherwise (HopeNet, coarse-fine); its batch mean is taken.
    """

    def __init__(self, head: BinPoseHead, ce_weights: list[float], alpha: float, wrapped_yaw: bool):
        super().__init__()
        self.head = head
        self.ce_weights = list(ce_weights)
        self.alpha = float(alpha)
        self.wrapped_yaw = wrapped_yaw
        for a in ANGLES:
            if len(head.specs[a]) > len(self.ce_weights):
                raise ValueError(f"{len(head.specs[a])} bin specs for {a} but only {len(self.ce_weights)} ce_weights")

    def forward(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]):
        target = batch["euler_deg"].float()
        total = target.new_zeros(())
        parts = {}
        for i, a in enumerate(ANGLES):
            specs: list[BinSpec] = self.head.specs[a]
            ce = sum(w * F.cross_entropy(out[f"{a}/{k}"].float(), s.index(target[:, i]))
                     for k, (s, w) in enumerate(zip(specs, self.ce_weights)))
            pred = self.head.expectation_deg(out, a)
            if a == "yaw" and self.wrapped_yaw:
                reg = wrapped_squared_error(pred, target[:, i]).mean()
            else:
                reg = (pred - target[:, i]).square().mean()
            total = total + ce + self.alpha * reg
            parts[f"ce_{a}"] = ce.detach()
            parts[f"reg_{a}"] = reg.detach()
        return total, parts


class SoftRegressionLoss(nn.Module):
    """FSA-Net's L1 loss on the SSR head's angles: the mean over the angles of the batch mean
    absolute error in degrees, yaw's difference wrapped into [-180, 180) (so a prediction of
    179 for a label of -179 costs 2 deg, never 358)."""

    def __init__(self, head: SSRHead):
        super().__init__()
        self.head = head

    def forward(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]):
        pred, target = self.head.angles_deg(out), batch["euler_deg"].float()
        diff = pred - target
        diff = torch.cat([wrapped_difference(pred[:, :1], target[:, :1], 360.0), diff[:, 1:]], dim=1)
        per_angle = diff.abs().mean(0)                                    # (3,)
        return per_angle.mean(), {f"l1_{a}": per_angle[i].detach() for i, a in enumerate(ANGLES)}


class GeodesicLoss(nn.Module):
    """Mean geodesic angle (radians) between the 6D head's rotation and R_cam_head."""

    def forward(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]):
        R = matrix_from_sixd(out["sixd"].float())
        loss = geodesic_distance(R, batch["R"].float()).mean()
        return loss, {"geodesic": loss.detach()}


def landmark_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance (input-image fractions) over landmarks with finite targets; 0 if none.

    pred, target: (B, 70, 2). Masked without boolean indexing, so no host sync on a GPU.
    """
    ok = torch.isfinite(target).all(-1)                                     # (B, 70)
    diff = (pred.float() - torch.nan_to_num(target)).abs().sum(-1)
    return torch.where(ok, diff, 0.0).sum() / ok.sum().clamp(min=1)


def visibility_loss(logits: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over landmarks whose visibility is known (B, 70); 0 if none."""
    ok = torch.isfinite(visible)
    bce = F.binary_cross_entropy_with_logits(logits.float(), torch.nan_to_num(visible), reduction="none")
    return torch.where(ok, bce, 0.0).sum() / ok.sum().clamp(min=1)


class PoseCriterion(nn.Module):
    """The pose loss plus, for multi-task models, weighted landmark and visibility losses."""

    def __init__(self, pose_loss: nn.Module, landmark_weight: float = 0.0, visibility_weight: float = 0.0):
        super().__init__()
        self.pose_loss = pose_loss
        self.landmark_weight = landmark_weight
        self.visibility_weight = visibility_weight

    def forward(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]):
        total, parts = self.pose_loss(out, batch)
        if "landmarks" in out and self.landmark_weight:
            lm = landmark_loss(out["landmarks"], batch["landmarks"])
            total = total + self.landmark_weight * lm
            parts["landmarks"] = lm.detach()
        if "visibility" in out and self.visibility_weight:
            vis = visibility_loss(out["visibility"], batch["visible"])
            total = total + self.visibility_weight * vis
            parts["visibility"] = vis.detach()
        parts["loss"] = total.detach()
        return total, parts


def criterion_part_names(model_cfg: dict) -> list[str]:
    """The names of the parts ``build_criterion(model_cfg, ...)`` reports besides ``loss``
    (the metrics.csv columns), without building it."""
    if model_cfg["pose_head"] == "bins":
        names = [f"{k}_{a}" for a in ANGLES for k in ("ce", "reg")]
    elif model_cfg["pose_head"] == "ssr":
        names = [f"l1_{a}" for a in ANGLES]
    else:
        names = ["geodesic"]
    if model_cfg["landmarks"]:
        names.append("landmarks")
        if model_cfg["visibility"]:
            names.append("visibility")
    return names


def build_criterion(model_cfg: dict, model) -> PoseCriterion:
    """The criterion matching ``build_model(model_cfg)``'s heads."""
    if model_cfg["pose_head"] == "bins":
        pose = BinnedPoseLoss(model.heads["pose"], model_cfg["ce_weights"], model_cfg["alpha"],
                              wrapped_yaw=model_cfg["yaw_loss"] == "wrapped")
    elif model_cfg["pose_head"] == "ssr":
        pose = SoftRegressionLoss(model.heads["pose"])
    else:
        pose = GeodesicLoss()
    lm_w = model_cfg["landmark_weight"] if model_cfg["landmarks"] else 0.0
    vis_w = model_cfg["visibility_weight"] if model_cfg["landmarks"] and model_cfg["visibility"] else 0.0
    return PoseCriterion(pose, lm_w, vis_w)
