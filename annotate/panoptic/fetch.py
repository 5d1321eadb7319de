"""One file over HTTP into a resumable ``.part`` file, with retries (requests).

``fetch(session, url, part, policy)`` leaves the complete file at ``part`` and returns its
size and SHA-256:

- **resume**: when ``part`` holds bytes from an earlier attempt or run, the request carries
  ``Range: bytes=<size>-`` and a ``206`` answer is appended (a ``200`` answer, from a server
  that ignores ranges, starts the file again; a ``416`` whose total equals the bytes held
  means the file is already complete);
- **size**: the total the server announces (``Content-Range`` total, else
  ``Content-Length``) must equal ``expected_size`` when the caller knows it, and the bytes
  received must add up to it: a shorter transfer is resumed, a longer one is an error;
- **checksum**: a ``Repr-Digest: sha-256=:<base64>:`` (RFC 9530) or ``Digest:
  SHA-256=<base64>`` (RFC 3230) header is returned as ``server_sha256`` for the caller to
  compare; the SHA-256 of the whole file is computed while it streams;
- **retries**: connection failures, time-outs, broken transfers and HTTP 408/429/5xx are
  retried up to ``policy.retries`` times with exponential backoff (an attempt that received
  bytes resets the count, so a long transfer that breaks often still finishes). Other
  HTTP errors are not retried. The final ``DownloadError`` names the URL and the cause in
  one line.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

_NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
_RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_MAX_BACKOFF_S = 60.0


class DownloadError(RuntimeError):
    """A file that could not be fetched or verified; the message names the URL and why."""


@dataclass(frozen=True)
class FetchPolicy:
    """How hard to try: ``retries`` after the first attempt, waiting ``backoff_s * 2**k``
    seconds (at most 60) before retry ``k``; ``timeout_s`` for the connection and for each
    read; ``chunk_bytes`` per read."""

    retries: int = 4
    backoff_s: float = 2.0
    timeout_s: float = 60.0
    chunk_bytes: int = 1 << 20


@dataclass(frozen=True)
class Fetched:
    """A complete download at ``part``.

    size, sha256: of the whole file. server_sha256: the server's SHA-256 header (hex), if
    any. resumed_from: bytes on disk before the first request (kept, not fetched again).
    received: bytes that came over the network.
    """

    size: int
    sha256: str
    server_sha256: str | None
    resumed_from: int
    received: int


class _Transient(Exception):
    """A failure worth retrying. ``received``: bytes this attempt added to the part file;
    ``reached``: whether the server answered at all."""

    def __init__(self, reason: str, received: int = 0, reached: bool = True):
        super().__init__(reason)
        self.reason, self.received, self.reached = reason, received, reached


def _reason(err: BaseException) -> str:
    """A short cause for a network exception (``connection refused``, not the whole chain)."""
    text = str(err)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        cause = found.group(1).strip()
        return cause[:1].lower() + cause[1:]
    if isinstance(err, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
        return "timed out"
    if "IncompleteRead" in text or "Connection broken" in text:
        return "the connection broke during the transfer"
    return f"{type(err).__name__}: {text[:200]}"


_SF_DIGEST = re.compile(r"(?:^|,)\s*sha-256=:([A-Za-z0-9+/=]+):", re.IGNORECASE)
_LEGACY_DIGEST = re.compile(r"(?:^|,)\s*sha-256=([A-Za-z0-9+/=]+)", re.IGNORECASE)


def server_sha256(headers) -> str | None:
    """The whole file's SHA-256 (hex) from ``Repr-Digest`` or ``Digest``, else ``None``."""
    for header, pattern in (("Repr-Digest", _SF_DIGEST), ("Digest", _LEGACY_DIGEST)):
        found = pattern.search(headers.get(header, ""))
        if found:
            try:
                raw = base64.b64decode(found.group(1), validate=True)
            except (binascii.Error, ValueError):
                raise DownloadError(f"the server's {header} header {headers[header]!r} is not valid base64") from None
            if len(raw) == 32:
                return raw.hex()
    return None


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``(first byte, total)`` of a ``Content-Range`` header (``bytes a-b/n`` or ``bytes */n``)."""
    found = re.fullmatch(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", (value or "").strip())
    if not found:
        return None, None
    start = int(found.group(1)) if found.group(1) is not None else None
    total = int(found.group(2)) if found.group(2) != "*" else None
    return start, total


def sha256_of(path: str | Path, chunk_bytes: int = 1 << 20):
    """A ``hashlib.sha256`` object fed with the bytes of ``path`` (to go on with, or ``.hexdigest()``)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            hasher.update(block)
    return hasher


def _announced_total(resp: requests.Response, url: str, offset: int) -> tuple[int | None, int]:
    """The file's total size and the first byte of this answer (0 for a 200)."""
    if resp.status_code == 206:
        start, total = _content_range(resp.headers.get("Content-Range"))
        if start != offset:
            raise DownloadError(f"{url}: asked for bytes {offset}- and the server answered "
                                f"Content-Range {resp.headers.get('Content-Range')!r}")
        return total, offset
    length = resp.headers.get("Content-Length")
    return (int(length) if length and length.isdigit() else None), 0


