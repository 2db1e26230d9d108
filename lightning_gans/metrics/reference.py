"""Real-feature statistics as files: one checksummed ``.npz`` per protocol, shareable and verifiable.

A file holds the statistics' arrays (``fid_sum``/``fid_outer``/``fid_n``, ``features``/``indices``,
``class_sum``/``class_outer``/``class_n``: see :func:`lightning_gans.evaluation.reference_keys`) and, under
``__manifest__``, a JSON manifest::

    {"format": "lightning-gans-reference-stats", "version": 1,
     "protocol": {dataset, split, n, extractor, weights, image_size, resize, …},
     "protocol_key": sha256 of the protocol's canonical JSON (16 hex digits; the cache file name),
     "arrays": {name: {"sha256", "dtype", "shape"}}, "sources": {file: sha256} or {"unknown": why},
     "metrics": [...], "versions": {python, numpy, torch, …}, "created": UTC ISO time}

No pickle: ``np.load(path, allow_pickle=False)`` reads it, so a file from a stranger runs no code. Reading
verifies the format, every array's sha256 (of dtype, shape and bytes) and the protocol key, and — given the run's
protocol — that the file was computed under it; each failure is one :class:`ReferenceStatsError` line.

:class:`ReferenceCache` keeps such files under ``cache_dir()/reference/<protocol key>.npz``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightning_gans.errors import ReferenceStatsError
from lightning_gans.metrics.extractors import cache_dir
from lightning_gans.outputs import atomic_write

FORMAT, VERSION, MANIFEST = "lightning-gans-reference-stats", 1, "__manifest__"
LIBRARIES = ("numpy", "torch", "torchvision", "torchmetrics", "torch-fidelity", "lightning-gans")


def _canonical(protocol: Mapping) -> str:
    """Sorted compact JSON of a protocol mapping (a dict or an ``EvalProtocol``)."""
    try:
        return json.dumps(dict(protocol), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"protocol must be JSON-serialisable (str/int/float/bool/None/lists/dicts): {err}") from None


def protocol_key(protocol: Mapping) -> str:
    """sha256 of the protocol's canonical JSON, first 16 hex digits."""
    return hashlib.sha256(_canonical(protocol).encode()).hexdigest()[:16]


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and C-order bytes."""
    digest = hashlib.sha256(f"{array.dtype.str}{tuple(array.shape)}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def protocol_differences(stored: Mapping, expected: Mapping) -> list[str]:
    """``"n: 10000 in the file vs 5000 in this run"`` for every field that differs."""
    keys = list(dict.fromkeys([*expected, *stored]))
    return [
        f"{k}: {stored.get(k, 'unset')} in the file vs {expected.get(k, 'unset')} in this run"
        for k in keys
        if stored.get(k) != expected.get(k)
    ]


@dataclass(frozen=True)
class StatsFile:
    """A read statistics file: its protocol, its arrays as CPU tensors and its whole manifest."""

    path: Path
    protocol: dict[str, Any]
    stats: dict[str, Tensor]
    manifest: dict[str, Any]


def write_statistics(
    path: str | Path,
    protocol: Mapping,
    stats: Mapping[str, Tensor],
    sources: Mapping[str, str] | None = None,
    metrics: list[str] | None = None,
) -> Path:
    """Write ``stats`` for ``protocol`` to ``path`` (``.npz``; atomically: a temporary file renamed into place)."""
    path = Path(path)
    bad = [k for k, v in stats.items() if not (isinstance(k, str) and isinstance(v, Tensor)) or k.startswith("__")]
    if bad:
        raise TypeError(f"stats must map names (not starting with __) to tensors; bad entries: {bad}")
    arrays = {k: v.detach().cpu().numpy() for k, v in stats.items()}
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "protocol": json.loads(_canonical(protocol)),
        "protocol_key": protocol_key(protocol),
        "arrays": {
            k: {"sha256": array_sha256(a), "dtype": a.dtype.str, "shape": list(a.shape)} for k, a in arrays.items()
        },
        "sources": dict(sources) if sources else {"unknown": "the datamodule lists no source files"},
        "metrics": list(metrics or []),
        "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays, **{MANIFEST: np.array(json.dumps(manifest, sort_keys=True))})

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)
    return path


def _load_arrays(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not path.is_file():
        raise ReferenceStatsError(f"reference statistics {path}: no such file (make one: lightning-gans stats compute)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as err:  # zip/npy errors of a torn, truncated or foreign file
        raise ReferenceStatsError(
            f"reference statistics {path} are unreadable ({type(err).__name__}: {err}): not an .npz written by "
            "`lightning-gans stats compute`, or truncated; recompute it or fetch it again"
        ) from None
    if MANIFEST not in arrays:
        raise ReferenceStatsError(f"reference statistics {path} have no manifest: not a lightning-gans stats file")
    try:
        manifest = json.loads(str(arrays.pop(MANIFEST)))
    except json.JSONDecodeError as err:
        raise ReferenceStatsError(f"reference statistics {path}: the manifest is not JSON ({err})") from None
    return manifest, arrays


def _verify(path: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ReferenceStatsError(
            f"reference statistics {path}: format {manifest.get('format')!r} version {manifest.get('version')!r}, "
            f"this lightning-gans reads {FORMAT!r} version {VERSION}: recompute it with `lightning-gans stats compute`"
        )
    listed = manifest.get("arrays", {})
    if set(listed) != set(arrays):
        raise ReferenceStatsError(
            f"reference statistics {path}: arrays {sorted(arrays)} but the manifest lists {sorted(listed)}"
        )
    for name, array in arrays.items():
        if array_sha256(array) != listed[name].get("sha256"):
            raise ReferenceStatsError(
                f"reference statistics {path}: array {name!r} fails its sha256 (the file was changed or damaged); "
                "fetch it again or recompute it"
            )
    if protocol_key(manifest.get("protocol", {})) != manifest.get("protocol_key"):
        raise ReferenceStatsError(
            f"reference statistics {path}: the manifest's protocol does not match its protocol_key (edited by hand?)"
        )


def read_statistics(path: str | Path, expected_protocol: Mapping | None = None, verify: bool = True) -> StatsFile:
    """Read a statistics file; ``verify`` checks format, checksums and protocol key; ``expected_protocol`` must
    equal the file's. Every failure: one :class:`ReferenceStatsError` line."""
    path = Path(path)
    manifest, arrays = _load_arrays(path)
    if verify:
        _verify(path, manifest, arrays)
    protocol = manifest.get("protocol", {})
    if expected_protocol is not None and _canonical(protocol) != _canonical(expected_protocol):
        raise ReferenceStatsError(
            f"reference statistics {path} were computed under another protocol ("
            + "; ".join(protocol_differences(protocol, dict(expected_protocol)))
            + "): compute matching ones with `lightning-gans stats compute …`"
        )
    stats = {k: torch.from_numpy(np.array(a)) for k, a in arrays.items()}
    return StatsFile(path, protocol, stats, manifest)


class ReferenceCache:
    """``load``/``save`` statistics under ``root`` (default ``cache_dir() / "reference"``) as stats files."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else cache_dir() / "reference"

    @staticmethod
    def key(protocol: Mapping) -> str:
        return protocol_key(protocol)

    def path(self, protocol: Mapping) -> Path:
        return self.root / f"{self.key(protocol)}.npz"

    def load(self, protocol: Mapping) -> dict[str, Tensor] | None:
        """The stored statistics of ``protocol`` (CPU tensors), or None on a miss. An unreadable or damaged file, or
        one of another protocol, is a miss (with a warning); the next ``save`` replaces it."""
        path = self.path(protocol)
        if not path.is_file():
            return None
        try:
            return read_statistics(path, expected_protocol=protocol).stats
        except ReferenceStatsError as err:  # recompute rather than crash an evaluation
            warnings.warn(f"ignoring cached {err}", stacklevel=2)
            return None

    def save(self, protocol: Mapping, stats: Mapping[str, Tensor]) -> Path:
        """Write ``stats`` for ``protocol`` atomically; return the path."""
        return write_statistics(self.path(protocol), protocol, stats)
