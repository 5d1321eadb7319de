"""Stage ``head_model``: the mean head model of every sequence's faces (or the configured one)."""
from __future__ import annotations

from pathlib import Path

from annotate.config import head_frame_spec
from annotate.head.head_model import HeadModel, load_head_model, save_head_model


def run(config: dict, faces3d_paths: list[str | Path], out_path: str | Path) -> HeadModel:
    """Build the mean head model from the faces3d tables (``head_model.path`` given: copy it)."""
    from annotate.labels.stage import build_model_from_tables

    given = config["head_model"]["path"]
    if given:
        model = load_head_model(given)
    else:
        model = build_model_from_tables(faces3d_paths, config["head_model"]["max_faces"], head_frame_spec(config))
    save_head_model(model, out_path)
    return model
