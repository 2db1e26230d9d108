"""64×64 RGB DCGAN networks for faces: the TF2 DCGAN chapter's CelebA seed and *GAN Projects* ch. 4 (anime).

Reference: gan-projects-and-dcgan.md §8 (faces) and §5 (anime). Keras → PyTorch: BN momentum 0.99 →
``momentum=0.01``, eps 1e-3; Keras ``LeakyReLU()`` slope 0.3; glorot-uniform weights, zero biases
(``apply_init(…, "keras")``). TF ``same`` padding on stride-2 5×5 convs pads (1, 2); the symmetric
``padding=2`` used here gives the same sizes with a 1-pixel shift (as in ``networks/dcgan.py``); transposed
``same`` k5 s2 is ``padding=2, output_padding=1``. Discriminators return logits of shape (N,): the seeds'
sigmoid lives in the loss (BCE-with-logits).
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_gans.networks.init import apply_init


def _bn(channels: int, dims: int, momentum: float, eps: float) -> nn.Module:
    return (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(channels, eps=eps, momentum=momentum)


class DCGANFacesGenerator(nn.Module):
    """Faces seed G: Dense 4·4·1024 → BN → LReLU(0.3) → ConvT 512 / 256 / 128 (k5 s2, each BN + LReLU)
    → ConvT 3 k5 s2 → tanh; 4 → 8 → 16 → 32 → 64 px. Every layer bias-free (``use_bias=False``)."""

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
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 4 * 4 * 1024, bias=False),
            _bn(4 * 4 * 1024, 1, bn_momentum, bn_eps),
            nn.LeakyReLU(negative_slope),
        )
        layers: list[nn.Module] = []
        for c_in, c_out in ((1024, 512), (512, 256), (256, 128)):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1, bias=False),
                _bn(c_out, 2, bn_momentum, bn_eps),
                nn.LeakyReLU(negative_slope),
            ]
        layers += [nn.ConvTranspose2d(128, 3, 5, stride=2, padding=2, output_padding=1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        apply_init(self, init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, 1024, 4, 4))


class DCGANFacesDiscriminator(nn.Module):
    """Faces seed D: Conv 64 → 512 → 128 (the seed's order), each k5 s2 + LReLU(0.3) + Dropout 0.3;
    64 → 32 → 16 → 8 px; Flatten (8192) → Dense 1 (a logit)."""

    def __init__(
        self, in_channels: int = 3, negative_slope: float = 0.3, dropout: float = 0.3, init: str = "keras"
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((in_channels, 64), (64, 512), (512, 128)):
            layers += [
                nn.Conv2d(c_in, c_out, 5, stride=2, padding=2),
                nn.LeakyReLU(negative_slope),
                nn.Dropout(dropout),
            ]
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(8 * 8 * 128, 1))
        apply_init(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class AnimeGenerator(nn.Module):
    """*GAN Projects* ch. 4 G (final code): Dense 2048 → LReLU(0.2) → Dense 256·8·8 → BN → LReLU(0.2) →
    reshape 256×8×8 → 3× (UpSampling ×2 nearest → Conv k5 same: 128, 64, 3), LReLU(0.2) after the first two,
    tanh after the last (the code's final LeakyReLU is the seed's bug: the data are in [-1, 1]).
    No BN in the conv blocks (the code has none); Keras BN defaults on the Dense output."""

    def __init__(
        self,
        latent_dim: int = 100,
        negative_slope: float = 0.2,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
        init: str = "keras",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 2048),
            nn.LeakyReLU(negative_slope),
            nn.Linear(2048, 256 * 8 * 8),
            _bn(256 * 8 * 8, 1, bn_momentum, bn_eps),
            nn.LeakyReLU(negative_slope),
        )
        layers: list[nn.Module] = []
        for c_in, c_out in ((256, 128), (128, 64), (64, 3)):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 5, padding=2)]
            layers.append(nn.Tanh() if c_out == 3 else nn.LeakyReLU(negative_slope))
        self.net = nn.Sequential(*layers)
        apply_init(self, init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, 256, 8, 8))


class AnimeDiscriminator(nn.Module):
    """*GAN Projects* ch. 4 D: Conv 128 k5 same → LReLU(0.2) → MaxPool 2 (32²) → Conv 256 k3 valid → LReLU(0.2)
    → MaxPool (30² → 15²) → Conv 512 k3 valid → LReLU(0.2) → MaxPool (13² → 6²) → Flatten (18432) → Dense 1024
    → LReLU(0.2) → Dense 1 (a logit; the seed's sigmoid is in the loss). The table leaves the slope of the
    second and third LeakyReLU unstated; 0.2 as everywhere else in the chapter."""

    def __init__(self, in_channels: int = 3, negative_slope: float = 0.2, init: str = "keras") -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 128, 5, padding=2),
            nn.LeakyReLU(negative_slope),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 256, 3),
            nn.LeakyReLU(negative_slope),
            nn.MaxPool2d(2),
            nn.Conv2d(256, 512, 3),
            nn.LeakyReLU(negative_slope),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(6 * 6 * 512, 1024),
            nn.LeakyReLU(negative_slope),
            nn.Linear(1024, 1),
        )
        apply_init(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)
