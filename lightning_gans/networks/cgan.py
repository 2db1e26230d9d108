"""Conditional GAN networks for 28×28 digits: *GANs in Action* ch. 8 (Mirza & Osindero 2014).

G: label → ``Embedding(10, 100)`` e_y; input z ⊙ e_y (element-wise product) → the ch. 7 generator
(:class:`~lightning_gans.networks.sgan.SGANGenerator28`).
D: label → ``Embedding(10, 784)`` → 1×28×28, concatenated with the image as a 2nd channel → Conv 64 k3 s2 →
LReLU(0.01) → Conv 64 k3 s2 → BN → LReLU → Conv 128 k3 s2 → BN → LReLU → Flatten (2048) → Dense 1 (a logit).
G and D have separate embedding tables.

Embeddings start as Keras' do, U(−0.05, 0.05) (``init="keras"``): with PyTorch's N(0, 1) default, z ⊙ e_y
starts ≈35× larger and the book's recipe behaves differently (reference: gans-in-action-ch5-9.md, bug 16).
Other Keras conversions as in ``networks/sgan.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_gans.networks.init import apply_init
from lightning_gans.networks.sgan import SGANGenerator28, conv_block

KERAS_EMBEDDING_RANGE = 0.05  # keras.initializers.RandomUniform(-0.05, 0.05), the Embedding default


def _label_embedding(num_classes: int, dim: int, init: str) -> nn.Embedding:
    embedding = nn.Embedding(num_classes, dim)
    if init == "keras":
        nn.init.uniform_(embedding.weight, -KERAS_EMBEDDING_RANGE, KERAS_EMBEDDING_RANGE)
    return embedding


def _check_labels(labels: torch.Tensor, n: int) -> None:
    if labels.shape != (n,):
        raise ValueError(f"expected one label per sample, shape ({n},), got {tuple(labels.shape)}")


class CGANGenerator28(nn.Module):
    """(z, labels) → 1×28×28 images in [-1, 1]: the ch. 7 generator applied to z ⊙ Embedding(labels)."""

    def __init__(
        self,
        latent_dim: int = 100,
        num_classes: int = 10,
        negative_slope: float = 0.01,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
        init: str = "keras",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.body = SGANGenerator28(latent_dim, negative_slope, bn_momentum, bn_eps, init)
        self.label_embedding = _label_embedding(num_classes, latent_dim, init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_labels(labels, z.shape[0])
        return self.body(z * self.label_embedding(labels))


class CGANDiscriminator28(nn.Module):
    """(images, labels) → real/fake logits (N,); the label enters as a learned 28×28 second channel."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        negative_slope: float = 0.01,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
        init: str = "keras",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.label_embedding = _label_embedding(num_classes, 28 * 28, init)
        block = dict(negative_slope=negative_slope, bn_momentum=bn_momentum, bn_eps=bn_eps)
        self.net = nn.Sequential(
            *conv_block(in_channels + 1, 64, batch_norm=False, **block),  # 14×14 (32 → 64 for the label channel)
            *conv_block(64, 64, batch_norm=True, **block),  # 7×7
            *conv_block(64, 128, batch_norm=True, **block),  # 4×4
            nn.Flatten(),
            nn.Linear(4 * 4 * 128, 1),
        )
        apply_init(self.net, init)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_labels(labels, x.shape[0])
        label_plane = self.label_embedding(labels).view(-1, 1, 28, 28)
        return self.net(torch.cat([x, label_plane], dim=1)).squeeze(1)
