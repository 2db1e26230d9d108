"""Feature extractors for FID / IS / KID: the base class, the weights cache folder and file hashing.

The name → factory registry is :mod:`lightning_gans.metrics.registry` (built-ins registered eagerly there).

Built-in extractors: ``inception-v3-compat`` (torch-fidelity's TF1-compatible InceptionV3, the network of
Heusel et al. 2017 and Salimans et al. 2016) and ``lenet-mnist`` (a LeNet-style digit classifier,
LeCun et al. 1998, trained by ``lightning-gans train-extractor mnist``).

Input contract of every extractor: uint8 tensors N×C×H×W in [0, 255] with C = 1 or 3 (use
:func:`lightning_gans.outputs.to_uint8` on [-1, 1] images). Extractors are always in eval mode, hold no
gradients and return float32 ``(N, num_features)`` features and ``(N, num_classes)`` logits (or None).

Registering a third-party extractor (``extract`` gets the checked uint8 batch already on the module's device)::

    class MyNet(FeatureExtractor):
        name, num_features, num_classes, image_size = "my-net", 64, None, 32
        def __init__(self): super().__init__(); self.body = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 64))
        def extract(self, images): return self.body(images.float().mean(1) / 127.5 - 1), None
    register_extractor("my-net")(MyNet)        # lightning_gans.metrics.registry; then build_extractor("my-net")
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from lightning_gans.errors import ExtractorChecksumError, ExtractorWeightsError  # noqa: F401 - re-exported (old import path)

CACHE_ENV_VAR = "LIGHTNING_GANS_CACHE"

_SHA256_MEMO: dict[tuple[str, int, int], str] = {}


def cache_dir() -> Path:
    """``$LIGHTNING_GANS_CACHE`` if set, else ``~/.cache/lightning-gans`` (created on use)."""
    env = os.environ.get(CACHE_ENV_VAR)
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "lightning-gans"
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (memoised per path, size and mtime, so large weights are hashed once per process)."""
    path = Path(path).resolve()
    stat = path.stat()
    memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _SHA256_MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _SHA256_MEMO[memo_key] = digest.hexdigest()
    return _SHA256_MEMO[memo_key]


class FeatureExtractor(nn.Module):
    """Base class: subclasses set the class attributes and implement :meth:`extract`.

    ``weights_id`` is the first 12 hex digits of the weights file's sha256 (part of the reference-stat cache key);
    ``image_size`` is the resolution the network runs at and ``resize`` names how inputs get there.
    """

    name: str = "feature-extractor"
    num_features: int = 0
    num_classes: int | None = None
    weights_id: str = "none"
    image_size: int = 0
    resize: str = "none"

    def extract(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Features (N, num_features) and logits (N, num_classes) or None, from checked uint8 images."""
        raise NotImplementedError

    @staticmethod
    def to_rgb(images: Tensor) -> Tensor:
        """Grey N×1×H×W → N×3×H×W (a view); RGB input is returned unchanged."""
        return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images

    @property
    def device(self) -> torch.device:
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Extractors stay in eval mode whatever the caller (e.g. Lightning) asks."""
        return super().train(False)

    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Check the input contract, run :meth:`extract` without gradients, check the output shapes."""
        if not isinstance(images, Tensor) or images.dtype != torch.uint8:
            got = images.dtype if isinstance(images, Tensor) else type(images).__name__
            raise TypeError(f"{self.name}: expects uint8 images in [0, 255] (see outputs.to_uint8), got {got}")
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"{self.name}: expects N×C×H×W images with C = 1 or 3, got shape {tuple(images.shape)}")
        with torch.no_grad():
            features, logits = self.extract(images.to(self.device))
        n = images.shape[0]
        if features.shape != (n, self.num_features):
            shape = tuple(features.shape)
            raise RuntimeError(f"{self.name}: features have shape {shape}, not ({n}, {self.num_features})")
        if logits is not None and logits.shape != (n, self.num_classes):
            raise RuntimeError(f"{self.name}: logits have shape {tuple(logits.shape)}, not ({n}, {self.num_classes})")
        return features.float(), None if logits is None else logits.float()

    def forward(self, images: Tensor) -> Tensor:
        """Features (N, num_features) float32 of uint8 images N×C×H×W."""
        return self.features_and_logits(images)[0]

    def protocol(self) -> dict:
        """What determines the features: part of the reference-statistics cache key."""
        return {"name": self.name, "weights_id": self.weights_id, "image_size": self.image_size, "resize": self.resize}
