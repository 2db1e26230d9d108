"""The decoded-image cache: every image of a split decoded and passed through the transform's deterministic stage
once, into one uint8 memory-mapped array that all loader workers and DDP ranks read.

A cache is a folder ``<cache_dir>/<name>-<key>/`` holding ``images.u8`` (N×C×H×W uint8, C order), ``index.npy``
(row i holds the image of source file ``index[i]``: a file that failed to decode is replaced by the next readable
one, exactly as the uncached loader does) and ``meta.json`` (format, key, shape, the identity summary, skipped
files, when and by whom it was built). ``key`` is the sha256 of the sources' identity — every file's path
relative to the dataset root, size and mtime (ns) — and of the deterministic stage's description (size, crop box,
interpolation, half of a side-by-side image), so a changed, added or removed file or another size or crop gives
another key and a fresh build; nothing is ever read from a cache of other sources. Contents are not hashed
(200k CelebA files would take minutes); a file rewritten with its old size *and* mtime goes unnoticed.

Builds are atomic: a build writes into a hidden ``.<name>-<key>.partial-<pid>`` folder and renames it into place
when complete, so a killed build is never used (its partial folder is ignored and removed by the next build), and
two processes building at once (DDP ranks on a node without ``prepare_data``) end with one complete cache. Opening
checks the meta and the array's byte size: a truncated or damaged cache is one :class:`DecodedCacheError` line;
:func:`ensure_cache` moves it aside and rebuilds it with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightning_gans.errors import DatasetNotFoundError

FORMAT, VERSION = "lightning-gans-decoded-cache", 1
IMAGES, INDEX, META = "images.u8", "index.npy", "meta.json"
STALE_PARTIAL_S = 24 * 3600  # a partial build of another host older than this is abandoned


class DecodedCacheError(DatasetNotFoundError):
    """A decoded cache that cannot be used (damaged, truncated, of other sources)."""


def default_cache_dir() -> Path:
    """``$LIGHTNING_GANS_CACHE/decoded`` (default ``~/.cache/lightning-gans/decoded``)."""
    root = os.environ.get("LIGHTNING_GANS_CACHE") or Path.home() / ".cache" / "lightning-gans"
    return Path(root).expanduser() / "decoded"


def cache_folder(cache_dir: str | Path | None) -> Path:
    """``cache_dir`` (``~`` expanded), or :func:`default_cache_dir` when None."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def source_identity(files: Sequence[Path], root: Path, stage: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(key, summary) of the sources and the deterministic stage (see the module docstring)."""
    digest = hashlib.sha256(json.dumps({"version": VERSION, "stage": stage}, sort_keys=True).encode())
    total = 0
    for path in files:
        stat = path.stat()
        name = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        total += stat.st_size
    summary = {"root": str(Path(root).resolve()), "files": len(files), "bytes": total, "stage": stage}
    return digest.hexdigest()[:16], summary


@dataclass
class CacheSpec:
    """What to cache: ``name`` (e.g. ``celeba-train``), the files, their root and the deterministic stage."""

    name: str
    files: Sequence[Path]
    root: Path
    stage: dict[str, Any]
    cache_dir: Path

    def key(self) -> tuple[str, dict[str, Any]]:
        return source_identity(self.files, self.root, self.stage)

    def folder(self, key: str) -> Path:
        return self.cache_dir / f"{self.name}-{key}"


class DecodedCache:
    """An open cache: ``rows(indices)`` → uint8 N×C×H×W array; the memory map is opened lazily in each process."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.folder, self.meta = folder, meta
        self.shape = tuple(meta["shape"])
        self.index = np.load(folder / INDEX, allow_pickle=False)
        self._array: np.memmap | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict[str, Any]:  # workers reopen the map instead of receiving a copy of the array
        return {**self.__dict__, "_array": None}

    @property
    def array(self) -> np.memmap:
        if self._array is None:
            self._array = np.memmap(self.folder / IMAGES, dtype=np.uint8, mode="r", shape=self.shape)
        return self._array

    def row(self, index: int) -> Tensor:
        return torch.from_numpy(np.array(self.array[index]))

    def rows(self, indices: Sequence[int]) -> Tensor:
        return torch.from_numpy(self.array[np.asarray(indices, dtype=np.int64)])

    @classmethod
    def open(cls, folder: Path, key: str) -> DecodedCache:
        """The complete cache in ``folder``, or :class:`DecodedCacheError` (missing, damaged or of another key)."""
        try:
            meta = json.loads((folder / META).read_text())
        except (OSError, ValueError) as err:
            raise DecodedCacheError(f"decoded cache {folder}: no readable {META} ({type(err).__name__})") from None
        if meta.get("format") != FORMAT or meta.get("version") != VERSION or meta.get("key") != key:
            raise DecodedCacheError(f"decoded cache {folder}: format/version/key differ from this build's ({key})")
        expected = int(np.prod(meta["shape"]))
        size = (folder / IMAGES).stat().st_size if (folder / IMAGES).is_file() else -1
        if size != expected:
            raise DecodedCacheError(
                f"decoded cache {folder} is truncated or damaged ({IMAGES} has {size} bytes, {expected} expected): "
                f"delete it (rm -r {folder}) or rebuild it with `lightning-gans prepare cache`"
            )
        try:
            cache = cls(folder, meta)
        except (OSError, ValueError) as err:
            raise DecodedCacheError(f"decoded cache {folder}: unreadable {INDEX} ({err})") from None
        if cache.index.shape != (cache.shape[0],):
            raise DecodedCacheError(f"decoded cache {folder}: {INDEX} does not match {IMAGES}; delete it and rebuild")
        return cache


class _FixedStage(Dataset):
    """Item i: (index of the file read, its deterministic-stage uint8 image) from a dataset's ``load_fixed``."""

    def __init__(self, load_fixed: Callable[[int], tuple[int, Tensor]], n: int) -> None:
        self.load_fixed, self.n = load_fixed, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[int, Tensor]:
        return self.load_fixed(index)


