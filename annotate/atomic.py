"""Atomic file writes: a temporary file beside the target, then ``os.replace``.

A reader (or a resumed run) sees either the old file or the complete new one, never a
half-written file. Parquet tables have their own streaming writer
(``annotate.datasets.tables``); this is for text (JSON, HTML).
"""
from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
