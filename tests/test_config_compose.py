"""Configs compose as users expect: the embedded default's extras never reach real data."""
from pathlib import Path

import pytest
import yaml

from annotate.config import ConfigError, deep_merge, resolve_config

CONFIGS = Path(__file__).resolve().parents[1] / "pipelines" / "config"


def snakemake_merge(*files: Path) -> dict:
    """What Snakemake's configfile + --configfile do: later files laid over earlier ones."""
    config: dict = {}
    for f in files:
        config = deep_merge(config, yaml.safe_load(f.read_text()) or {})
    return config


def test_the_embedded_default_trains_on_its_synthetic_sequence():
    cfg = resolve_config(snakemake_merge(CONFIGS / "default.yaml"))
    assert cfg["source"] == "synthetic" and cfg["train"]["in_default_run"]
    assert cfg["synthetic"]["num_people"] == 6 and cfg["dataset"]["split"]["assign"]


def test_a_real_data_config_inherits_nothing_of_the_synthetic_default():
    cfg = resolve_config(snakemake_merge(CONFIGS / "default.yaml", CONFIGS / "panoptic.yaml"))
    assert cfg["source"] == "panoptic"
    assert cfg["train"]["in_default_run"] is False              # the schema's default
    assert cfg["dataset"]["split"]["assign"] == {}
    assert cfg["ingest"]["frame_step"] == 5
    assert "when_synthetic" not in cfg


def test_a_synthetic_config_overrides_the_extras_key_by_key(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"synthetic": {"num_frames": 8}, "train": {"in_default_run": False}}))
    cfg = resolve_config(snakemake_merge(CONFIGS / "default.yaml", mine))
    assert cfg["synthetic"]["num_frames"] == 8 and cfg["synthetic"]["num_people"] == 6
    assert cfg["train"]["in_default_run"] is False


def test_a_bad_extra_is_named():
    with pytest.raises(ConfigError, match="num_frames"):
        resolve_config({"when_synthetic": {"synthetic": {"num_frames": "many"}}})


def test_stage_config_text_does_not_depend_on_key_order():
    """Snakemake compares a rule's params as text: the same settings in another order must
    give the same text, so they rerun nothing."""
    from annotate.config import resolve_config, stage_config

    a = resolve_config({"fit": {"max_rms_cm": 1.0, "min_landmarks": 30}, "views": {"min_box_px": 20}})
    b = resolve_config({"views": {"min_box_px": 20}, "fit": {"min_landmarks": 30, "max_rms_cm": 1.0}})
    b["fit"] = dict(reversed(list(b["fit"].items())))
    assert list(a["fit"]) != list(b["fit"])
    assert str(stage_config(a, "label")) == str(stage_config(b, "label"))
