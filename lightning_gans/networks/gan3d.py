"""3D-GAN voxel networks (Wu et al. 2016) as in *GAN Projects* ch. 2 (reference: gan-projects-and-dcgan.md §3).

Generator (64³): z (200) as a 1×1×1 volume → ConvT3d 512 k4 s1 (valid) → 4³ → BN → ReLU; ConvT3d 256 / 128 / 64
k4 s2 p1 (Keras ``same``) → 8³ / 16³ / 32³, each BN + ReLU; ConvT3d 1 k4 s2 p1 → 64³ → sigmoid (occupancy in
[0, 1]). Discriminator (64³): Conv3d 64 / 128 / 256 / 512 k4 s2 p1 → 32³ / 16³ / 8³ / 4³, each BN + LeakyReLU 0.2;
Conv3d 1 k4 (valid) → 1³ → a logit (the chapter's sigmoid lives in the loss, BCE-with-logits).

Book bug / ambiguity handled: the chapter's tables have no BatchNorm on the last layer of either network, but its
code applies BN right before both sigmoids. ``final_batchnorm=False`` (default) follows the tables; ``True``
reproduces the code.

``resolution=32`` (CPU-sized runs) drops the finest block of each network: G 512 → 256 → 128 → 1 (4³ → 32³),
D 64 → 128 → 256 → 1 (32³ → 4³ → 1³). ``channels`` overrides the widths (coarsest first for G, finest first
for D) — e.g. the narrower CPU variant of ``experiments/gan3d_shapes32.yaml``.

Keras → PyTorch defaults (reference §2): BN momentum 0.99 → ``momentum=0.01``, eps 1e-3; glorot-uniform weights
and zero biases (``init="keras"``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_gans.networks.init import apply_init

RESOLUTIONS = (32, 64)
GENERATOR_CHANNELS = {64: (512, 256, 128, 64), 32: (512, 256, 128)}
DISCRIMINATOR_CHANNELS = {64: (64, 128, 256, 512), 32: (64, 128, 256)}


def _check(resolution: int, channels: tuple[int, ...] | list[int] | None, defaults: dict) -> tuple[int, ...]:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS} (voxels per side), got {resolution}")
    chosen = tuple(channels) if channels is not None else defaults[resolution]
    blocks = int(math.log2(resolution // 4))  # 4³ → resolution³ in stride-2 steps
    if len(chosen) != blocks or min(chosen) < 1:
        raise ValueError(f"resolution {resolution} needs {blocks} positive channel widths, got {list(chosen)}")
    return chosen


def _bn(channels: int, momentum: float, eps: float) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=eps, momentum=momentum)


class VoxelGenerator(nn.Module):
    """z (N × latent_dim) → occupancy probabilities N×1×R×R×R in [0, 1] (see the module docstring)."""

    def __init__(
        self,
        latent_dim: int = 200,
        resolution: int = 64,
        channels: list[int] | None = None,
        final_batchnorm: bool = False,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
        init: str = "keras",
    ) -> None:
        super().__init__()
        widths = _check(resolution, channels, GENERATOR_CHANNELS)
        self.latent_dim, self.resolution = latent_dim, resolution
        layers: list[nn.Module] = [nn.ConvTranspose3d(latent_dim, widths[0], 4, stride=1, padding=0)]
        layers += [_bn(widths[0], bn_momentum, bn_eps), nn.ReLU()]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose3d(c_in, c_out, 4, stride=2, padding=1), _bn(c_out, bn_momentum, bn_eps)]
            layers.append(nn.ReLU())
        layers.append(nn.ConvTranspose3d(widths[-1], 1, 4, stride=2, padding=1))
        if final_batchnorm:  # the chapter's code (not its tables): BN before the sigmoid
            layers.append(_bn(1, bn_momentum, bn_eps))
        layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)
        apply_init(self, init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1, 1))


class VoxelDiscriminator(nn.Module):
    """Volumes N×1×R×R×R → logits (N,) (see the module docstring)."""

    def __init__(
        self,
        resolution: int = 64,
        channels: list[int] | None = None,
        final_batchnorm: bool = False,
        negative_slope: float = 0.2,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
        init: str = "keras",
    ) -> None:
        super().__init__()
        widths = _check(resolution, channels, DISCRIMINATOR_CHANNELS)
        self.resolution = resolution
        layers: list[nn.Module] = []
        for c_in, c_out in zip((1, *widths[:-1]), widths):
            layers += [nn.Conv3d(c_in, c_out, 4, stride=2, padding=1), _bn(c_out, bn_momentum, bn_eps)]
            layers.append(nn.LeakyReLU(negative_slope))
        layers.append(nn.Conv3d(widths[-1], 1, 4, stride=1, padding=0))  # 4³ → 1³ (valid)
        if final_batchnorm:  # the chapter's code (not its tables): BN before the sigmoid
            layers.append(_bn(1, bn_momentum, bn_eps))
        self.net = nn.Sequential(*layers)
        apply_init(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-3:] != (self.resolution,) * 3:
            raise ValueError(f"expected volumes of {self.resolution}³ voxels, got shape {tuple(x.shape)}")
        return self.net(x).view(x.shape[0])
