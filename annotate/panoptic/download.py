"""Fetch a Panoptic sequence from the Panoptic server's layout (as the toolbox's getData.sh).

What is fetched for sequence ``<seq>`` (``<base>`` = ``DownloadSettings.base_url``), and
where it goes in the sequence folder ``<root>/<seq>/``::

    <base>/<seq>/calibration_<seq>.json                  calibration_<seq>.json
    <base>/<seq>/hdPose3d_stage1_coco19.tar              hdPose3d_stage1_coco19.tar -> hdPose3d_stage1_coco19/
    <base>/<seq>/hdFace3d.tar                            hdFace3d.tar -> hdFace3d/
    <base>/<seq>/videos/hd_shared_crf20/hd_00_XX.mp4     hdVideos/hd_00_XX.mp4   (selected cameras only)

Every file is verified and recorded in ``<root>/<seq>/download_manifest.json`` (size,
SHA-256, where the checksum came from). On a later run a recorded file is hashed again; a
truncated or corrupt one is fetched again (resuming what fits, then whole once more if the
checksum still fails). A file without a record (placed by hand, or by getData.sh) is
treated as a partial download: the server is asked for the bytes after it, and it is
recorded once its size matches the server's. Where the server sends no checksum header, the
first complete download's SHA-256 and size are recorded and later runs verify against them.
Archives are checked member by member and unpacked atomically (``annotate.panoptic.archives``).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import requests

from annotate.core.atomic import write_json_atomic
from annotate.core.names import UnsafeNameError, check_name, check_relative_path
from annotate.panoptic.archives import ArchiveError, check_members, count_files, extract_archive
from annotate.panoptic.calibration import read_calibration_info
from annotate.panoptic.fetch import DownloadError, FetchPolicy, Fetched, fetch, sha256_of
from annotate.panoptic.layout import BODY_DIR, FACE_DIR, VIDEO_DIR, SequenceLayout, read_json

PANOPTIC_BASE_URL = "http://domedb.perception.cs.cmu.edu/webdata/dataset"
ARCHIVES = (BODY_DIR, FACE_DIR)
MANIFEST_NAME = "download_manifest.json"
MANIFEST_FORMAT = "annotate-download-manifest"
MANIFEST_VERSION = 1
REMOTE_VIDEO_DIR = "videos/hd_shared_crf20"      # getData.sh's HD video folder on the server


@dataclass(frozen=True)
class DownloadSettings:
    """What to fetch and how (config section ``download``).

    base_url: the server's dataset folder (``<base_url>/<seq>/...``).
    archives: which per-frame archives (``hdPose3d_stage1_coco19``, ``hdFace3d``).
    videos: fetch ``hdVideos/hd_00_XX.mp4`` of the selected cameras.
    keep_archives: keep the ``.tar`` files after unpacking (otherwise removed; the manifest
        keeps their record and the unpacked folder stands for them).
    policy: retries, backoff, time-out, chunk size.
    """

    base_url: str = PANOPTIC_BASE_URL
    archives: tuple[str, ...] = ARCHIVES
    videos: bool = True
    keep_archives: bool = True
    policy: FetchPolicy = field(default_factory=FetchPolicy)


@dataclass(frozen=True)
class RemoteFile:
    """One file of the server's layout: ``url`` -> ``relative`` (POSIX) in the sequence folder."""

    relative: str
    url: str


def _url(settings: DownloadSettings, sequence: str, path: str) -> str:
    return f"{settings.base_url.rstrip('/')}/{sequence}/{path}"


def calibration_file(settings: DownloadSettings, sequence: str) -> RemoteFile:
    name = f"calibration_{sequence}.json"
    return RemoteFile(name, _url(settings, sequence, name))


def archive_file(settings: DownloadSettings, sequence: str, archive: str) -> RemoteFile:
    if archive not in ARCHIVES:
        raise ValueError(f"download archive {archive!r} is not one of {list(ARCHIVES)}")
    return RemoteFile(f"{archive}.tar", _url(settings, sequence, f"{archive}.tar"))


def video_file(settings: DownloadSettings, sequence: str, camera: str) -> RemoteFile:
    name = SequenceLayout(".", sequence).video_file(camera).name           # checks the camera name
    return RemoteFile(f"{VIDEO_DIR}/{name}", _url(settings, sequence, f"{REMOTE_VIDEO_DIR}/{name}"))


