"""Atomic file writes: a temporary file beside the target, then ``os.replace``.

A reader (or a resumed run) sees either the old file or the complete new one, never a
half-written file. Parquet tables have their own streaming writer
(``annotate.datasets.tables``); this is for text (JSON, HTML) and whole folders.
"""
from __future__ import annotations

import os
import shutil
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


def replace_folder(built: str | Path, target: str | Path) -> Path:
    """Put the finished folder ``built`` in place of ``target`` (which may exist): the old
    folder is renamed aside, the new one renamed in, then the old one removed, so
    ``target`` is always either the whole old or the whole new folder."""
    built, target = Path(built), Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(built, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target