def _stream(resp: requests.Response, part: Path, mode: str, hasher, bar, chunk_bytes: int) -> int:
    """Append the answer's body to ``part``; returns the bytes written. A network failure
    mid-way raises ``_Transient`` after what arrived is on disk."""
    received = 0
    chunks = resp.raw.stream(chunk_bytes, decode_content=False)
    with open(part, mode) as out:
        while True:
            try:
                chunk = next(chunks, None)
            except _NETWORK_ERRORS as err:
                raise _Transient(_reason(err), received) from None
            if chunk is None:
                return received
            out.write(chunk)
            hasher.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))


class _Transfer:
    """One file's download across attempts: what is kept from before, what arrived."""

    def __init__(self, session: requests.Session, url: str, part: Path, policy: FetchPolicy,
                 expected_size: int | None, label: str):
        self.session, self.url, self.part, self.policy = session, url, part, policy
        self.expected_size, self.label = expected_size, label
        self.kept = part.stat().st_size if part.exists() else 0     # bytes from before, not fetched again
        self.received = 0

    def _restart(self) -> None:
        self.part.unlink(missing_ok=True)
        self.kept = 0

    def attempt(self) -> tuple[int, str, str | None]:
        """One request; returns ``(size, sha256, server_sha256)`` of the complete part."""
        offset = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            resp = self.session.get(self.url, headers=headers, stream=True, timeout=self.policy.timeout_s)
        except _NETWORK_ERRORS as err:
            raise _Transient(_reason(err), reached=False) from None
        with resp:
            if resp.status_code == 416 and offset:
                _, total = _content_range(resp.headers.get("Content-Range"))
                if total == offset and self.expected_size in (None, total):
                    sha = sha256_of(self.part, self.policy.chunk_bytes).hexdigest()
                    return offset, sha, server_sha256(resp.headers)
                self._restart()                    # the held bytes do not fit this file
                return self.attempt()
            if resp.status_code in _RETRIED_STATUS:
                raise _Transient(f"HTTP {resp.status_code} {resp.reason}")
            if resp.status_code not in (200, 206):
                raise DownloadError(f"{self.url}: HTTP {resp.status_code} {resp.reason}")
            total, offset = _announced_total(resp, self.url, offset)
            if offset == 0:
                self.kept = 0                      # a 200 answer: the file starts again
            return self._receive(resp, offset, total)

    def _receive(self, resp: requests.Response, offset: int, total: int | None) -> tuple[int, str, str | None]:
        if self.expected_size is not None and total is not None and total != self.expected_size:
            raise DownloadError(f"{self.url}: the server announces {total} bytes, the manifest recorded "
                                f"{self.expected_size}: the file changed on the server")
        hasher = sha256_of(self.part, self.policy.chunk_bytes) if offset else hashlib.sha256()
        with tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=self.label,
                  mininterval=1.0) as bar:
            try:
                received = _stream(resp, self.part, "ab" if offset else "wb", hasher, bar, self.policy.chunk_bytes)
            except _Transient as err:
                self.received += err.received
                raise
        self.received += received
        size = offset + received
        if total is not None and size < total:
            raise _Transient(f"the transfer ended at {size} of {total} bytes", received)
        if total is not None and size > total:
            self._restart()
            raise DownloadError(f"{self.url}: received {size} bytes, more than the {total} the server announced")
        if total is None and self.expected_size is not None and size != self.expected_size:
            self._restart()
            raise DownloadError(f"{self.url}: received {size} bytes, the manifest recorded {self.expected_size}")
        return size, hasher.hexdigest(), server_sha256(resp.headers)


def fetch(session: requests.Session, url: str, part: str | Path, policy: FetchPolicy = FetchPolicy(),
          expected_size: int | None = None, label: str | None = None) -> Fetched:
    """Download ``url`` into ``part`` (resuming what it holds); see the module docstring."""
    part = Path(part)
    part.parent.mkdir(parents=True, exist_ok=True)
    transfer = _Transfer(session, url, part, policy, expected_size, label or part.name)
    failures = 0
    while True:
        try:
            size, sha, server_sha = transfer.attempt()
            return Fetched(size, sha, server_sha, transfer.kept, transfer.received)
        except _Transient as err:
            # An attempt that brought bytes starts the count again: a long transfer that
            # breaks now and then still finishes.
            failures = 1 if err.received else failures + 1
            if failures > policy.retries:
                if not err.reached:
                    raise DownloadError(f"cannot reach {url}: {err.reason} ({failures} attempts); check "
                                        f"download.base_url and the network") from None
                raise DownloadError(f"{url}: {err.reason} ({failures} attempts)") from None
            time.sleep(min(policy.backoff_s * 2 ** (failures - 1), _MAX_BACKOFF_S))
