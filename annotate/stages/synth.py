"""Stage ``synth``: one synthetic Panoptic-format sequence (annotate.synth.generate)."""
from __future__ import annotations

from pathlib import Path


def scene_config(config: dict, index: int = 0):
    """The SceneConfig of synthetic sequence ``index`` (seed offset by the index)."""
    from annotate.synth.scene import SceneConfig

    s = dict(config["synthetic"])
    s.pop("sequences")
    s.pop("render_video")
    s["seed"] = s["seed"] + index
    s["image_size"] = tuple(s["image_size"])
    return SceneConfig(**s)


def sequence_index(sequence: str) -> int:
    """``synth_003`` -> 3 (the seed offset); 0 for a name without a number suffix."""
    tail = sequence.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def run(config: dict, root: str | Path, sequence: str, n_jobs: int = 2) -> Path:
    """Generate one synthetic sequence under ``root/sequence``."""
    from annotate.synth.generate import generate_sequence

    return generate_sequence(root, sequence, scene_config(config, sequence_index(sequence)),
                             render_video=config["synthetic"]["render_video"], n_jobs=n_jobs)
