"""Feature extractors for FID / IS / KID: the base class, a name → factory registry, and the weights-file error.

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
    register_extractor("my-net")(MyNet)        # then build_extractor("my-net")
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

CACHE_ENV_VAR = "LIGHTNING_GANS_CACHE"

ExtractorFactory = Callable[..., "FeatureExtractor"]
_FACTORIES: dict[str, ExtractorFactory] = {}
_CHECKS: dict[str, Callable[..., None]] = {}
_BUILTINS_LOADED = False
_SHA256_MEMO: dict[tuple[str, int, int], str] = {}


def cache_dir() -> Path:
    """``$LIGHTNING_GANS_CACHE`` if set, else ``~/.cache/lightning-gans`` (created on use)."""
    env = os.environ.get(CACHE_ENV_VAR)
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "lightning-gans"
    path.mkdir(parents=True, exist_ok=True)
    return path


class ExtractorWeightsError(FileNotFoundError):
    """An extractor's weights file is missing (or unusable). The message says which file, where it is expected,
    how to obtain it and how to point the extractor elsewhere (``weights_path``)."""

    @classmethod
    def for_file(cls, extractor: str, path: Path, obtain: str, reason: str | None = None) -> ExtractorWeightsError:
        lines = [
            f"Weights for feature extractor {extractor!r} not found: {path.name}" + (f" ({reason})" if reason else ""),
            f"  Expected at: {path}",
            f"  {obtain}",
            f"  Or pass weights_path=/path/to/{path.name} (the extractor option `weights_path`) to use a file "
            "stored elsewhere.",
        ]
        return cls("\n".join(lines))


class ExtractorChecksumError(ExtractorWeightsError):
    """The weights file exists but does not match its recorded sha256 (corrupted or replaced)."""


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


def _load_builtins() -> None:
    """Import the built-in extractor modules (they register themselves); lazy to avoid an import cycle."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True  # first: the modules call register_extractor while being imported
        try:
            import lightning_gans.metrics.inception  # noqa: F401
            import lightning_gans.metrics.lenet  # noqa: F401
        except BaseException:
            _BUILTINS_LOADED = False
            raise


def _origin(factory: ExtractorFactory) -> tuple[str | None, str | None]:
    return getattr(factory, "__module__", None), getattr(factory, "__qualname__", None)


def register_extractor(
    name: str, *, check: Callable[..., None] | None = None, overwrite: bool = False
) -> Callable[[ExtractorFactory], ExtractorFactory]:
    """Decorator registering ``factory(**kwargs) -> FeatureExtractor`` under ``name``.

    ``check(**kwargs)`` (optional) must be cheap: it verifies the weights are present without building the model
    and raises :class:`ExtractorWeightsError` otherwise. A name can be registered again only with ``overwrite``.
    """

    def decorator(factory: ExtractorFactory) -> ExtractorFactory:
        _load_builtins()
        old = _FACTORIES.get(name)
        same = old is not None and _origin(old) == _origin(factory) != (None, None)
        if old is not None and not (overwrite or same):
            raise ValueError(f"feature extractor {name!r} is already registered; pass overwrite=True to replace it")
        _FACTORIES[name] = factory
        if check is not None:
            _CHECKS[name] = check
        else:
            _CHECKS.pop(name, None)
        return factory

    return decorator


def available_extractors() -> list[str]:
    """Registered extractor names, sorted."""
    _load_builtins()
    return sorted(_FACTORIES)


def _factory(name: str) -> ExtractorFactory:
    _load_builtins()
    if name not in _FACTORIES:
        raise ValueError(f"unknown feature extractor {name!r}; choose one of: {', '.join(available_extractors())}")
    return _FACTORIES[name]


def check_extractor(name: str, **kwargs) -> None:
    """Cheap pre-flight check (no model is built): raises ValueError for an unknown name and
    :class:`ExtractorWeightsError` when the weights file the extractor would load is missing."""
    _factory(name)
    if name in _CHECKS:
        _CHECKS[name](**kwargs)


def build_extractor(name: str, **kwargs) -> FeatureExtractor:
    """Build the registered extractor ``name`` (frozen, eval mode, on CPU until the caller moves it).

    Construction runs under a forked RNG: layer initialisation (before the weights are loaded) would otherwise
    advance the global torch RNG, so merely adding an evaluation callback would change a seeded training run.
    """
    with torch.random.fork_rng(devices=[]):
        extractor = _factory(name)(**kwargs)
    if not isinstance(extractor, FeatureExtractor):
        raise TypeError(f"factory of {name!r} returned {type(extractor).__name__}, not a FeatureExtractor")
    if extractor.num_features <= 0:
        raise ValueError(f"extractor {name!r} must set num_features > 0")
    return extractor.requires_grad_(False).eval()
