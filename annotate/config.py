"""Pipeline configuration: validation against schemas/config.schema.yaml, defaults, and the
parameter objects each stage takes.

The Snakefile validates with the same schema; the CLI and the rule scripts call
``resolve_config`` so every entry point sees the same defaults.
"""
from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from annotate.core.schema import schemas_dir
from annotate.head.head_frame import HeadFrameSpec
from annotate.labels.fit import FitConfig
from annotate.head.per_view import ViewConfig


class ConfigError(ValueError):
    """The configuration does not match schemas/config.schema.yaml."""


def config_schema() -> dict:
    return yaml.safe_load((schemas_dir() / "config.schema.yaml").read_text())


def _with_defaults(validator_class):
    """A validator that fills in ``default`` values of object properties while validating."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def read_document(config: dict | str | Path | None, what: str) -> tuple[dict, str]:
    """A config as a dict of its own (from a dict, a YAML path or None) and where it came
    from, for error messages; ``what`` names it."""
    if config is None:
        return {}, "<defaults>"
    if isinstance(config, (str, Path)):
        try:
            return yaml.safe_load(Path(config).read_text()) or {}, str(config)
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{config}: cannot read {what}: {err}") from err
    return copy.deepcopy(dict(config)), f"<{what}>"


def validated_with_defaults(config: dict | str | Path | None, schema: dict, what: str,
                            where: str | None = None) -> tuple[dict, str]:
    """Read a config (dict, YAML path or None), validate it against ``schema`` and fill in
    the schema's defaults. Returns ``(document, where)``; ``what`` names it in errors, and
    ``where`` (default: the path, or a placeholder) says where it came from."""
    doc, found = read_document(config, what)
    where = where or found
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        msgs = [f"  {'/'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors]
        raise ConfigError(f"{where}: invalid {what}uration\n" + "\n".join(msgs))
    return doc, where


def deep_merge(base: dict, top: dict) -> dict:
    """``base`` with ``top``'s keys laid over it, recursively for dicts (copies)."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else copy.deepcopy(value)
    return out


def apply_when_synthetic(config: dict) -> dict:
    """The config with its ``when_synthetic`` settings laid beneath its own keys when the
    source is synthetic (the embedded default's extras), and dropped otherwise, so a real-data
    config never inherits them."""
    config = dict(config)
    extras = config.pop("when_synthetic", None) or {}
    if config.get("source", "synthetic") != "synthetic":
        return config
    if not isinstance(extras, dict):
        raise ConfigError(f"when_synthetic must be a mapping, got {type(extras).__name__}")
    return deep_merge(extras, config)


def resolve_config(config: dict | str | Path | None = None) -> dict:
    """Validate a config (a dict, or a YAML file path) and return a copy with defaults filled
    (``when_synthetic`` applied first)."""
    doc, where = read_document(config, "config")
    doc, where = validated_with_defaults(apply_when_synthetic(doc), config_schema(), "config", where)
    if doc["source"] == "panoptic":
        pan = doc["panoptic"]
        if not pan.get("root") or not pan.get("sequences"):
            raise ConfigError(f"{where}: source is panoptic but panoptic.root or panoptic.sequences is missing")
    elif doc["download"]["enabled"]:
        raise ConfigError(f"{where}: download.enabled needs source: panoptic (a synthetic sequence is generated, "
                          f"not downloaded)")
    _check_offset_sequences(doc, where)
    return doc


def _check_offset_sequences(doc: dict, where: str) -> None:
    unknown = sorted(set(doc["ingest"]["frame_offsets"]) - set(sequence_names(doc)))
    if unknown:
        raise ConfigError(f"{where}: ingest.frame_offsets names sequences this config does not read: {unknown} "
                          f"(its sequences: {sequence_names(doc)})")


def sequence_names(config: dict) -> list[str]:
    """The sequences a resolved config covers."""
    if config["source"] == "synthetic":
        return [f"synth_{i:03d}" for i in range(config["synthetic"]["sequences"])]
    return list(config["panoptic"]["sequences"])


# The config sections each stage reads. Every rule declares its stage's sections as
# ``params`` (``stage_config``), so Snakemake reruns exactly the stages a config change
# touches, and everything downstream of them.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "synth": ("synthetic",),
    "ingest": ("ingest",),
    "triangulate": ("detect", "triangulate"),
    "head_model": ("head_model",),
    "label": ("fit", "subjects", "smoothing", "views", "label"),
    "dataset": ("dataset", "source"),
    "train": ("train",),
    "audit": ("audit", "detect", "ingest"),
    "download": ("download", "ingest"),
}


