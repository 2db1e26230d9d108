"""Age-cGAN networks of *GAN Projects* ch. 3 (Antipov et al. 2017, "Face Aging with Conditional GANs").

Reference: gan-projects-and-dcgan.md §4 (the chapter's code where text and code disagree: encoder Dense 4096,
second upsampling conv 64). Keras → PyTorch: glorot-uniform weights and zero biases (``init="keras"``), default BN
momentum 0.99 → ``momentum=0.01`` and the chapter's ``momentum=0.8`` → ``0.2``, eps 1e-3; TF ``same`` padding on
stride-2 convs is the symmetric ``padding=k//2`` (same sizes, 1-pixel shift, as in the other ports). The networks
take integer age classes and one-hot them (6 classes); discriminators return logits (N,) — the chapter's sigmoid
is in the BCE-with-logits loss.

Sizes are options so a CPU-sized variant can shrink them: ``image_size`` (64; G starts at image_size/8) and
``base_channels`` (G 256 → 128 → 64 → 3, D 64 → 128 → 256 → 512, E 32 → 64 → 128 → 256 in the chapter).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_gans.networks.init import apply_init

NUM_AGE_CLASSES = 6


def _check_size(image_size: int, factor: int) -> None:
    if image_size % factor or image_size < factor:
        raise ValueError(f"image_size must be a positive multiple of {factor}, got {image_size}")


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer classes (N,) → float one-hot (N, num_classes); one-hot float input passes through."""
    if labels.dim() == 2 and labels.dtype.is_floating_point:
        return labels
    return F.one_hot(labels.long(), num_classes).float()


def _down_blocks(channels: tuple[int, ...], kernel: int, negative_slope: float) -> list[nn.Module]:
    """Conv k s2 'same' → BN (Keras defaults) → LReLU for each consecutive (c_in, c_out) pair of ``channels``."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels, channels[1:]):
        layers += [
            nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2),
            nn.BatchNorm2d(c_out, momentum=0.01, eps=1e-3),
            nn.LeakyReLU(negative_slope),
        ]
    return layers


class AgeGenerator(nn.Module):
    """G(z, age): [z ⊕ one-hot] → Dense 2048 → LReLU(0.2) → Dropout 0.2 → Dense C·s·s → BN → LReLU(0.2) →
    Dropout 0.2 → reshape C×s×s (s = image_size/8) → 3 × (Upsample ×2 nearest → Conv k5 'same': C/2, C/4, 3),
    BN (Keras momentum 0.8) + LReLU(0.2) between, tanh last. Chapter: C = 256, 8×8 → 64×64."""

    def __init__(
        self,
        latent_dim: int = 100,
        num_classes: int = NUM_AGE_CLASSES,
        image_size: int = 64,
        base_channels: int = 256,
        hidden: int = 2048,
        dropout: float = 0.2,
        negative_slope: float = 0.2,
        init: str = "keras",
    ) -> None:
        super().__init__()
        _check_size(image_size, 8)
        self.latent_dim, self.num_classes, self.image_size = latent_dim, num_classes, image_size
        self.start, self.base_channels = image_size // 8, base_channels
        width = base_channels * self.start * self.start
        self.project = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden),
            nn.LeakyReLU(negative_slope),
            nn.Dropout(dropout),
            nn.Linear(hidden, width),
            nn.BatchNorm1d(width, momentum=0.01, eps=1e-3),
            nn.LeakyReLU(negative_slope),
            nn.Dropout(dropout),
        )
        c = base_channels
        layers: list[nn.Module] = []
        for c_in, c_out in ((c, c // 2), (c // 2, c // 4)):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c_in, c_out, 5, padding=2),
                nn.BatchNorm2d(c_out, momentum=0.2, eps=1e-3),
                nn.LeakyReLU(negative_slope),
            ]
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c // 4, 3, 5, padding=2), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        apply_init(self, init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, one_hot(labels, self.num_classes)], dim=1))
        return self.net(h.view(-1, self.base_channels, self.start, self.start))


class AgeDiscriminator(nn.Module):
    """D(x, age): Conv C k3 s2 → LReLU(0.2) (image/2); the one-hot age tiled to image/2 × image/2 × 6 and
    concatenated; Conv 2C / 4C / 8C k3 s2, each BN + LReLU(0.2) → Flatten → Dense 1 (a logit). Chapter: C = 64."""

    def __init__(
        self,
        num_classes: int = NUM_AGE_CLASSES,
        image_size: int = 64,
        base_channels: int = 64,
        negative_slope: float = 0.2,
        init: str = "keras",
    ) -> None:
        super().__init__()
        _check_size(image_size, 16)
        self.num_classes = num_classes
        c = base_channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, stride=2, padding=1), nn.LeakyReLU(negative_slope))
        layers = _down_blocks((c + num_classes, 2 * c, 4 * c, 8 * c), 3, negative_slope)
        side = image_size // 16
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(8 * c * side * side, 1))
        apply_init(self, init)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        tiled = one_hot(labels, self.num_classes)[:, :, None, None].expand(-1, -1, *h.shape[-2:])
        return self.body(torch.cat([h, tiled], dim=1)).squeeze(1)


class AgeEncoder(nn.Module):
    """E(x) → z: Conv C k5 s2 → LReLU(0.2); Conv 2C / 4C / 8C k5 s2, each BN + LReLU(0.2); Flatten → Dense 4096
    → BN → LReLU(0.2) → Dense latent_dim (linear). Chapter: C = 32, 64² → 4²×256 → 4096 → 100 (its code's 4096,
    the text says 2,096)."""

    def __init__(
        self,
        latent_dim: int = 100,
        image_size: int = 64,
        base_channels: int = 32,
        hidden: int = 4096,
        negative_slope: float = 0.2,
        init: str = "keras",
    ) -> None:
        super().__init__()
        _check_size(image_size, 16)
        self.latent_dim = latent_dim
        c = base_channels
        layers: list[nn.Module] = [nn.Conv2d(3, c, 5, stride=2, padding=2), nn.LeakyReLU(negative_slope)]
        layers += _down_blocks((c, 2 * c, 4 * c, 8 * c), 5, negative_slope)
        side = image_size // 16
        layers += [
            nn.Flatten(),
            nn.Linear(8 * c * side * side, hidden),
            nn.BatchNorm1d(hidden, momentum=0.01, eps=1e-3),
            nn.LeakyReLU(negative_slope),
            nn.Linear(hidden, latent_dim),
        ]
        self.net = nn.Sequential(*layers)
        apply_init(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
