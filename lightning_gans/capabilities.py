"""What a model can do, as typed protocols: the evaluation engine, callbacks and commands ask these, never a
model class (the engine sits below ``models/``) and never ``getattr(module, "conditional", False)`` ad hoc.

* :class:`Sampler` — ``sample(n, noise=None, **condition) -> images in [-1, 1]`` plus ``hparams.latent_dim``
  / ``noise_std`` (every ``GANModule``).
* :class:`ConditionalSampler` — a sampler whose class declares ``conditional = True`` and has ``num_classes``;
  it takes ``labels=`` (CGAN, Age-cGAN). :func:`is_conditional` is the one test for it.
* :class:`Translator` — ``translate(images, direction)`` (CycleGAN, DiscoGAN).
* :func:`standard_normal_noise` marks a ``sample_noise`` that draws z ~ N(0, noise_std²) of shape
  (n, latent_dim); the evaluation sampler then feeds index-seeded latents through ``noise=`` instead
  (:func:`uses_base_noise`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeGuard, TypeVar, runtime_checkable

from torch import Tensor

_MARK = "__standard_normal_noise__"
F = TypeVar("F", bound=Callable[..., Any])


@runtime_checkable
class Sampler(Protocol):
    """A generator that draws ``n`` samples (images/points/volumes in [-1, 1])."""

    def sample(self, n: int, noise: Tensor | None = None, **condition: Any) -> Tensor: ...


@runtime_checkable
class ConditionalSampler(Sampler, Protocol):
    """A sampler conditioned on class labels: ``sample(n, labels=LongTensor(n))``."""

    conditional: bool
    num_classes: int


@runtime_checkable
class Translator(Protocol):
    """An image-to-image model: ``translate(images, "AtoB" | "BtoA")``."""

    def translate(self, images: Tensor, direction: str) -> Tensor: ...


def is_sampler(model: object) -> TypeGuard[Sampler]:
    return callable(getattr(model, "sample", None))


def is_conditional(model: object) -> TypeGuard[ConditionalSampler]:
    """True for class-conditional samplers (their class sets ``conditional = True``)."""
    return getattr(model, "conditional", False) is True


def is_translator(model: object) -> TypeGuard[Translator]:
    return callable(getattr(model, "translate", None))


def standard_normal_noise(sample_noise: F) -> F:
    """Mark a ``sample_noise(n)`` method that draws z ~ N(0, noise_std²) of shape (n, hparams.latent_dim)."""
    setattr(sample_noise, _MARK, True)
    return sample_noise


def uses_base_noise(model: object) -> bool:
    """True when ``type(model).sample_noise`` is a :func:`standard_normal_noise` method (not overridden)."""
    return bool(getattr(getattr(type(model), "sample_noise", None), _MARK, False))
