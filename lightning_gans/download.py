"""The one download helper of the project: datasets (``datamodules/``) and network weights (``metrics/``,
``networks/``) all fetch files through it. Bottom layer: it imports only the standard library and
:mod:`lightning_gans.errors`.

* :func:`fetch` — tries each mirror in order with a connect/read timeout, streams into a temporary file in the
  target's folder and renames it into place only after the size and checksum checks, so a failed or killed
  download never leaves a partial file under the final name. When every URL fails it raises one
  :class:`~lightning_gans.errors.DownloadError` listing each URL and why it failed; callers add their own
  "put the files here / run this command" instructions (``err.reason`` is the one-line form).
* :func:`first_reachable` — a quick HTTP HEAD probe, so an offline machine fails in seconds, not after the long
  download timeout.
* :func:`extract` — unpack a zip or tar (any compression) into a folder, through a temporary folder inside it,
  so an interrupted extraction leaves no half-filled tree under the final names.
* :func:`socket_timeout` — bound stalled connections of a third-party downloader (torchvision, gdown) that
  opens its own connections without a timeout.

URLs are opened with :func:`urllib.request.urlopen` (``http(s)://`` honours the proxy environment variables;
``file://`` works too, which the tests use).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import secrets
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning_gans.errors import DownloadError

__all__ = ["DEFAULT_TIMEOUT_S", "PROBE_TIMEOUT_S", "extract", "fetch", "first_reachable", "socket_timeout"]

DEFAULT_TIMEOUT_S = 60.0  # per connect and per read: bounds a stalled connection, not the whole transfer
PROBE_TIMEOUT_S = 4.0  # per URL: bounds the offline failure (DNS errors fail at once, black holes do not)
CHUNK_BYTES = 1 << 20
USER_AGENT = "lightning-gans (python-urllib)"
_NETWORK_ERRORS = (OSError, ValueError, http.client.HTTPException)  # URLError/HTTPError/timeouts are OSErrors


class _BadFile(Exception):
    """The transfer finished but the bytes are not the expected file (size or checksum)."""


def _why(err: BaseException, timeout_s: float) -> str:
    """One short phrase saying why a URL failed."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, TimeoutError):
        return f"timed out (no answer within {timeout_s:g} s)"
    if isinstance(reason, socket.gaierror):
        return f"host not found ({reason.strerror or reason}): offline?"
    if isinstance(reason, http.client.IncompleteRead):
        return f"connection closed after {len(reason.partial)} bytes ({reason.expected} more expected)"
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {' '.join(str(reason).split()[:30]) or 'no message'}"
    return str(reason)


def _request(url: str, method: str = "GET") -> urllib.request.Request:
    return urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT})


def _urls(urls: str | Sequence[str]) -> list[str]:
    listed = [urls] if isinstance(urls, str) else list(urls)
    if not listed:
        raise ValueError("no URL to download from")
    return listed


def first_reachable(urls: str | Sequence[str], timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """The first URL answering an HTTP HEAD within ``timeout_s``; else :class:`DownloadError` listing each URL."""
    attempts = []
    for url in _urls(urls):
        try:
            with urllib.request.urlopen(_request(url, "HEAD"), timeout=timeout_s):
                return url
        except _NETWORK_ERRORS as err:
            attempts.append((url, _why(err, timeout_s)))
    lines = "\n".join(f"  {url}: {why}" for url, why in attempts)
    raise DownloadError(f"no URL answered within {timeout_s:g} s:\n{lines}", tuple(attempts))


def _digests(sha256: str | None, md5: str | None) -> dict[str, Any]:
    return {name: hashlib.new(name) for name, expected in (("sha256", sha256), ("md5", md5)) if expected}


def _mismatch(digests: dict[str, Any], sha256: str | None, md5: str | None) -> str | None:
    """None when every digest is the expected one, else which differs."""
    expected = {"sha256": sha256, "md5": md5}
    for name, digest in digests.items():
        if digest.hexdigest() != expected[name].lower():
            return f"{name} {digest.hexdigest()} is not the expected {expected[name].lower()}"
    return None


def _verify(path: Path, sha256: str | None, md5: str | None) -> str | None:
    """None when the file at ``path`` matches the given checksums, else what differs."""
    digests = _digests(sha256, md5)
    if digests:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
                for digest in digests.values():
                    digest.update(block)
    return _mismatch(digests, sha256, md5)


class _Progress:
    """``what: 12.3 / 811.0 MB (1 %)`` on stderr (off unless ``enabled``): rewritten in place twice a second on a
    terminal, a new line every 10 s in a log file."""

    def __init__(self, enabled: bool, what: str, url: str, total: int | None) -> None:
        self.enabled, self.what, self.total, self.last = enabled, what, total, time.monotonic()
        self.tty = enabled and sys.stderr.isatty()
        if enabled:
            print(f"Downloading {what} from {url}", file=sys.stderr, flush=True)

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < (0.5 if self.tty else 10.0) and not final):
            return
        self.last = now
        size = f"{done / 1e6:.1f}" + (
            f" / {self.total / 1e6:.1f} MB ({100 * done / self.total:.0f} %)" if self.total else " MB"
        )
        start, end = ("\r", "\n" if final else "") if self.tty else ("", "\n")
        print(f"{start}  {self.what}: {size}", end=end, file=sys.stderr, flush=True)


