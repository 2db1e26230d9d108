"""DCGAN networks for 28×28 images, as in the TF2 DCGAN tutorial chapter (digits seed).

G: Dense 7·7·256 (no bias) → BN → LReLU(0.3) → ConvT 128 k5 s1 → BN → LReLU → ConvT 64 k5 s2 → BN → LReLU →
ConvT 1 k5 s2 → tanh, every layer bias-free. D: Conv 64 k5 s2 → LReLU(0.3) → Dropout 0.3 → Conv 128 k5 s2 →
LReLU → Dropout 0.3 → Flatten → Dense 1 (a logit).

Keras → PyTorch: BN momentum 0.99 → ``momentum=0.01``, eps 1e-3; Keras ``LeakyReLU()`` slope 0.3;
glorot-uniform init. TF ``same`` padding on stride-2 5×5 convs pads (1, 2); symmetric ``padding=2`` gives
the same output size with a 1-pixel shift, which does not change what the network can learn.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_gans.networks.init import apply_init, apply_spectral_norm
from lightning_gans.networks.minibatch import MinibatchDiscrimination


class DCGANGenerator28(nn.Module):
    def __init__(
        self,
        latent_dim: int = 100,
        negative_slope: float = 0.3,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
        init: str = "keras",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim

        def bn(channels: int, dims: int = 2) -> nn.Module:
            cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
            return cls(channels, eps=bn_eps, momentum=bn_momentum)

        self.project = nn.Sequential(
            nn.Linear(latent_dim, 7 * 7 * 256, bias=False), bn(7 * 7 * 256, 1), nn.LeakyReLU(negative_slope)
        )
        self.net = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 5, stride=1, padding=2, bias=False),  # 7×7
            bn(128),
            nn.LeakyReLU(negative_slope),
            nn.ConvTranspose2d(128, 64, 5, stride=2, padding=2, output_padding=1, bias=False),  # 14×14
            bn(64),
            nn.LeakyReLU(negative_slope),
            nn.ConvTranspose2d(64, 1, 5, stride=2, padding=2, output_padding=1, bias=False),  # 28×28
            nn.Tanh(),
        )
        apply_init(self, init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, 256, 7, 7))


class DCGANDiscriminator28(nn.Module):
    """The seed's D; ``minibatch_kernels`` > 0 adds minibatch discrimination (Salimans et al. 2016, §3.2) on the
    flattened features before the Dense output, ``spectral_norm`` wraps every Conv/Dense weight in spectral
    normalisation (Miyato et al. 2018) (neither is in the seed: training switches)."""

    def __init__(
        self,
        in_channels: int = 1,
        negative_slope: float = 0.3,
        dropout: float = 0.3,
        init: str = "keras",
        minibatch_kernels: int = 0,
        minibatch_kernel_dim: int = 5,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        features = 7 * 7 * 128
        minibatch: list[nn.Module] = []
        if minibatch_kernels:
            minibatch = [MinibatchDiscrimination(features, minibatch_kernels, minibatch_kernel_dim)]
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 64, 5, stride=2, padding=2),  # 14×14
            nn.LeakyReLU(negative_slope),
            nn.Dropout(dropout),
            nn.Conv2d(64, 128, 5, stride=2, padding=2),  # 7×7
            nn.LeakyReLU(negative_slope),
            nn.Dropout(dropout),
            nn.Flatten(),
            *minibatch,
            nn.Linear(features + minibatch_kernels, 1),
        )
        apply_init(self, init)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)
