"""Deterministic fakes for evaluation: the latent of global sample ``i`` depends only on ``(seed, i)``, so a
1-process and a W-process evaluation of the same weights see the same fakes.

The sampled model is anything satisfying :class:`lightning_gans.capabilities.Sampler` (this layer sits below
``models/`` and never imports a model class).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lightning_gans.capabilities import Sampler, uses_base_noise


def full_precision(device: torch.device | str) -> torch.autocast:
    """Autocast off on ``device``: evaluation samples and extracts features in the networks' own dtype (fp32)
    whatever precision training uses. Callbacks evaluate outside the training step's autocast anyway; this keeps an
    evaluation called from inside a step (or any autocast block) the same number."""
    return torch.autocast(device_type=torch.device(device).type, enabled=False)


SampleFn = Callable[..., Tensor]  # sample_fn(count, labels=None, indices=global indices) -> [-1, 1] images
NOISE_BLOCK = 1024  # latents are drawn in blocks of this many consecutive global indices, one seed per block


class ModuleSampler:
    """``sample_fn`` for a GAN module: the latent of global sample ``i`` depends only on ``(seed, i)``.

    Modules with the base ``GANModule.sample_noise`` (z ~ N(0, noise_std²)) get latents drawn on CPU from a
    ``torch.Generator`` seeded per block of :data:`NOISE_BLOCK` indices and passed as ``noise=``; modules with
    their own ``sample_noise`` sample from the (forked, per-rank seeded) global RNG instead. Conditional models
    receive ``labels=``; a ``(images, labels)`` return value is reduced to the images.
    """

    def __init__(self, module: Sampler | Any, seed: int = 0) -> None:
        self.module = module
        self.seed = seed
        self.indexed_noise = uses_base_noise(module)
        self._blocks: dict[int, Tensor] = {}

    def _block(self, k: int) -> Tensor:
        """The latents of global indices ``[k·B, (k+1)·B)``; the last block drawn is kept (indices ascend)."""
        if k not in self._blocks:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + k)
            hp = self.module.hparams
            self._blocks = {k: torch.randn(NOISE_BLOCK, hp.latent_dim, generator=generator) * hp.noise_std}
        return self._blocks[k]

    def noise(self, indices: Tensor) -> Tensor:
        """Latents (CPU) of the given global indices."""
        indices = indices.cpu().long()
        blocks, rows = indices // NOISE_BLOCK, indices % NOISE_BLOCK
        out = torch.empty(len(indices), self.module.hparams.latent_dim)
        for k in blocks.unique().tolist():
            chosen = blocks == k
            out[chosen] = self._block(k)[rows[chosen]]
        return out

    def __call__(self, count: int, labels: Tensor | None = None, indices: Tensor | None = None) -> Tensor:
        condition = {} if labels is None else {"labels": labels.to(self.module.device)}
        if self.indexed_noise and indices is not None:
            out = self.module.sample(count, noise=self.noise(indices).to(self.module.device), **condition)
        else:
            out = self.module.sample(count, **condition)
        return out[0] if isinstance(out, (tuple, list)) else out


def checked_fakes(sample_fn: SampleFn, indices: Tensor, labels: Tensor | None) -> Tensor | None:
    """``len(indices)`` fakes (None for an empty batch), checked for their count."""
    if len(indices) == 0:
        return None
    images = sample_fn(len(indices), labels=labels, indices=indices)
    if images.shape[0] != len(indices):
        raise RuntimeError(f"sample_fn returned {images.shape[0]} images, {len(indices)} were asked for")
    return images
