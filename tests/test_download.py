"""Download of a Panoptic sequence (annotate.panoptic.download) from a local HTTP server.

The server runs on 127.0.0.1 in a thread of the test process and serves a synthetic
sequence packed in the Panoptic server's layout: the calibration, the two tar archives
(``hdPose3d_stage1_coco19/`` and ``hdFace3d/`` as top folders, as Panoptic packs them) and
small stand-in videos under ``videos/hd_shared_crf20/``. It answers Range requests and can
be told to cut a transfer short, corrupt what it serves, send a SHA-256 digest header or
ignore ranges. Nothing here reaches beyond the loopback address.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from annotate.core.names import UnsafeNameError
from annotate.panoptic import archives
from annotate.panoptic.download import (MANIFEST_NAME, DownloadSettings, Manifest, download_sequence)
from annotate.panoptic.fetch import DownloadError, FetchPolicy
from annotate.panoptic.ingest import ingest_sequence

SEQ = "synth_dl"
CAMERAS = ("00_00", "00_01", "00_02")
VIDEO_BYTES = 300_000
FAST = FetchPolicy(retries=0, backoff_s=0.0, timeout_s=10.0, chunk_bytes=16_384)


# ------------------------------------------------------------------------------ the server

class FakePanoptic:
    """What the handler serves and how; ``requests`` logs ``(path, Range header, body bytes)``."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.requests: list[tuple[str, str | None, int]] = []
        self.cut_once: dict[str, int] = {}       # path -> body bytes to send before closing (once)
        self.corrupt: set[str] = set()           # paths served with one byte flipped
        self.digest = False                      # send Repr-Digest of the true content
        self.ranges = True                       # answer Range requests (else always 200)
        self.lock = threading.Lock()

    def gets(self, path: str) -> list[tuple[str | None, int]]:
        return [(r, n) for p, r, n in self.requests if p == path]


