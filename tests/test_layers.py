"""The package's import layers: a module imports only its own part and the parts below it.

    core < geometry < head < panoptic < media < synth < detect < labels < datasets < audit
         < config < train < stages < cli

So the data flow reads bottom-up, and no two parts import each other (no cycles).
"""
import ast
from pathlib import Path

import pytest

import annotate

LAYERS = ["core", "geometry", "head", "panoptic", "media", "synth", "detect", "labels", "datasets", "audit",
          "config", "train", "stages", "cli"]
PACKAGE = Path(annotate.__file__).parent


def _part(module: str) -> str | None:
    """``annotate.labels.fit`` -> ``labels``; ``annotate`` -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "annotate" else None


def _imports(path: Path) -> set[str]:
    """The ``annotate`` modules a file imports (absolute and relative, at any depth)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            else:
                found.add(node.module or "")
    return {m for m in found if m == "annotate" or m.startswith("annotate.")}


def _violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _part(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if own is None or own == "__init__":
            continue
        assert own in LAYERS, f"{path}: part {own!r} has no layer; add it to LAYERS (and the docs)"
        for target in _imports(path):
            other = _part(target)
            if other is None or other == own:
                continue
            assert other in LAYERS, f"{path} imports {target}: unknown part {other!r}"
            if LAYERS.index(other) > LAYERS.index(own):
                out.append(f"{path.relative_to(PACKAGE.parent)} ({own}) imports {target} ({other})")
    return out


def test_no_part_imports_a_higher_layer():
    assert _violations() == []


def test_the_check_finds_an_upward_import(tmp_path, monkeypatch):
    """The test itself can fail: a core module importing labels is reported."""
    fake = tmp_path / "annotate"
    (fake / "core").mkdir(parents=True)
    (fake / "core" / "bad.py").write_text("from annotate.labels import fit\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert _violations() == ["annotate/core/bad.py (core) imports annotate.labels (labels)"]


@pytest.mark.parametrize("name", LAYERS[:-4] + ["train", "stages"])
def test_every_layer_is_a_package(name):
    assert (PACKAGE / name / "__init__.py").is_file()
