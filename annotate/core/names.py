"""One gate for names and paths read from data files.

Camera and sequence names come from calibration files, shard columns and index files; they
end up in file names (shards, manifests, exports). A name is accepted when it is one plain
path component of letters, digits, ``_``, ``.`` and ``-`` (not starting with a dot, so no
``..``, no hidden files, no separators, no absolute paths); a relative path read from a file
is accepted when it stays under its folder. Everything else is refused with the file and
the value named, before anything touches the filesystem.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class UnsafeNameError(ValueError):
    """A name or path from a data file that would leave its folder."""


def check_name(value, what: str, source: str | Path) -> str:
    """``value`` if it is a safe single path component; else ``UnsafeNameError``.

    what: what the value is ("camera name"); source: the file it came from.
    """
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise UnsafeNameError(f"{source}: {what} {value!r} is not a plain name (letters, digits, '_', '.', '-'; "
                              f"not starting with '.'): refused")
    return value


def check_relative_path(value, root: str | Path, what: str, source: str | Path) -> Path:
    """``root / value`` if ``value`` is a relative POSIX path whose parts are all plain names
    (so it stays under ``root``); else ``UnsafeNameError``."""
    if not isinstance(value, str) or not value or "\\" in value:
        raise UnsafeNameError(f"{source}: {what} {value!r} is not a relative path: refused")
    parts = PurePosixPath(value).parts
    if PurePosixPath(value).is_absolute() or not parts:
        raise UnsafeNameError(f"{source}: {what} {value!r} is not a relative path: refused")
    for part in parts:
        check_name(part, f"{what} component of {value!r}", source)
    return Path(root).joinpath(*parts)


def check_camera_mapping(mapping, camera_names, setting: str) -> dict:
    """``mapping`` (a config setting camera name -> value) if every key is one of
    ``camera_names``; else ValueError naming ``setting``. YAML reads an unquoted ``00_12`` as
    the octal number 10, so non-string keys get their own message."""
    numbers = [k for k in mapping if not isinstance(k, str)]
    if numbers:
        raise ValueError(f"{setting}: camera names must be strings, got {numbers}; quote them in YAML "
                         f"('00_12': ...): unquoted, 00_12 reads as the octal number 10")
    unknown = sorted(set(mapping) - set(camera_names))
    if unknown:
        raise ValueError(f"{setting} names cameras the calibration does not have: {unknown}; its cameras are "
                         f"{list(camera_names)}")
    return dict(mapping)
