"""Vanilla GAN (Goodfellow et al. 2014) with MLP networks — the toy GAN of *GAN Projects* ch. 1.

G: z(100) → Dense 500 → 500 → 784 → 28×28 (tanh); D: 784 → 500 → 500 → 1 logit; LeakyReLU(0.2) hidden
(the seed is silent on hidden activations); BCE with the non-saturating G loss. Also the model of the 2-D
toy benchmark (``experiments/toy_grid.yaml``) with smaller MLPs.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lightning_gans.models.base import GANModule
from lightning_gans.networks.mlp import MLPDiscriminator, MLPGenerator


class GAN(GANModule):
    def __init__(self, generator: nn.Module | None = None, discriminator: nn.Module | None = None, **kwargs: Any):
        latent_dim = kwargs.get("latent_dim", 100)
        super().__init__(
            generator=generator or MLPGenerator(latent_dim=latent_dim),
            discriminator=discriminator or MLPDiscriminator(),
            **kwargs,
        )
