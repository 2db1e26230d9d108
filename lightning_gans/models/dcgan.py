"""DCGAN (Radford et al. 2016) as in the TF2 DCGAN chapter's digits seed (28×28 MNIST).

Networks: ``DCGANGenerator28`` / ``DCGANDiscriminator28`` (see ``networks/dcgan.py``). The seed trains with
BCE-with-logits, D loss = real + fake (a sum), Adam lr 1e-4 (eps 1e-7, the Keras default) for each net,
batch 256, noise 100, a *simultaneous* update (one forward under two GradientTapes, both gradients taken
before either optimizer applies) — ``experiments/dcgan_mnist.yaml`` sets all of these.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lightning_gans.models.base import GANModule
from lightning_gans.networks.dcgan import DCGANDiscriminator28, DCGANGenerator28


class DCGAN(GANModule):
    def __init__(self, generator: nn.Module | None = None, discriminator: nn.Module | None = None, **kwargs: Any):
        latent_dim = kwargs.get("latent_dim", 100)
        super().__init__(
            generator=generator or DCGANGenerator28(latent_dim=latent_dim),
            discriminator=discriminator or DCGANDiscriminator28(),
            **kwargs,
        )