def stage_config(config: dict, stage: str, sequence: str | None = None) -> dict:
    """The part of a resolved config that ``stage`` reads (a rule's ``params``), with every
    mapping's keys sorted: Snakemake compares the params' text, so the same settings written
    in another order must not rerun a stage. With ``sequence`` (a per-sequence rule), the
    per-sequence settings (``ingest.frame_offsets``) keep that sequence's entry only, so
    changing one sequence's reruns that sequence alone."""
    try:
        part = {section: config[section] for section in STAGE_SECTIONS[stage]}
    except KeyError as err:
        raise ConfigError(f"stage_config: unknown stage or section {err}") from None
    if sequence is not None and "ingest" in part:
        offsets = part["ingest"]["frame_offsets"]
        part["ingest"] = {**part["ingest"], "frame_offsets": {sequence: offsets[sequence]} if sequence in offsets
                          else {}}
    return _sorted_keys(part)


def _sorted_keys(value):
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def detect_backend(config: dict, seq_dir: str | Path) -> str:
    """The 2D landmark backend for the sequence folder ``seq_dir``: ``detect.backend``, with
    ``auto`` resolved to the synthetic stand-in where the synthetic generator's ground truth
    is beside the sequence, and to facemesh (a real detector that needs no download, the
    best of the offline ones on real Panoptic frames) anywhere else. ``synthetic`` asked for
    on a sequence without that ground truth is refused."""
    from annotate.synth.generate import GROUND_TRUTH_NPZ

    backend = config["detect"]["backend"]
    has_truth = (Path(seq_dir) / GROUND_TRUTH_NPZ).is_file()
    if backend == "auto":
        return "synthetic" if has_truth else "facemesh"
    if backend == "synthetic" and not has_truth:
        raise ConfigError(f"detect.backend is synthetic, but {seq_dir} has no {GROUND_TRUTH_NPZ} (the synthetic "
                          f"generator's ground truth): use a real detector "
                          f"(detect.backend: auto, facemesh, dlib or fan)")
    return backend


def with_detect_backend(config: dict, seq_dir: str | Path) -> dict:
    """``config`` with ``detect.backend`` resolved for ``seq_dir`` (``detect_backend``)."""
    return {**config, "detect": {**config["detect"], "backend": detect_backend(config, seq_dir)}}


def sequence_root(config: dict) -> Path:
    """The directory that holds the sequence folders."""
    if config["source"] == "synthetic":
        return Path(config["results"]) / "synthetic"
    return Path(config["panoptic"]["root"])


def download_settings(config: dict):
    """The download stage's settings (an ``annotate.panoptic.download.DownloadSettings``)."""
    from annotate.panoptic.download import DownloadSettings
    from annotate.panoptic.fetch import FetchPolicy

    d = config["download"]
    policy = FetchPolicy(retries=d["retries"], backoff_s=float(d["backoff_s"]), timeout_s=float(d["timeout_s"]))
    return DownloadSettings(base_url=d["base_url"], archives=tuple(d["archives"]), videos=d["videos"],
                            keep_archives=d["keep_archives"], policy=policy)


def head_frame_spec(config: dict) -> HeadFrameSpec:
    hm = config["head_model"]
    return HeadFrameSpec(tuple(float(v) for v in hm["centre_offset_cm"]), float(hm["helmet_radius_cm"]),
                         str(hm["orientation"]))


def fit_config(config: dict) -> FitConfig:
    f = dict(config["fit"])
    f["scale_range"] = tuple(f["scale_range"])
    return FitConfig(**f)


def subject_config(config: dict):
    from annotate.labels.subjects import SubjectConfig

    return SubjectConfig(**config["subjects"])


def smoothing_config(config: dict):
    from annotate.labels.smoothing import SmoothingConfig

    return SmoothingConfig(**config["smoothing"])


def view_config(config: dict) -> ViewConfig:
    return ViewConfig(**config["views"])


def triangulate_stage_config(config: dict):
    """The triangulation stage's settings from ``detect`` and ``triangulate``
    (an ``annotate.labels.triangulate_stage.StageConfig``)."""
    from annotate.detect.cross_view import CrossViewConfig
    from annotate.detect.tracking import TrackingConfig
    from annotate.geometry.triangulation import TriangulationConfig
    from annotate.labels.triangulate_stage import StageConfig

    t, d = config["triangulate"], config["detect"]
    solver = TriangulationConfig(**{k: t[k] for k in ("inlier_threshold_px", "max_repro_error_px", "min_views",
                                                      "hypotheses", "first_round", "refine", "seed")})
    cross = CrossViewConfig(**{**d["cross_view"], "face_size_cm": tuple(d["cross_view"]["face_size_cm"])})
    return StageConfig(association_max_cost=d["association_max_cost"], min_landmarks=t["min_landmarks"],
                       max_view_error_px=t["max_view_error_px"], threshold_face_px=t["threshold_face_px"],
                       full_score_views=t["full_score_views"], chunk_frames=t["chunk_frames"], triangulation=solver,
                       association=d["association"], cross_view=cross, tracking=TrackingConfig(**d["tracking"]),
                       face_scale_range=None if t["face_scale_range"] is None else tuple(t["face_scale_range"]))
