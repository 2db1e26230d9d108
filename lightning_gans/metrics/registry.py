"""The extractor registry: name → factory ``(**kwargs) -> FeatureExtractor`` (+ an optional cheap weights check).

Built-in extractors are registered eagerly at import, below (torch-fidelity's ``registry.py`` is the model):
``inception-v3-compat`` and ``lenet-mnist``. Third-party extractors register with :func:`register_extractor`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lightning_gans.metrics import inception, lenet
from lightning_gans.metrics.extractors import FeatureExtractor

ExtractorFactory = Callable[..., FeatureExtractor]
_FACTORIES: dict[str, ExtractorFactory] = {}
_CHECKS: dict[str, Callable[..., None]] = {}


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
    return sorted(_FACTORIES)


def _factory(name: str) -> ExtractorFactory:
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


register_extractor(inception.NAME, check=inception.check_inception)(inception.build_inception)
register_extractor(lenet.NAME, check=lenet.check_lenet)(lenet.build_lenet)