# ---------------------------------------------------------------------------------- manifest

class Manifest:
    """``download_manifest.json``: per fetched file ``{url, size, sha256, checksum}`` where
    checksum is ``server`` (the server's digest header) or ``first_download``; per unpacked
    folder ``{archive, sha256, files}``."""

    def __init__(self, path: Path, sequence: str, files: dict | None = None, unpacked: dict | None = None):
        self.path, self.sequence = path, sequence
        self.files: dict[str, dict] = files or {}
        self.unpacked: dict[str, dict] = unpacked or {}

    @classmethod
    def load(cls, path: str | Path, sequence: str) -> "Manifest":
        """The manifest at ``path`` (an empty one when absent); a damaged one is an error."""
        path = Path(path)
        if not path.exists():
            return cls(path, sequence)
        doc = read_json(path)
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{path}: not a download manifest (format {MANIFEST_FORMAT!r} expected)")
        if doc.get("version") != MANIFEST_VERSION or doc.get("sequence") != sequence:
            raise ValueError(f"{path}: manifest version {doc.get('version')!r} of sequence {doc.get('sequence')!r}; "
                             f"expected version {MANIFEST_VERSION} of {sequence!r}")
        files, unpacked = doc.get("files", {}), doc.get("unpacked", {})
        for relative, entry in files.items():
            check_relative_path(relative, ".", "manifest file", path)
            if not (isinstance(entry, dict) and isinstance(entry.get("size"), int)
                    and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64):
                raise ValueError(f"{path}: entry {relative!r} lacks an integer size or a SHA-256")
        for folder, entry in unpacked.items():
            check_name(folder, "unpacked folder", path)
            if not (isinstance(entry, dict) and isinstance(entry.get("files"), int)):
                raise ValueError(f"{path}: unpacked folder {folder!r} lacks its file count")
        return cls(path, sequence, files, unpacked)

    def save(self) -> None:
        write_json_atomic(self.path, {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                                      "sequence": self.sequence, "files": self.files, "unpacked": self.unpacked},
                          sort_keys=True)


# --------------------------------------------------------------------------------- one file

def _matches(path: Path, entry: dict, chunk_bytes: int) -> bool:
    """``path`` has the recorded size and SHA-256 (the size first: a truncated file costs nothing)."""
    return path.stat().st_size == entry["size"] and sha256_of(path, chunk_bytes).hexdigest() == entry["sha256"]


def _checksum_problem(remote: RemoteFile, got: Fetched, entry: dict | None) -> str | None:
    """Why ``got`` is not the file, or ``None``. The server's digest wins; else the record."""
    if got.server_sha256 is not None:
        if entry is not None and entry["sha256"] != got.server_sha256:
            raise DownloadError(f"{remote.url}: the server's SHA-256 {got.server_sha256} differs from the "
                                f"{entry['sha256']} recorded at the first download: the file changed on the server")
        expected, source = got.server_sha256, "the server's digest"
    elif entry is not None:
        expected, source = entry["sha256"], "the manifest"
    else:
        return None
    return None if got.sha256 == expected else f"SHA-256 {got.sha256} does not match {expected} ({source})"