def _handler(state: FakePanoptic):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):            # keep the test output quiet
            pass

        def do_GET(self):
            path = self.path
            if path not in state.files:
                self.send_error(404)
                with state.lock:
                    state.requests.append((path, self.headers.get("Range"), 0))
                return
            true = state.files[path]
            body = bytearray(true)
            if path in state.corrupt:
                body[len(body) // 2] ^= 0xFF
            start, status = 0, 200
            asked = self.headers.get("Range")
            if asked and state.ranges:
                start = int(asked.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    with state.lock:
                        state.requests.append((path, asked, 0))
                    return
                status = 206
            part = bytes(body[start:])
            self.send_response(status)
            self.send_header("Content-Length", str(len(part)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            if state.digest:
                digest = base64.b64encode(hashlib.sha256(true).digest()).decode()
                self.send_header("Repr-Digest", f"sha-256=:{digest}:")
            self.end_headers()
            with state.lock:
                cut = state.cut_once.pop(path, None)
            sent = part if cut is None else part[:cut]
            with state.lock:
                state.requests.append((path, asked, len(sent)))
            self.wfile.write(sent)
            self.wfile.flush()

    return Handler


@pytest.fixture
def server(published):
    state = FakePanoptic(published)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


# -------------------------------------------------------------------------- the sequence

def _tar_folder(folder: Path) -> bytes:
    """``folder`` packed as Panoptic packs it: the folder itself is the archive's top entry."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """A synthetic sequence (no videos) written by the generator."""
    from annotate.synth.generate import generate_sequence
    from annotate.synth.scene import SceneConfig

    root = tmp_path_factory.mktemp("original")
    return generate_sequence(root, SEQ, SceneConfig(num_frames=4, num_people=2, num_cameras=len(CAMERAS),
                                                    image_size=(320, 180)), render_video=False)


def video_bytes(camera: str) -> bytes:
    """A stand-in video: an MP4 ``ftyp`` box and noise (the download does not decode it)."""
    rng = np.random.default_rng(int(camera.replace("_", "")))
    return b"\x00\x00\x00\x18ftypmp42" + rng.integers(0, 256, VIDEO_BYTES, dtype=np.uint8).tobytes()


@pytest.fixture(scope="module")
def published(original) -> dict[str, bytes]:
    """URL path -> bytes, in the Panoptic server's layout."""
    files = {f"/{SEQ}/calibration_{SEQ}.json": (original / f"calibration_{SEQ}.json").read_bytes(),
             f"/{SEQ}/hdPose3d_stage1_coco19.tar": _tar_folder(original / "hdPose3d_stage1_coco19"),
             f"/{SEQ}/hdFace3d.tar": _tar_folder(original / "hdFace3d")}
    for camera in CAMERAS:
        files[f"/{SEQ}/videos/hd_shared_crf20/hd_{camera}.mp4"] = video_bytes(camera)
    return files


def settings(server, **changes) -> DownloadSettings:
    return DownloadSettings(base_url=server.base_url, policy=changes.pop("policy", FAST), **changes)


VIDEO_TOTAL = len(video_bytes("00_01"))
FACE_TAR = f"/{SEQ}/hdFace3d.tar"
VIDEO = f"/{SEQ}/videos/hd_shared_crf20/hd_00_01.mp4"


# --------------------------------------------------------------------------------- the tests

def test_full_download_then_ingest(server, original, tmp_path):
    summary = download_sequence(tmp_path, SEQ, settings(server))
    seq = tmp_path / SEQ
    assert summary["cameras"] == list(CAMERAS)
    for name in ("hdFace3d", "hdPose3d_stage1_coco19"):
        assert sorted(p.name for p in (seq / name).iterdir()) == sorted(p.name for p in (original / name).iterdir())
        assert all((seq / name / p.name).read_bytes() == p.read_bytes() for p in (original / name).iterdir())
    for camera in CAMERAS:
        assert (seq / "hdVideos" / f"hd_{camera}.mp4").read_bytes() == video_bytes(camera)
    manifest = json.loads((seq / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == {f"calibration_{SEQ}.json", "hdPose3d_stage1_coco19.tar", "hdFace3d.tar",
                                      *(f"hdVideos/hd_{c}.mp4" for c in CAMERAS)}
    video = manifest["files"]["hdVideos/hd_00_01.mp4"]
    assert video["sha256"] == hashlib.sha256(video_bytes("00_01")).hexdigest()
    assert video["size"] == VIDEO_TOTAL and video["checksum"] == "first_download"
    assert manifest["unpacked"]["hdFace3d"]["files"] == 4
    assert not list(seq.rglob("*.part"))

    downloaded = ingest_sequence(tmp_path, SEQ, tmp_path / "ingest_downloaded")
    direct = ingest_sequence(original.parent, SEQ, tmp_path / "ingest_direct")
    assert downloaded.face_files == downloaded.body_files == 4
    assert downloaded.rows["faces3d"] > 0 and downloaded.rows == direct.rows
    got, want = (pq.read_table(tmp_path / f"ingest_{k}" / "faces3d.parquet") for k in ("downloaded", "direct"))
    assert got.column("frame").equals(want.column("frame"))
    assert np.array_equal(np.asarray(got.column("landmarks_world").to_pylist()),
                          np.asarray(want.column("landmarks_world").to_pylist()), equal_nan=True)

    # A second run hashes what it has and asks the server nothing.
    server.requests.clear()
    again = download_sequence(tmp_path, SEQ, settings(server))
    assert server.requests == []
    assert set(again["files"].values()) == {"verified"}


def test_an_interrupted_transfer_resumes_without_refetching(server, tmp_path):
    server.cut_once[VIDEO] = 100_000
    with pytest.raises(DownloadError, match="hd_00_01.mp4"):
        download_sequence(tmp_path, SEQ, settings(server))
    part = tmp_path / SEQ / "hdVideos" / "hd_00_01.mp4.part"
    assert part.stat().st_size == 100_000
    assert not (tmp_path / SEQ / "hdVideos" / "hd_00_01.mp4").exists()

    server.requests.clear()
    summary = download_sequence(tmp_path, SEQ, settings(server))
    assert server.gets(VIDEO) == [("bytes=100000-", VIDEO_TOTAL - 100_000)]     # only the missing bytes
    assert summary["files"]["hdVideos/hd_00_01.mp4"] == "resumed"
    assert (tmp_path / SEQ / "hdVideos" / "hd_00_01.mp4").read_bytes() == video_bytes("00_01")
    assert not part.exists()


def test_a_broken_transfer_is_resumed_within_the_run(server, tmp_path):
    server.cut_once[VIDEO] = 50_000
    policy = FetchPolicy(retries=2, backoff_s=0.0, timeout_s=10.0, chunk_bytes=16_384)
    download_sequence(tmp_path, SEQ, settings(server, policy=policy))
    assert server.gets(VIDEO) == [(None, 50_000), ("bytes=50000-", VIDEO_TOTAL - 50_000)]
    assert (tmp_path / SEQ / "hdVideos" / "hd_00_01.mp4").read_bytes() == video_bytes("00_01")


def test_a_truncated_local_file_is_completed_on_the_next_run(server, tmp_path):
    download_sequence(tmp_path, SEQ, settings(server))
    video = tmp_path / SEQ / "hdVideos" / "hd_00_01.mp4"
    video.write_bytes(video.read_bytes()[:70_000])
    server.requests.clear()
    summary = download_sequence(tmp_path, SEQ, settings(server))
    assert server.gets(VIDEO) == [("bytes=70000-", VIDEO_TOTAL - 70_000)]
    assert summary["files"]["hdVideos/hd_00_01.mp4"] == "resumed"
    assert video.read_bytes() == video_bytes("00_01")


def test_a_corrupted_local_archive_is_detected_and_fetched_again(server, published, tmp_path):
    download_sequence(tmp_path, SEQ, settings(server))
    archive = tmp_path / SEQ / "hdFace3d.tar"
    data = bytearray(archive.read_bytes())
    data[len(data) // 3] ^= 0x55                             # same size, one byte changed
    archive.write_bytes(bytes(data))
    server.requests.clear()
    summary = download_sequence(tmp_path, SEQ, settings(server))
    # The resume asks for the bytes after the (full-size) file, then the checksum fails
    # against the manifest and the whole file comes again.
    assert server.gets(FACE_TAR) == [(f"bytes={len(data)}-", 0), (None, len(data))]
    assert summary["files"]["hdFace3d.tar"] == "fetched"
    assert archive.read_bytes() == published[FACE_TAR]


def test_a_corrupt_download_with_a_server_digest_is_refused(server, tmp_path):
    server.digest = True
    server.corrupt.add(FACE_TAR)
    with pytest.raises(DownloadError) as err:
        download_sequence(tmp_path, SEQ, settings(server))
    message = str(err.value)
    assert f"{server.base_url}{FACE_TAR}" in message and "does not match" in message and "fetched twice" in message
    assert len(server.gets(FACE_TAR)) == 2
    seq = tmp_path / SEQ
    assert not (seq / "hdFace3d.tar").exists() and not (seq / "hdFace3d.tar.part").exists()
    assert not (seq / "hdFace3d").exists()
    assert "hdFace3d.tar" not in Manifest.load(seq / MANIFEST_NAME, SEQ).files

    server.corrupt.clear()                                   # the server is fixed: the next run succeeds
    download_sequence(tmp_path, SEQ, settings(server))
    manifest = Manifest.load(seq / MANIFEST_NAME, SEQ)
    assert manifest.files["hdFace3d.tar"]["checksum"] == "server"


def test_an_archive_that_is_not_a_tar_file_is_refused(server, tmp_path):
    server.files[FACE_TAR] = b"<html>not found</html>" * 100
    with pytest.raises(DownloadError, match="not a readable tar archive"):
        download_sequence(tmp_path, SEQ, settings(server))
    assert not (tmp_path / SEQ / "hdFace3d").exists()
    assert not (tmp_path / SEQ / "hdFace3d.tar").exists()


def test_a_file_that_changed_on_the_server_is_an_error(server, tmp_path):
    download_sequence(tmp_path, SEQ, settings(server))
    calibration = f"/{SEQ}/calibration_{SEQ}.json"
    server.files[calibration] += b"\n\n"
    (tmp_path / SEQ / f"calibration_{SEQ}.json").unlink()
    with pytest.raises(DownloadError, match="the manifest recorded .* changed on the server"):
        download_sequence(tmp_path, SEQ, settings(server))


def test_a_server_that_ignores_ranges_restarts_the_file(server, tmp_path):
    server.cut_once[VIDEO] = 40_000
    with pytest.raises(DownloadError):
        download_sequence(tmp_path, SEQ, settings(server))
    server.ranges = False
    server.requests.clear()
    download_sequence(tmp_path, SEQ, settings(server))
    assert server.gets(VIDEO) == [("bytes=40000-", VIDEO_TOTAL)]        # answered 200: whole file
    assert (tmp_path / SEQ / "hdVideos" / "hd_00_01.mp4").read_bytes() == video_bytes("00_01")


def test_only_the_selected_cameras_are_fetched(server, tmp_path):
    summary = download_sequence(tmp_path, SEQ, settings(server), cameras=["00_02"])
    assert summary["cameras"] == ["00_02"]
    assert sorted(p.name for p in (tmp_path / SEQ / "hdVideos").iterdir()) == ["hd_00_02.mp4"]
    assert not server.gets(VIDEO)


def test_archives_can_be_dropped_after_unpacking(server, tmp_path):
    download_sequence(tmp_path, SEQ, settings(server, keep_archives=False, videos=False))
    seq = tmp_path / SEQ
    assert not (seq / "hdFace3d.tar").exists() and len(list((seq / "hdFace3d").iterdir())) == 4
    server.requests.clear()
    summary = download_sequence(tmp_path, SEQ, settings(server, keep_archives=False, videos=False))
    assert server.requests == [] and summary["files"]["hdFace3d.tar"] == "unpacked earlier"
    (seq / "hdFace3d" / "faceRecon3D_hd00000002.json").unlink()          # incomplete: fetched and unpacked again
    download_sequence(tmp_path, SEQ, settings(server, keep_archives=False, videos=False))
    assert len(server.gets(FACE_TAR)) == 1 and len(list((seq / "hdFace3d").iterdir())) == 4


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_gives_one_clear_message(tmp_path):
    base = f"http://127.0.0.1:{closed_port()}"
    policy = FetchPolicy(retries=1, backoff_s=0.0, timeout_s=5.0)
    with pytest.raises(DownloadError) as err:
        download_sequence(tmp_path, SEQ, DownloadSettings(base_url=base, policy=policy))
    assert str(err.value) == (f"cannot reach {base}/{SEQ}/calibration_{SEQ}.json: connection refused (2 attempts); "
                              "check download.base_url and the network")


def test_a_missing_file_names_the_url(server, tmp_path):
    del server.files[FACE_TAR]
    with pytest.raises(DownloadError, match=f"{server.base_url}{FACE_TAR}: HTTP 404"):
        download_sequence(tmp_path, SEQ, settings(server))


# ------------------------------------------------------------------- hostile archive members

def _tar(entries) -> bytes:
    """A tar of ``(name, kind, payload)``: kind file (payload bytes), dir, sym or hard
    (payload the link target), fifo."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("sym", "hard"):
                info.linkname = payload
            tar.addfile(info)
    return buffer.getvalue()


GOOD = ("hdFace3d/faceRecon3D_hd00000000.json", "file", b"{}")
HOSTILE = {
    "parent": [GOOD, ("hdFace3d/../evil.json", "file", b"x")],
    "absolute": [GOOD, ("/tmp/evil.json", "file", b"x")],
    "outside the top folder": [GOOD, ("evil.json", "file", b"x")],
    "hidden": [GOOD, ("hdFace3d/.bashrc", "file", b"x")],
    "symlink out": [GOOD, ("hdFace3d/link", "sym", "../../evil")],
    "absolute symlink": [GOOD, ("hdFace3d/link", "sym", "/etc/passwd")],
    "hard link out": [GOOD, ("hdFace3d/link", "hard", "other/evil.json")],
    "fifo": [GOOD, ("hdFace3d/pipe", "fifo", None)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_members_are_refused_before_anything_is_written(case, tmp_path):
    archive = tmp_path / "hdFace3d.tar"
    archive.write_bytes(_tar(HOSTILE[case]))
    target = tmp_path / "seq" / "hdFace3d"
    with pytest.raises(UnsafeNameError, match="refused"):
        archives.extract_archive(archive, "hdFace3d", target)
    assert not target.exists() and not (tmp_path / "evil.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hdFace3d.tar"]


def test_a_hostile_archive_on_the_server_is_refused(server, tmp_path):
    server.files[FACE_TAR] = _tar(HOSTILE["parent"])
    with pytest.raises(DownloadError, match="'hdFace3d/../evil.json'.*refused"):
        download_sequence(tmp_path, SEQ, settings(server))
    assert len(server.gets(FACE_TAR)) == 1                                 # refused, not fetched again
    assert not (tmp_path / SEQ / "hdFace3d").exists() and not (tmp_path / "evil.json").exists()
    assert not (tmp_path / SEQ / "hdFace3d.tar").exists()


def test_links_inside_the_folder_and_a_dot_prefix_are_unpacked(tmp_path):
    archive = tmp_path / "hdFace3d.tar"
    archive.write_bytes(_tar([(".", "dir", None), ("./hdFace3d", "dir", None),
                              ("./hdFace3d/sub/a.json", "file", b"[1]"),
                              ("./hdFace3d/b.json", "sym", "sub/a.json"),
                              ("./hdFace3d/c.json", "hard", "./hdFace3d/sub/a.json")]))
    assert archives.extract_archive(archive, "hdFace3d", tmp_path / "out") == 3
    assert [(tmp_path / "out" / n).read_bytes() for n in ("sub/a.json", "b.json", "c.json")] == [b"[1]"] * 3
    assert (tmp_path / "out" / "b.json").is_symlink()


def test_an_unreadable_archive_is_reported(tmp_path):
    archive = tmp_path / "hdFace3d.tar"
    archive.write_bytes(_tar([GOOD])[:700])
    with pytest.raises(archives.ArchiveError, match="not a readable tar archive"):
        archives.check_members(archive, "hdFace3d")


# ------------------------------------------------------------------- command and workflow

def write_config(path: Path, doc: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_command_fetches_what_the_config_names(server, tmp_path, capsys):
    from annotate.cli import main

    config = write_config(tmp_path / "cfg.yaml", {
        "source": "panoptic", "panoptic": {"root": str(tmp_path / "data"), "sequences": [SEQ]},
        "ingest": {"cameras": ["00_00", "00_02"]},
        "download": {"enabled": True, "base_url": server.base_url, "retries": 0, "archives": ["hdFace3d"]}})
    assert main(["download", "--config", str(config)]) == 0
    seq = tmp_path / "data" / SEQ
    assert sorted(p.name for p in seq.iterdir()) == [f"calibration_{SEQ}.json", MANIFEST_NAME, "hdFace3d",
                                                     "hdFace3d.tar", "hdVideos"]
    assert sorted(p.name for p in (seq / "hdVideos").iterdir()) == ["hd_00_00.mp4", "hd_00_02.mp4"]
    out = capsys.readouterr().out
    assert f"download {SEQ} -> {seq}" in out and "hdFace3d: unpacked 4 files" in out


def test_the_command_reports_an_unreachable_server_in_one_line(tmp_path, capsys):
    from annotate.cli import main

    base = f"http://127.0.0.1:{closed_port()}"
    config = write_config(tmp_path / "cfg.yaml", {"download": {"retries": 1, "backoff_s": 0.0}})
    with pytest.raises(SystemExit) as exit_:
        main(["download", "--config", str(config), "--root", str(tmp_path), "--sequences", SEQ, "--base-url", base])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"annotate download: error: cannot reach {base}/{SEQ}/calibration_{SEQ}.json: "
                                        "connection refused (2 attempts); check download.base_url and the network"]


def test_download_needs_a_panoptic_source():
    from annotate.config import ConfigError, resolve_config

    with pytest.raises(ConfigError, match="download.enabled needs source: panoptic"):
        resolve_config({"download": {"enabled": True}})


@pytest.mark.slow
def test_the_workflow_downloads_before_ingest_and_reruns_on_a_download_change(server, tmp_path):
    from test_workflow import planned_rules

    from annotate.core.results import ResultsLayout
    from annotate.stages.workflow import run_workflow

    # Keys in sorted order, as planned_rules writes them: Snakemake compares the params' text.
    config = {"download": {"base_url": server.base_url, "enabled": True, "retries": 0},
              "panoptic": {"root": str(tmp_path / "data"), "sequences": [SEQ]},
              "results": "results", "source": "panoptic"}
    seq = ResultsLayout("results").sequence(SEQ)                    # targets are relative to the workdir
    run_workflow(config, [seq.ingest("faces3d")], cores=1, workdir=tmp_path)
    summary = json.loads((tmp_path / seq.download_summary).read_text())
    assert summary["cameras"] == list(CAMERAS) and summary["files"]["hdFace3d"] == "unpacked 4 files"
    assert pq.read_table(tmp_path / seq.ingest("faces3d")).num_rows > 0

    changed = json.loads(json.dumps(config))
    changed["download"]["retries"] = 3
    assert {"download", "ingest"} <= planned_rules(tmp_path, changed)
    changed = json.loads(json.dumps(config))
    changed["fit"] = {"max_rms_cm": 0.5}
    assert "download" not in planned_rules(tmp_path, changed)
