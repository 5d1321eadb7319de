"""Head-pose networks: a torchvision backbone with pose (and landmark/visibility) heads.

Architectures (``model.arch``; ``annotate.train.config.ARCH_PRESETS`` holds their defaults):

- ``whenet``: EfficientNet-B0; yaw 120 bins of 3 deg over [-180, 180), pitch and roll 66
  bins of 3 deg over [-99, 99); cross-entropy + alpha x (wrapped) squared error of the
  softmax expectation (Zhou and Gregson 2020).
- ``hopenet``: ResNet-50; 66 bins of 3 deg per angle; CE + alpha x MSE (Ruiz et al. 2018).
- ``coarse_fine``: ResNet-50; 1, 3, 11, 66 and 99 deg bins per angle, weighted CEs and
  integral regression on the finest (Wang et al. 2019).
- ``sixd``: a 6D rotation head (two matrix columns, Gram-Schmidt) with the geodesic loss
  (Hempel et al. 2022, 6DRepNet); no wrap-around anywhere.
- ``multitask``: a pose head (6D by default) plus 70 landmarks and 70 visibility logits
  (Valle et al. 2021).
- ``ssrnet`` / ``fsanet``: the two-stream CNN on 64 x 64 crops with stagewise soft
  regression (Yang et al. 2018, 2019; ``annotate.train.fsanet``, ``annotate.train.ssr``);
  FSA-Net adds the fine-grained structure aggregation and capsules.

Every forward returns a flat ``dict[str, Tensor]`` (DDP and torch.compile handle it as is):
``"yaw/0"``, ``"yaw/1"``, ... logits per angle and bin spec (finest first), ``"sixd"``
(B, 6), ``"landmarks"`` (B, 70, 2) in input-image fractions (x / W, y / H), ``"visibility"``
(B, 70) logits, ``"ssr/p0"``, ``"ssr/eta0"``, ``"ssr/delta0"``, ... per SSR stage
(``annotate.train.ssr``). ``PoseNet.decode`` turns them into predictions.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from annotate.head.head_frame import NUM_LANDMARKS
from annotate.train.bins import BinSpec, expectation_deg
from annotate.train.fsanet import SSRFeatures
from annotate.train.ssr import SSRHead
from annotate.train.rotations_torch import matrix_from_sixd

ANGLES = ("yaw", "pitch", "roll")
BACKBONES = ("efficientnet_b0", "resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large")
TWO_STREAM = "two_stream"       # SSR-Net / FSA-Net's own CNN (annotate.train.fsanet), with the SSR head only


def _last_linear(model: nn.Module) -> tuple[nn.Module, str]:
    """The torchvision classifier's final Linear layer: (its parent module, attribute name)."""
    if isinstance(getattr(model, "fc", None), nn.Linear):
        return model, "fc"
    classifier = model.classifier
    return classifier, str(len(classifier) - 1)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict saved with ``torch.save``: bare, or under ``state_dict`` / ``model``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def build_backbone(name: str, width_mult: float = 1.0, weights_path: str | Path | None = None
                   ) -> tuple[nn.Module, int]:
    """A torchvision classifier without its last Linear: images (B, 3, H, W) -> (B, C) features.

    ``weights=None`` always (no download); ``weights_path`` is a local file with the full
    classifier's state dict (e.g. ImageNet weights saved from torchvision), loaded strictly
    before the last layer is removed. ``width_mult`` is for the MobileNetV3 models only.
    Returns the module and C.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    kwargs = {"weights": None}
    if width_mult != 1.0:
        if not name.startswith("mobilenet_v3"):
            raise ValueError(f"width_mult applies to the mobilenet_v3 backbones only, not {name}")
        kwargs["width_mult"] = float(width_mult)
    model = getattr(torchvision.models, name)(**kwargs)
    if weights_path:
        state = load_state_dict_file(weights_path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{weights_path}: does not match torchvision {name} "
                             f"(width_mult {width_mult}): {err}") from None
    parent, attr = _last_linear(model)
    features = getattr(parent, attr).in_features
    setattr(parent, attr, nn.Identity())
    return model, features


class BinPoseHead(nn.Module):
    """One Linear classifier per angle and bin spec: features (B, C) -> ``{"yaw/k": (B, count)}``."""

    def __init__(self, in_features: int, specs: dict[str, list[BinSpec]], circular_yaw: bool = False):
        super().__init__()
        self.specs = {a: list(specs[a]) for a in ANGLES}
        self.circular_yaw = circular_yaw
        self.fc = nn.ModuleDict({f"{a}_{k}": nn.Linear(in_features, s.count)
                                 for a in ANGLES for k, s in enumerate(self.specs[a])})

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {f"{a}/{k}": self.fc[f"{a}_{k}"](feats) for a in ANGLES for k in range(len(self.specs[a]))}

    def expectation_deg(self, out: dict[str, torch.Tensor], angle: str) -> torch.Tensor:
        """(B,) expected angle of the finest spec, degrees."""
        spec = self.specs[angle][0]
        return expectation_deg(out[f"{angle}/0"], spec, circular=self.circular_yaw and angle == "yaw")

    def decode(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"euler_deg": torch.stack([self.expectation_deg(out, a) for a in ANGLES], dim=-1)}


class SixDHead(nn.Module):
    """features (B, C) -> ``{"sixd": (B, 6)}``; decodes to R_cam_head (B, 3, 3)."""

    def __init__(self, in_features: int):
        super().__init__()
        self.fc = nn.Linear(in_features, 6)
        # Start near the frontal rotation diag(1, -1, -1) rather than a random one.
        with torch.no_grad():
            self.fc.weight.mul_(0.01)
            self.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, -1.0, 0.0]))

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"sixd": self.fc(feats)}

    def decode(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"R": matrix_from_sixd(out["sixd"].float())}


class LandmarkHead(nn.Module):
    """features (B, C) -> landmarks (B, 70, 2) as input-image fractions and visibility logits (B, 70)."""

    def __init__(self, in_features: int, visibility: bool = True):
        super().__init__()
        self.points = nn.Linear(in_features, 2 * NUM_LANDMARKS)
        nn.init.zeros_(self.points.weight)
        nn.init.constant_(self.points.bias, 0.5)        # start at the crop centre
        self.visibility = nn.Linear(in_features, NUM_LANDMARKS) if visibility else None

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"landmarks": self.points(feats).view(-1, NUM_LANDMARKS, 2)}
        if self.visibility is not None:
            out["visibility"] = self.visibility(feats)
        return out

    def decode(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        res = {"landmarks": out["landmarks"].float()}
        if "visibility" in out:
            res["visibility_prob"] = torch.sigmoid(out["visibility"].float())
        return res


class PoseNet(nn.Module):
    """Backbone + heads. ``forward(images (B, 3, H, W))`` -> flat dict of head outputs."""

    def __init__(self, backbone: nn.Module, heads: dict[str, nn.Module]):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(images)
        out: dict[str, torch.Tensor] = {}
        for head in self.heads.values():
            out.update(head(feats))
        return out

    @torch.no_grad()
    def decode(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Predictions: ``euler_deg`` (B, 3) [yaw, pitch, roll] and/or ``R`` (B, 3, 3),
        ``landmarks`` (B, 70, 2) fractions, ``visibility_prob`` (B, 70)."""
        res: dict[str, torch.Tensor] = {}
        for head in self.heads.values():
            res.update(head.decode(out))
        return res


