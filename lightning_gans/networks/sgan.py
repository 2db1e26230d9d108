"""Semi-supervised GAN networks for 28×28 digits: *GANs in Action* ch. 7 (Salimans et al. 2016, §5).

G (ch. 7, reused by the ch. 8 CGAN): z (100) → Dense 7·7·256 → reshape → ConvT 128 k3 s2 → BN → LReLU(0.01) →
ConvT 64 k3 s1 → BN → LReLU → ConvT 1 k3 s2 → tanh.
D body: Conv 32 k3 s2 → LReLU(0.01) → Conv 64 k3 s2 → BN → LReLU → Conv 128 k3 s2 → BN → LReLU → Dropout 0.5 →
Flatten (4·4·128 = 2048; the book's "3×3×128" shape comments are wrong) → Dense 10 class logits l.
Two heads on the same body and the same weights: supervised softmax(l), and unsupervised real/fake
D(x) = Z/(Z+1) with Z = Σ_k exp(l_k) (Salimans' K+1-class trick with the fake logit fixed at 0), which is
exactly sigmoid(logsumexp(l)): ``unsupervised_logit`` returns logsumexp(l) for BCE-with-logits, where the
book's ``1 − 1/(Z+1)`` overflows for large logits.

Keras → PyTorch (reference: gans-in-action-ch5-9.md, bugs 15–16): BN momentum 0.99 → ``momentum=0.01``, eps
1e-3; glorot-uniform kernels, zero biases; ``same`` k3 s2 convs → ``padding=1`` (same output size, the TF
padding is (0, 1) on even inputs: a one-pixel shift), ConvT k3 s2 → ``padding=1, output_padding=1``.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_gans.networks.init import apply_init


def conv_block(
    in_channels: int, out_channels: int, batch_norm: bool, negative_slope: float, bn_momentum: float, bn_eps: float
) -> list[nn.Module]:
    """Conv k3 s2 'same' → [BN] → LeakyReLU: the unit of the ch. 7/8 discriminators (28 → 14 → 7 → 4)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum))
    layers.append(nn.LeakyReLU(negative_slope))
    return layers


class SGANGenerator28(nn.Module):
    """The ch. 7 generator (also the body of the ch. 8 CGAN generator): z → 1×28×28 in [-1, 1]."""

    def __init__(
        self,
        latent_dim: int = 100,
        negative_slope: float = 0.01,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
        init: str = "keras",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim

        def bn(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels, eps=bn_eps, momentum=bn_momentum)

        self.project = nn.Linear(latent_dim, 7 * 7 * 256)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 3, stride=2, padding=1, output_padding=1),  # 14×14
            bn(128),
            nn.LeakyReLU(negative_slope),
            nn.ConvTranspose2d(128, 64, 3, stride=1, padding=1),  # 14×14
            bn(64),
            nn.LeakyReLU(negative_slope),
            nn.ConvTranspose2d(64, 1, 3, stride=2, padding=1, output_padding=1),  # 28×28
            nn.Tanh(),
        )
        apply_init(self, init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, 256, 7, 7))


class SGANDiscriminator28(nn.Module):
    """The ch. 7 discriminator: ``forward`` gives the 10 class logits l (supervised head: softmax(l));
    ``unsupervised_logit(l)`` the real/fake logit logsumexp(l); ``features(x)`` the flattened body output
    (2048-d, before dropout) for feature matching."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        negative_slope: float = 0.01,
        dropout: float = 0.5,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
        init: str = "keras",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        block = dict(negative_slope=negative_slope, bn_momentum=bn_momentum, bn_eps=bn_eps)
        self.body = nn.Sequential(
            *conv_block(in_channels, 32, batch_norm=False, **block),  # 14×14
            *conv_block(32, 64, batch_norm=True, **block),  # 7×7
            *conv_block(64, 128, batch_norm=True, **block),  # 4×4
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(4 * 4 * 128, num_classes)
        apply_init(self, init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened body output (N, 2048)."""
        return self.body(x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits l from body ``features`` (dropout, then the dense layer)."""
        return self.classifier(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits l (N, num_classes): the supervised head is softmax(l)."""
        return self.head(self.features(x))

    @staticmethod
    def unsupervised_logit(logits: torch.Tensor) -> torch.Tensor:
        """Real/fake logit logsumexp(l) (N,): sigmoid of it is the book's Z/(Z+1), Z = Σ exp(l_k), without overflow."""
        return torch.logsumexp(logits, dim=1)
