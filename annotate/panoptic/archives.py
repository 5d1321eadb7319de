"""Panoptic's per-sequence tar archives, checked and unpacked into place.

A sequence's ``hdFace3d.tar`` (``hdPose3d_stage1_coco19.tar``) holds one top folder,
``hdFace3d/`` (``hdPose3d_stage1_coco19/``), with the per-frame JSON files in it; the
toolbox's ``extractAll.sh`` untars it inside the sequence folder. Here every member is
checked before anything is written (``check_members``):

- its name, with an optional leading ``./``, is a relative path of plain names under the
  expected top folder (``annotate.core.names``: no absolute path, no ``..``, no hidden or
  odd names);
- it is a folder, a regular file, or a link whose target stays inside the top folder;
  devices, FIFOs and links that leave it are refused.

``extract_archive`` then unpacks the checked members into a staging folder beside the target
and renames it into place (``annotate.core.atomic.staged_folder``), so the target folder is
either the whole previous one or the whole new one.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from annotate.core.atomic import staged_folder
from annotate.core.names import UnsafeNameError, check_relative_path


class ArchiveError(ValueError):
    """An archive that cannot be read (truncated, corrupt, not a tar file)."""


@dataclass(frozen=True)
class CheckedMember:
    """One member of an archive that passed ``check_members``.

    relative: its path below the top folder (POSIX; ``""`` for the top folder itself).
    link_target: for a link, the path below the top folder it points to; else ``None``.
    """

    member: tarfile.TarInfo
    relative: str
    link_target: str | None = None


def _below_top(name: str, top: str, archive) -> str:
    """``name`` without its leading ``./`` and ``top/``; refused when outside ``top``."""
    plain = name[2:] if name.startswith("./") else name
    plain = plain.rstrip("/")
    if plain == top:
        return ""
    if not plain.startswith(top + "/"):
        raise UnsafeNameError(f"{archive}: member {name!r} is not under {top}/: refused")
    relative = plain[len(top) + 1:]
    check_relative_path(relative, ".", f"member {name!r}, path", archive)
    return relative


def _link_target(member: tarfile.TarInfo, relative: str, top: str, archive) -> str:
    """Where a link member points, below the top folder; refused when it would leave it."""
    if member.issym():
        # A symbolic link's target is relative to the link's own folder.
        if posixpath.isabs(member.linkname):
            raise UnsafeNameError(f"{archive}: link {member.name!r} -> {member.linkname!r} is absolute: refused")
        target = posixpath.normpath(posixpath.join(posixpath.dirname(relative), member.linkname))
    else:
        # A hard link names another member of the archive.
        target = _below_top(member.linkname, top, archive)
    if target in ("", ".") or target.startswith("../") or target == "..":
        raise UnsafeNameError(f"{archive}: link {member.name!r} -> {member.linkname!r} leaves {top}/: refused")
    check_relative_path(target, ".", f"target of link {member.name!r}", archive)
    return target


def check_members(path: str | Path, top: str, source: str | None = None) -> list[CheckedMember]:
    """Every member of the tar file at ``path``, checked to unpack under ``top/`` only.

    Raises ``ArchiveError`` when the file is not a readable tar archive and
    ``UnsafeNameError`` (naming the archive and the member) for a hostile member. Messages
    name the archive as ``source`` (e.g. its URL) when given, else as ``path``.
    """
    archive = source or str(path)
    try:
        with tarfile.open(path, "r:*") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ArchiveError(f"{archive}: not a readable tar archive ({err})") from None
    if not members:
        raise ArchiveError(f"{archive}: the archive is empty")
    checked, seen, files = [], set(), set()
    for member in members:
        if member.isdir() and member.name in (".", "./"):
            continue                                   # the folder the archive is unpacked in
        relative = _below_top(member.name, top, archive)
        if relative in seen and not member.isdir():
            raise ArchiveError(f"{archive}: member {member.name!r} appears twice")
        seen.add(relative)
        if member.issym() or member.islnk():
            target = _link_target(member, relative, top, archive)
            if member.islnk() and target not in files:
                raise UnsafeNameError(f"{archive}: hard link {member.name!r} -> {member.linkname!r} does not name "
                                      f"an earlier file of the archive: refused")
            checked.append(CheckedMember(member, relative, target))
        elif member.isdir() or member.isfile():
            checked.append(CheckedMember(member, relative))
            if member.isfile():
                files.add(relative)
        else:
            raise UnsafeNameError(f"{archive}: member {member.name!r} is neither a file, a folder nor a link "
                                  f"(tar type {member.type!r}): refused")
    return checked


def _unpack(tar: tarfile.TarFile, checked: list[CheckedMember], into: Path) -> int:
    """Write the checked members under ``into``; returns the number of files (links count)."""
    files = 0
    links = []
    for item in checked:
        path = into.joinpath(*item.relative.split("/")) if item.relative else into
        if item.member.isdir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if item.link_target is not None:
            links.append((item, path))            # after the files they may point to
            continue
        source = tar.extractfile(item.member)
        with source, open(path, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        files += 1
    for item, path in links:
        target = into.joinpath(*item.link_target.split("/"))
        if item.member.issym():
            os.symlink(os.path.relpath(target, path.parent), path)
        else:
            os.link(target, path)
        files += 1
    return files


def extract_archive(archive: str | Path, top: str, target: str | Path) -> int:
    """Unpack ``top/`` of the tar file ``archive`` as the folder ``target`` (replacing it
    whole), after ``check_members``; returns the number of files written."""
    archive = Path(archive)
    checked = check_members(archive, top)
    try:
        with tarfile.open(archive, "r:*") as tar, staged_folder(target) as staging:
            return _unpack(tar, checked, staging)
    except (tarfile.TarError, EOFError) as err:
        raise ArchiveError(f"{archive}: cannot be unpacked ({err})") from None


def count_files(folder: str | Path) -> int:
    """The number of files and links below ``folder`` (0 when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.rglob("*") if p.is_symlink() or p.is_file())