def _write(spec: CacheSpec, key: str, summary: dict, load_fixed: Callable, workers: int, tmp: Path) -> dict:
    """Fill ``tmp`` with a complete cache; return its meta."""
    n = len(spec.files)
    first_index, first = load_fixed(0)
    shape = (n, *first.shape)
    array = np.memmap(tmp / IMAGES, dtype=np.uint8, mode="w+", shape=shape)
    index = np.empty(n, dtype=np.int64)
    loader = DataLoader(_FixedStage(load_fixed, n), batch_size=None, num_workers=workers)
    show = sys.stderr.isatty()
    started = time.monotonic()
    for i, (source, image) in enumerate(loader):
        if tuple(image.shape) != shape[1:] or image.dtype != torch.uint8:
            raise ValueError(
                f"decoded cache {spec.name}: {spec.files[int(source)]} gives a {tuple(image.shape)} {image.dtype} "
                f"image after the deterministic stage, the first gave {shape[1:]} uint8: the cache needs one size "
                "(a resize to a fixed size)"
            )
        array[i], index[i] = image.numpy(), int(source)
        if show and (i % 1000 == 999 or i == n - 1):
            rate = (i + 1) / max(time.monotonic() - started, 1e-9)
            print(f"\rdecoded cache {spec.name}: {i + 1}/{n} images ({rate:.0f}/s)", end="", file=sys.stderr)
    if show:
        print(file=sys.stderr)
    array.flush()
    del array
    np.save(tmp / INDEX, index)
    skipped = sorted({str(spec.files[i]) for i in range(n) if index[i] != i})
    return {
        "format": FORMAT, "version": VERSION, "key": key, "name": spec.name, "shape": list(shape), "dtype": "uint8",
        "identity": summary, "skipped": skipped, "seconds": round(time.monotonic() - started, 3),
        "built_by": {"host": socket.gethostname(), "pid": os.getpid(), "rank": os.environ.get("RANK", "0")},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip


def build_cache(spec: CacheSpec, load_fixed: Callable[[int], tuple[int, Tensor]], workers: int = 0) -> DecodedCache:
    """Decode every file through ``load_fixed`` into a new cache, atomically (see the module docstring)."""
    key, summary = spec.key()
    folder = spec.folder(key)
    if not spec.files:
        raise ValueError(f"decoded cache {spec.name}: no files to cache")
    spec.cache_dir.mkdir(parents=True, exist_ok=True)
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    for stale in spec.cache_dir.glob(f".{folder.name}.partial-*"):  # left by a killed build
        _, other_host, pid, _ = stale.name.rsplit("-", 3)
        dead = other_host == host and not Path(f"/proc/{pid}").exists()
        if dead or time.time() - stale.stat().st_mtime > STALE_PARTIAL_S:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = spec.cache_dir / f".{folder.name}.partial-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        meta = _write(spec, key, summary, load_fixed, workers, tmp)
        with open(tmp / META, "w") as handle:
            json.dump(meta, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished the same cache first: keep theirs
            if not (folder / META).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return DecodedCache.open(folder, key)


def ensure_cache(spec: CacheSpec, load_fixed: Callable[[int], tuple[int, Tensor]], workers: int = 0) -> DecodedCache:
    """The complete cache of ``spec``: opened, or built (a damaged one is moved aside and rebuilt, with a warning)."""
    key, _ = spec.key()
    folder = spec.folder(key)
    if folder.exists():
        try:
            return DecodedCache.open(folder, key)
        except DecodedCacheError as err:
            warnings.warn(f"{err}; rebuilding it", stacklevel=2)
            aside = folder.with_name(f".{folder.name}.damaged-{os.getpid()}")
            try:
                os.rename(folder, aside)
                shutil.rmtree(aside, ignore_errors=True)
            except OSError:
                pass  # another process moved it first
    return build_cache(spec, load_fixed, workers)