def bin_specs_from_config(bins_cfg: dict) -> dict[str, list[BinSpec]]:
    """``{"yaw": [[start, width, count], ...], ...}`` -> BinSpecs, finest first."""
    specs = {a: [BinSpec.from_list(t) for t in bins_cfg[a]] for a in ANGLES}
    for a, lst in specs.items():
        if not lst:
            raise ValueError(f"model.bins.{a} is empty")
    return specs


def build_model(model_cfg: dict) -> PoseNet:
    """The network a resolved ``model`` config section describes (see the train config schema)."""
    if model_cfg["backbone"] == TWO_STREAM:
        backbone = SSRFeatures(model_cfg["ssr"])
        features = backbone.stage_dim * len(model_cfg["ssr"]["stages"])
    else:
        backbone, features = build_backbone(model_cfg["backbone"], model_cfg["width_mult"], model_cfg["pretrained"])
    heads: dict[str, nn.Module] = {}
    if model_cfg["dropout"] > 0:
        backbone = nn.Sequential(backbone, nn.Dropout(model_cfg["dropout"]))
    if model_cfg["pose_head"] == "ssr":
        ssr = model_cfg["ssr"]
        heads["pose"] = SSRHead(ssr["stage_dim"], ssr["stages"], ssr["lambda_d"], ssr["span_deg"],
                                circular_yaw=ssr["yaw"] == "circular")
    elif model_cfg["pose_head"] == "bins":
        heads["pose"] = BinPoseHead(features, bin_specs_from_config(model_cfg["bins"]),
                                    circular_yaw=model_cfg["expectation"] == "circular")
    else:
        heads["pose"] = SixDHead(features)
    if model_cfg["landmarks"]:
        heads["landmarks"] = LandmarkHead(features, visibility=model_cfg["visibility"])
    return PoseNet(backbone, heads)