class _Session:
    """Fetches files of one sequence folder and records them in its manifest."""

    def __init__(self, folder: Path, manifest: Manifest, settings: DownloadSettings, http: requests.Session):
        self.folder, self.manifest, self.settings, self.http = folder, manifest, settings, http
        self.report: dict[str, str] = {}

    def obtain(self, remote: RemoteFile, check: Callable[[Path], object] | None = None) -> Path:
        """``remote`` verified at its place in the folder (fetched when missing, truncated or
        corrupt); ``check(part)`` vets a download before it is recorded."""
        final = check_relative_path(remote.relative, self.folder, "download target", remote.url)
        entry = self.manifest.files.get(remote.relative)
        chunk = self.settings.policy.chunk_bytes
        part = final.with_name(final.name + ".part")
        if final.is_file() and entry is not None and _matches(final, entry, chunk):
            part.unlink(missing_ok=True)         # a leftover of an earlier, superseded attempt
            self.report[remote.relative] = "verified"
            return final
        if final.is_file():
            # Unrecorded, truncated or corrupt: resume from it; the checksum decides.
            os.replace(final, part)
        for whole_again in (False, True):
            got = fetch(self.http, remote.url, part, self.settings.policy,
                        expected_size=entry["size"] if entry else None, label=remote.relative)
            problem = _checksum_problem(remote, got, entry) or self._vet(part, check, remote)
            if problem is None:
                break
            part.unlink(missing_ok=True)
            if whole_again:
                raise DownloadError(f"{remote.url}: {problem}; fetched twice, removed")
            print(f"{remote.relative}: {problem}; fetching the whole file again")
        first = (entry or {}).get("checksum", "first_download")
        self.manifest.files[remote.relative] = {"url": remote.url, "size": got.size, "sha256": got.sha256,
                                                "checksum": "server" if got.server_sha256 else first}
        self.manifest.save()                     # recorded before the rename: a kill leaves a .part that verifies
        os.replace(part, final)
        self.report[remote.relative] = ("resumed" if got.resumed_from else "fetched") if got.received else "verified"
        return final

    @staticmethod
    def _vet(part: Path, check, remote: RemoteFile) -> str | None:
        """``check(part)``: an unreadable download is a problem (fetched again); a hostile one
        is refused at once."""
        if check is None:
            return None
        try:
            check(part)
        except ArchiveError as err:
            return str(err)
        except UnsafeNameError as err:
            part.unlink(missing_ok=True)
            raise DownloadError(str(err)) from None
        return None

    def unpack(self, remote: RemoteFile, folder_name: str) -> None:
        """``<folder_name>/`` from the archive ``remote`` (fetched or verified first), unless
        the manifest says this very archive was unpacked there and the folder is complete."""
        target = self.folder / folder_name
        done = self.manifest.unpacked.get(folder_name)
        archive = self.folder / remote.relative
        entry = self.manifest.files.get(remote.relative)
        intact = (done is not None and entry is not None and done.get("sha256") == entry["sha256"]
                  and count_files(target) == done["files"])
        if intact and not archive.exists():
            self.report[remote.relative] = "unpacked earlier"
            return
        archive = self.obtain(remote, check=lambda part: check_members(part, folder_name, remote.url))
        entry = self.manifest.files[remote.relative]
        if not intact:
            files = extract_archive(archive, folder_name, target)
            self.manifest.unpacked[folder_name] = {"archive": remote.relative, "sha256": entry["sha256"],
                                                   "files": files}
            self.manifest.save()
            self.report[folder_name] = f"unpacked {files} files"
        if not self.settings.keep_archives:
            archive.unlink()


def selected_cameras(calibration: Path, cameras: str | Sequence[str]) -> tuple[str, ...]:
    """The HD cameras to fetch videos of: all of the calibration's (``"hd"``) or the listed
    ones (each must be in the calibration)."""
    names = None if cameras == "hd" else list(cameras)
    return read_calibration_info(calibration, "hd", names).names


def download_sequence(root: str | Path, sequence: str, settings: DownloadSettings = DownloadSettings(),
                      cameras: str | Sequence[str] = "hd") -> dict:
    """Fetch and verify sequence ``sequence`` into ``root/sequence`` (module docstring).

    Returns a summary: the sequence folder, the manifest, and per file what happened
    (``fetched``, ``resumed``, ``verified``, ``unpacked N files``, ``unpacked earlier``).
    Raises ``DownloadError`` (the URL and the cause), ``UnsafeNameError`` or
    ``PanopticFormatError`` (a calibration that lacks a requested camera).
    """
    check_name(sequence, "sequence name", "the download request")
    folder = SequenceLayout(root, sequence).directory
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.load(folder / MANIFEST_NAME, sequence)
    with contextlib.closing(requests.Session()) as http:
        session = _Session(folder, manifest, settings, http)
        calibration = session.obtain(calibration_file(settings, sequence))
        for archive in settings.archives:
            session.unpack(archive_file(settings, sequence, archive), archive)
        chosen = selected_cameras(calibration, cameras) if settings.videos else ()
        for camera in chosen:
            session.obtain(video_file(settings, sequence, camera))
    return {"sequence": sequence, "folder": str(folder), "manifest": str(manifest.path),
            "base_url": settings.base_url, "cameras": list(chosen), "files": session.report}
