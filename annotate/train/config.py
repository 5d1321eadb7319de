"""The trainer's configuration: schema validation, defaults and the architecture presets.

``schemas/train_config.schema.yaml`` declares every key with its default. ``model`` keys
left null take the values of the chosen ``model.arch`` preset below, so a config can be as
short as ``{model: {arch: hopenet}, data: {train: [...], val: [...]}}``.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from annotate.config import ConfigError, validated_with_defaults
from annotate.core.schema import schemas_dir
from annotate.train.bins import (COARSE_FINE_CE_WEIGHTS, HOPENET_BINS, WHENET_YAW_BINS, BinSpec,
                                 coarse_fine_specs)


def _specs(specs: list[BinSpec]) -> list[list]:
    return [[s.start_deg, s.width_deg, s.count] for s in specs]


_HOPENET_BINS = {a: _specs([HOPENET_BINS]) for a in ("yaw", "pitch", "roll")}
_CF_BINS = {a: _specs(coarse_fine_specs()) for a in ("yaw", "pitch", "roll")}

# Defaults per architecture (the published set-ups). alpha weighs the squared error in deg^2.
ARCH_PRESETS: dict[str, dict] = {
    "whenet": {"backbone": "efficientnet_b0", "pose_head": "bins",
               "bins": {"yaw": _specs([WHENET_YAW_BINS]), "pitch": _specs([HOPENET_BINS]),
                        "roll": _specs([HOPENET_BINS])},
               "ce_weights": [1.0], "alpha": 1.0, "yaw_loss": "wrapped", "expectation": "linear",
               "landmarks": False, "visibility": False},
    "hopenet": {"backbone": "resnet50", "pose_head": "bins", "bins": _HOPENET_BINS, "ce_weights": [1.0],
                "alpha": 1.0, "yaw_loss": "mse", "expectation": "linear", "landmarks": False, "visibility": False},
    "coarse_fine": {"backbone": "resnet50", "pose_head": "bins", "bins": _CF_BINS,
                    "ce_weights": list(COARSE_FINE_CE_WEIGHTS), "alpha": 2.0, "yaw_loss": "mse",
                    "expectation": "linear", "landmarks": False, "visibility": False},
    "sixd": {"backbone": "resnet50", "pose_head": "sixd", "bins": None, "ce_weights": None, "alpha": None,
             "yaw_loss": None, "expectation": None, "landmarks": False, "visibility": False},
    "multitask": {"backbone": "resnet50", "pose_head": "sixd", "bins": None, "ce_weights": None, "alpha": None,
                  "yaw_loss": None, "expectation": None, "landmarks": True, "visibility": True},
    # Yang et al. 2018 / 2019: three stages of 3 bins, lambda_d 1, +-99 deg for pitch and roll;
    # FSA-Net with the 1x1-convolution score, 21 primary capsules, m = 5, 16-d capsules, 2 routings.
    "ssrnet": {"backbone": "two_stream", "pose_head": "ssr", "ssr": {"aggregation": "none"}, "bins": None,
               "ce_weights": None, "alpha": None, "yaw_loss": None, "expectation": None, "landmarks": False,
               "visibility": False},
    "fsanet": {"backbone": "two_stream", "pose_head": "ssr", "ssr": {"aggregation": "fsa"}, "bins": None,
               "ce_weights": None, "alpha": None, "yaw_loss": None, "expectation": None, "landmarks": False,
               "visibility": False},
}
# Presets for a bins head reached from sixd / multitask by setting pose_head: bins.
_BIN_DEFAULTS = {k: ARCH_PRESETS["whenet"][k] for k in ("bins", "ce_weights", "alpha", "yaw_loss", "expectation")}


def train_config_schema() -> dict:
    return yaml.safe_load((schemas_dir() / "train_config.schema.yaml").read_text())


def _ssr_defaults(schema: dict) -> dict:
    """The schema's defaults of the ``model.ssr`` keys."""
    props = schema["properties"]["model"]["properties"]["ssr"]["properties"]
    return {k: copy.deepcopy(v["default"]) for k, v in props.items()}


def _apply_preset(model: dict, schema: dict) -> None:
    preset = ARCH_PRESETS[model["arch"]]
    for key, value in preset.items():
        if key == "ssr":
            continue
        if model.get(key) is None:
            model[key] = copy.deepcopy(value)
    if model["pose_head"] == "ssr":
        # Keys given win; then the preset's aggregation; then the schema defaults.
        ssr = {**_ssr_defaults(schema), **preset.get("ssr", {})}
        ssr.update({k: v for k, v in (model.get("ssr") or {}).items() if v is not None})
        model["ssr"] = ssr
    if model["pose_head"] == "bins":
        for key, value in _BIN_DEFAULTS.items():
            if model.get(key) is None:
                model[key] = copy.deepcopy(value)


def _check_model(model: dict, where: str) -> None:
    if (model["pose_head"] == "ssr") != (model["backbone"] == "two_stream"):
        raise ConfigError(f"{where}: model.pose_head ssr and model.backbone two_stream go together "
                          f"(got pose_head {model['pose_head']}, backbone {model['backbone']})")
    if model["backbone"] == "two_stream" and (model["pretrained"] or model["width_mult"] != 1.0):
        raise ConfigError(f"{where}: the two_stream backbone takes neither model.pretrained nor model.width_mult")
    if model["pose_head"] == "ssr" and model["ssr"]["primary_capsules"] % len(model["ssr"]["stages"]):
        raise ConfigError(f"{where}: model.ssr.primary_capsules ({model['ssr']['primary_capsules']}) must be a "
                          f"multiple of the number of stages ({len(model['ssr']['stages'])})")
    if model["pose_head"] != "bins":
        return
    n = max(len(model["bins"][a]) for a in ("yaw", "pitch", "roll"))
    if len(model["ce_weights"]) < n:
        raise ConfigError(f"{where}: model.ce_weights has {len(model['ce_weights'])} weights for {n} bin specs")
    yaw0 = BinSpec.from_list(model["bins"]["yaw"][0])
    if model["expectation"] == "circular" and not yaw0.periodic:
        raise ConfigError(f"{where}: model.expectation circular needs yaw bins covering 360 deg, got {yaw0}")


def resolve_train_config(config: dict | str | Path | None = None) -> dict:
    """Validate a train config (dict or YAML path); return a copy with every default filled."""
    schema = train_config_schema()
    doc, where = validated_with_defaults(config, schema, "train config")
    _apply_preset(doc["model"], schema)
    _check_model(doc["model"], where)
    if doc["model"]["backbone"] == "two_stream" and doc["data"]["image_size"] != 64:
        raise ConfigError(f"{where}: the two_stream backbone (ssrnet, fsanet) takes 64 x 64 crops; "
                          f"set data.image_size: 64 (got {doc['data']['image_size']})")
    if doc["data"]["yaw_balanced"] and doc["data"]["order"] != "random":
        raise ConfigError(f"{where}: data.yaw_balanced needs data.order random (weighted draws)")
    return doc


def save_train_config(config: dict, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically)."""
    from annotate.core.atomic import write_text_atomic

    return write_text_atomic(path, yaml.safe_dump(config, sort_keys=False))
