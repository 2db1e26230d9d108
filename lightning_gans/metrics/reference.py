"""Real-data feature statistics on disk, keyed by the evaluation protocol.

A protocol is a JSON-able dict naming everything the statistics depend on, e.g. ``{"dataset": "mnist",
"split": "test", "n": 10000, "extractor": "lenet-mnist", "weights": weights_id, "image_size": 28,
"resize": "none"}``. Its key is the sha256 of the canonical JSON (sorted keys, no spaces), 16 hex digits.
Files: ``<root>/<key>.pt`` (``{"protocol", "stats"}``) and ``<root>/<key>.json`` (the protocol, for humans).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from lightning_gans.metrics.extractors import cache_dir
from lightning_gans.outputs import atomic_write


def _canonical(protocol: Mapping) -> str:
    """Sorted compact JSON of a protocol mapping (a dict or an ``EvalProtocol``)."""
    try:
        return json.dumps(dict(protocol), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"protocol must be JSON-serialisable (str/int/float/bool/None/lists/dicts): {err}") from None


class ReferenceCache:
    """``load``/``save`` dicts of tensors under ``root`` (default ``cache_dir() / "reference"``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else cache_dir() / "reference"

    @staticmethod
    def key(protocol: dict) -> str:
        """sha256 of the protocol's canonical JSON, first 16 hex digits."""
        return hashlib.sha256(_canonical(protocol).encode()).hexdigest()[:16]

    def path(self, protocol: dict) -> Path:
        return self.root / f"{self.key(protocol)}.pt"

    def load(self, protocol: dict) -> dict[str, Tensor] | None:
        """The stored statistics of ``protocol`` (CPU tensors), or None on a miss. An unreadable file or one whose
        stored protocol differs is a miss (with a warning); the next ``save`` replaces it."""
        path = self.path(protocol)
        if not path.is_file():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            stored, stats = payload["protocol"], payload["stats"]
        except Exception as err:  # torn/corrupted/foreign file: recompute rather than crash an evaluation
            warnings.warn(f"ignoring unreadable reference statistics {path}: {err}", stacklevel=2)
            return None
        if _canonical(stored) != _canonical(protocol):
            warnings.warn(f"ignoring reference statistics {path}: stored for a different protocol", stacklevel=2)
            return None
        return dict(stats)

    def save(self, protocol: dict, stats: dict[str, Tensor]) -> Path:
        """Write ``stats`` for ``protocol`` atomically (tmp file + rename) plus a JSON sidecar; return the path."""
        bad = [k for k, v in stats.items() if not (isinstance(k, str) and isinstance(v, Tensor))]
        if bad:
            raise TypeError(f"stats must map str to Tensor; bad entries: {bad}")
        text = _canonical(protocol)
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(protocol)
        payload = {"protocol": json.loads(text), "stats": {k: v.detach().cpu().clone() for k, v in stats.items()}}
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
        sidecar = json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
        atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(sidecar))
        return path
