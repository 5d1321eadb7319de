"""Atomic file and folder writes: build beside the target, then ``os.replace``.

A reader (or a resumed run) sees either the old file or the complete new one, never a
half-written one. Every writer of the package goes through here:

- ``atomic_file(path)``: a context giving a temporary sibling path to write; on success it
  replaces ``path``, on failure it is removed.
- ``write_text_atomic`` / ``write_bytes_atomic`` / ``write_json_atomic``: the one-call forms.
- ``staged_folder(path)``: the same for a whole folder (``replace_folder``).

A run killed with ``kill -9`` cannot remove its temporaries, so each writer first removes
the leftovers of earlier writers of the same target (``clear_leftovers``): siblings named
``.<name>.<pid>.tmp``, ``.<name>.partial-<pid>`` and ``.<name>.old-<pid>``. Two runs never
write the same target at once (Snakemake's lock), so a leftover is never a live file.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

_LEFTOVER = r"\.{name}\.(\d+\.tmp|partial-\d+|old-\d+)(\.[A-Za-z0-9]+)?"


def temporary_sibling(path: str | Path, kind: str = "tmp") -> Path:
    """``.<name>.<pid>.tmp`` (kind tmp) or ``.<name>.partial-<pid>`` (kind partial) beside
    ``path``. A suffix after ``.tmp`` is kept by the caller where a library needs it."""
    path = Path(path)
    if kind == "tmp":
        return path.with_name(f".{path.name}.{os.getpid()}.tmp")
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def clear_leftovers(path: str | Path) -> int:
    """Remove the temporaries that killed writers of ``path`` left beside it; returns how many."""
    path = Path(path)
    if not path.parent.is_dir():
        return 0
    pattern = re.compile(_LEFTOVER.format(name=re.escape(path.name)))
    removed = 0
    for sibling in path.parent.iterdir():
        if pattern.fullmatch(sibling.name):
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)
            removed += 1
    return removed


@contextlib.contextmanager
def atomic_file(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (ending in ``suffix``, for libraries that go by
    the extension); when the block ends without error it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(path)
    tmp = temporary_sibling(path)
    tmp = tmp.with_name(tmp.name + suffix) if suffix else tmp
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | Path, doc, sort_keys: bool = False, indent: int | None = 1,
                      allow_nan: bool = True) -> Path:
    """Write ``doc`` (a dataclass or JSON-able value; other values as ``str``) as JSON
    atomically. ``sort_keys`` makes the bytes independent of insertion order (manifests);
    ``allow_nan=False`` refuses NaN/inf (they are not JSON)."""
    if dataclasses.is_dataclass(doc) and not isinstance(doc, type):
        doc = dataclasses.asdict(doc)
    return write_text_atomic(path, json.dumps(doc, indent=indent, sort_keys=sort_keys, default=str,
                                              allow_nan=allow_nan))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating its folder."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def replace_folder(built: str | Path, target: str | Path) -> Path:
    """Put the finished folder ``built`` in place of ``target`` (which may exist): the old
    folder is renamed aside, the new one renamed in, then the old one removed, so
    ``target`` is always either the whole old or the whole new folder."""
    built, target = Path(built), Path(target)
    old = None
    if target.exists():
        old = temporary_sibling(target, "old")
        os.replace(target, old)
    os.replace(built, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


@contextlib.contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(target)
    staging = temporary_sibling(target, "partial")
    staging.mkdir()
    try:
        yield staging
        replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
