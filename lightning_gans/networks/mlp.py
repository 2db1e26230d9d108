"""Fully connected generator and discriminator.

The vanilla GAN of *GAN Projects* ch. 1 (toy GAN): G z(100) → Dense 500 → 500 → 784 → 28×28, D 784 → 500 →
500 → 1. The seed does not state hidden activations; LeakyReLU(0.2) is used (the common choice since
Radford et al. 2016). The same classes with small widths serve the 2-D toy benchmark.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_gans.networks.init import apply_init, apply_spectral_norm
from lightning_gans.networks.minibatch import MinibatchDiscrimination


def _mlp(sizes: list[int], negative_slope: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.LeakyReLU(negative_slope)]
    return layers


class MLPGenerator(nn.Module):
    """z → hidden Dense layers (LeakyReLU) → Dense prod(out_shape) → ``output`` activation → reshape."""

    def __init__(
        self,
        latent_dim: int = 100,
        hidden: list[int] = [500, 500],  # noqa: B006 - jsonargparse needs a literal default
        out_shape: list[int] = [1, 28, 28],  # noqa: B006
        negative_slope: float = 0.2,
        output: str = "tanh",
        init: str = "keras",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.out_shape = tuple(out_shape)
        out_features = math.prod(self.out_shape)
        head: list[nn.Module] = [nn.Linear(([latent_dim] + list(hidden))[-1], out_features)]
        if output == "tanh":
            head.append(nn.Tanh())
        elif output != "linear":
            raise ValueError(f"MLPGenerator output must be 'tanh' or 'linear', got {output!r}")
        self.net = nn.Sequential(*_mlp([latent_dim, *hidden], negative_slope), *head)
        apply_init(self, init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """Flatten → hidden Dense layers (LeakyReLU) → [minibatch discrimination] → Dense 1; logits of shape (N,).

    ``minibatch_kernels`` B > 0 inserts a ``MinibatchDiscrimination`` layer (Salimans et al. 2016, §3.2; B kernels
    of dimension ``minibatch_kernel_dim``) before the output layer. For PacGAN packing (Lin et al. 2018) give
    ``in_shape`` the packed width, e.g. ``[2 * pack]`` for 2-D points. ``spectral_norm`` wraps every Dense weight in
    spectral normalisation (Miyato et al. 2018).
    """

    def __init__(
        self,
        in_shape: list[int] = [1, 28, 28],  # noqa: B006
        hidden: list[int] = [500, 500],  # noqa: B006
        negative_slope: float = 0.2,
        init: str = "keras",
        minibatch_kernels: int = 0,
        minibatch_kernel_dim: int = 5,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        in_features = math.prod(in_shape)
        layers = [nn.Flatten(), *_mlp([in_features, *hidden], negative_slope)]
        width = hidden[-1]
        if minibatch_kernels:
            layers.append(MinibatchDiscrimination(width, minibatch_kernels, minibatch_kernel_dim))
            width += minibatch_kernels
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))
        apply_init(self, init)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)