def _stream(url: str, part: Path, timeout_s: float, size: int | None, digests: dict[str, Any], bar: _Progress) -> None:
    """Write ``url``'s bytes to ``part`` (a new file), updating ``digests``; raise on network errors and on a
    transfer shorter than announced."""
    with urllib.request.urlopen(_request(url), timeout=timeout_s) as response, open(part, "xb") as out:
        length = response.headers.get("Content-Length") if response.headers else None
        announced = int(length) if length and length.isdigit() else None
        bar.total = announced or size
        done = 0
        for block in iter(lambda: response.read(CHUNK_BYTES), b""):
            out.write(block)
            for digest in digests.values():
                digest.update(block)
            done += len(block)
            bar.update(done)
        bar.update(done, final=True)
    if announced is not None and done != announced:
        raise _BadFile(f"connection closed after {done} of {announced} bytes")
    if size is not None and done != size:
        raise _BadFile(f"got {done} bytes, expected {size}")


def fetch(
    urls: str | Sequence[str],
    target: str | Path,
    *,
    what: str,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: bool = False,
) -> Path:
    """Download ``target`` from the first of ``urls`` (mirrors, in order) that gives a good file; return ``target``.

    A file already at ``target`` that passes the checks is kept (no network). Each URL is read with ``timeout_s``
    per connect and per read, into ``.<name>.*.part`` beside ``target``, renamed to ``target`` only once its size
    (the server's Content-Length and ``size``) and checksums (``sha256``, ``md5``) match. ``what`` names the file
    in messages (e.g. ``"MNIST train-images-idx3-ubyte.gz"``); ``progress`` prints progress on stderr. Raises
    :class:`DownloadError` listing every URL tried and why it failed (``err.attempts``, ``err.reason``).
    """
    listed, target = _urls(urls), Path(target)
    if target.is_file() and _verify(target, sha256, md5) is None and (size is None or target.stat().st_size == size):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    attempts: list[tuple[str, str]] = []
    for url in listed:
        # a fresh name per attempt and process (opened with "xb": the umask's permissions, unlike mkstemp's 0600)
        part = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
        digests = _digests(sha256, md5)
        try:
            _stream(url, part, timeout_s, size, digests, _Progress(progress, what, url, size))
            mismatch = _mismatch(digests, sha256, md5)
            if mismatch:
                raise _BadFile(f"checksum mismatch: {mismatch}")
            os.replace(part, target)
            return target
        except _BadFile as err:
            attempts.append((url, str(err)))
        except _NETWORK_ERRORS as err:
            attempts.append((url, _why(err, timeout_s)))
        finally:
            part.unlink(missing_ok=True)  # after os.replace the name is gone: a no-op
    lines = "\n".join(f"  {url}: {why}" for url, why in attempts)
    raise DownloadError(
        f"could not download {what} to {target}; tried {len(attempts)} URL(s):\n{lines}", tuple(attempts)
    )


# ---------------------------------------------------------------------------------------------- archives
def _merge(source: Path, destination: Path) -> None:
    """Move ``source`` to ``destination``, merging folders that exist on both sides (files are replaced)."""
    if source.is_dir() and destination.is_dir() and not destination.is_symlink():
        for child in source.iterdir():
            _merge(child, destination / child.name)
        source.rmdir()
        return
    if destination.is_dir() and not destination.is_symlink():
        shutil.rmtree(destination)
    elif destination.exists() or destination.is_symlink():
        destination.unlink()
    os.replace(source, destination)


def _unpack(archive: Path, into: Path, keep: Callable[[str], bool]) -> list[str]:
    """Unpack the members whose name ``keep`` accepts; raise zipfile/tarfile errors for unreadable archives."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:  # extractall strips absolute paths and ".." components
            names = [name for name in zipped.namelist() if keep(name)]
            zipped.extractall(into, members=names)
            return names
    with tarfile.open(archive, "r:*") as tar:
        names = []

        def selected() -> Iterator[tarfile.TarInfo]:
            for member in tar:
                if keep(member.name):
                    names.append(member.name)
                    yield member

        if hasattr(tarfile, "data_filter"):  # refuses absolute paths, ".." and links leaving the folder
            tar.extractall(into, members=selected(), filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            tar.extractall(into, members=[m for m in selected() if not m.name.startswith("/") and ".." not in m.name])
        return names


def extract(
    archive: str | Path, into: str | Path, *, members: Callable[[str], bool] | None = None, remove: bool = False
) -> list[str]:
    """Unpack a zip or tar (``.tar``, ``.tar.gz``, ``.tgz``, …) into ``into``; return the member names unpacked.

    ``members`` keeps only the names it accepts. Members go to a temporary folder inside ``into`` first and are
    moved into place at the end, so an interrupted extraction leaves no half-filled tree under the final names.
    ``remove`` deletes the archive afterwards. An unreadable archive raises :class:`DownloadError` (delete it and
    download it again).
    """
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=into, prefix=".extract-"))
    try:
        try:
            names = _unpack(archive, staging, members or (lambda name: True))
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:  # truncated, an HTML page, unsafe paths
            why = f"{type(err).__name__}: {' '.join(str(err).split()[:30])}"
            raise DownloadError(
                f"{archive} is not a readable zip or tar archive ({why}): delete it and download it again"
            ) from None
        except OSError as err:  # disk full, permissions
            raise DownloadError(f"could not extract {archive} into {into}: {err}") from None
        for child in list(staging.iterdir()):
            _merge(child, into / child.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if remove:
        archive.unlink(missing_ok=True)
    return names


@contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Set the process-wide default socket timeout for the block (for third-party downloaders that open
    connections without one, e.g. torchvision's Google Drive download); restored afterwards."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
