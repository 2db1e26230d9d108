"""ProGAN generator and discriminator (Karras et al. 2018, Table 2; *GANs in Action* ch. 6, Listing 6.1).

Both networks are built for every resolution level up front — level k works at 4·2^k pixels, the last level at
``resolution`` — and run at the level and fade-in α they are called with, so one optimizer state and one
checkpoint cover the whole growth (levels not yet reached simply get no gradient).

G: z → PixelNorm → dense to 4×4 (equalised, gain √2/4 as the official code) → LReLU 0.2 → PixelNorm → conv 3×3
→ LReLU → PixelNorm; each next level: nearest upsample ×2 → (conv 3×3 → LReLU 0.2 → PixelNorm) twice; toRGB
is a linear 1×1 conv (gain 1) per level, with no tanh (the paper's output is linear; ``sample`` clamps).
D mirrors it: fromRGB (1×1 conv → LReLU) per level; each level above 4×4: conv 3×3, conv 3×3, 2×2 average
pool; the 4×4 block: minibatch stddev → conv 3×3 → conv 4×4 (valid, to 1×1) → linear score (gain 1).
``minibatch_kernels`` > 0 (not in the paper, which has only the stddev feature) adds minibatch discrimination
(Salimans et al. 2016, §3.2) on the 4×4 block's c₀ output features, before the linear score.

Fade-in (§3, Fig. 2), while level k grows in: G = (1−α)·up(toRGB_{k−1}(h)) + α·toRGB_k(block_k(h)) and
D = (1−α)·fromRGB_{k−1}(down(x)) + α·block_k(fromRGB_k(x)). At α = 0 and α = 1 the unused path is skipped, so
α = 0 *is* the previous level's network (upsampled output / downsampled input) and α = 1 the new one.

Widths: ``channels(res) = min(channel_base // res, max_channels)``; the paper's 512 up to 32×32 then halving is
``channel_base=16384, max_channels=512`` (the defaults). Small CPU models: e.g. ``channel_base=2048,
max_channels=128`` (128 channels up to 16×16, 64 at 32×32).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lightning_gans.networks.blocks import SQRT2, EqualizedConv2d, EqualizedLinear, MinibatchStdDev, PixelNorm
from lightning_gans.networks.minibatch import MinibatchDiscrimination


def num_levels(resolution: int) -> int:
    """Levels from 4×4 to ``resolution`` (a power of two ≥ 4): 4 → 1, 8 → 2, 32 → 4, 1024 → 9."""
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 4 (4, 8, 16, …, 1024), got {resolution}")
    return int(math.log2(resolution)) - 1


def level_resolution(level: int) -> int:
    """Pixels per side at ``level``: 4·2^level."""
    return 4 * 2**level


def upsample(x: torch.Tensor) -> torch.Tensor:
    """×2 nearest-neighbour upsampling (the paper's G upscaling)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample(x: torch.Tensor) -> torch.Tensor:
    """0.5× by 2×2 average pooling (the paper's D downscaling)."""
    return F.avg_pool2d(x, 2)


class _Widths:
    def __init__(self, resolution: int, channel_base: int, max_channels: int) -> None:
        self.levels = num_levels(resolution)
        if channel_base < 1 or max_channels < 1:
            raise ValueError(f"channel_base and max_channels must be >= 1, got {channel_base}, {max_channels}")
        self.channel_base, self.max_channels = channel_base, max_channels

    def __call__(self, level: int) -> int:
        return max(1, min(self.channel_base // level_resolution(level), self.max_channels))


class _GrowingNetwork(nn.Module):
    max_level: int

    def _check(self, level: int | None, alpha: float) -> tuple[int, float]:
        level = self.max_level if level is None else int(level)
        if not 0 <= level <= self.max_level:
            raise ValueError(f"level must be in [0, {self.max_level}] for this network, got {level}")
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"fade-in alpha must be in [0, 1], got {alpha}")
        return level, (1.0 if level == 0 else alpha)


class ProGANGenerator(_GrowingNetwork):
    """``forward(z, level=None, alpha=1.0)`` → images at 4·2^level pixels (``level=None``: full resolution)."""

    def __init__(
        self,
        latent_dim: int = 512,
        resolution: int = 1024,
        channels: int = 3,
        channel_base: int = 16384,
        max_channels: int = 512,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        width = _Widths(resolution, channel_base, max_channels)
        self.latent_dim, self.resolution, self.channels = latent_dim, resolution, channels
        self.max_level = width.levels - 1
        c0 = width(0)
        act = nn.LeakyReLU(negative_slope)
        self.stem_dense = nn.Sequential(PixelNorm(), EqualizedLinear(latent_dim, c0 * 16, gain=SQRT2 / 4))
        self.stem_conv = nn.Sequential(act, PixelNorm(), EqualizedConv2d(c0, c0, 3, padding=1), act, PixelNorm())
        self.blocks = nn.ModuleList()
        for level in range(1, width.levels):
            c_in, c_out = width(level - 1), width(level)
            layers: list[nn.Module] = []
            for a, b in ((c_in, c_out), (c_out, c_out)):
                layers += [EqualizedConv2d(a, b, 3, padding=1), nn.LeakyReLU(negative_slope), PixelNorm()]
            self.blocks.append(nn.Sequential(*layers))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(width(k), channels, 1, gain=1.0) for k in range(width.levels))

    def forward(self, z: torch.Tensor, level: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        level, alpha = self._check(level, alpha)
        h = self.stem_dense(z).view(z.shape[0], -1, 4, 4)
        h = self.stem_conv(h)
        for k in range(1, level):
            h = self.blocks[k - 1](upsample(h))
        if level == 0:
            return self.to_rgb[0](h)
        old = upsample(self.to_rgb[level - 1](h)) if alpha < 1.0 else None
        if alpha <= 0.0:
            return old
        new = self.to_rgb[level](self.blocks[level - 1](upsample(h)))
        return new if old is None else (1.0 - alpha) * old + alpha * new


class ProGANDiscriminator(_GrowingNetwork):
    """``forward(x, level=None, alpha=1.0)`` → one score per image; ``level=None`` reads it from x's size."""

    def __init__(
        self,
        resolution: int = 1024,
        channels: int = 3,
        channel_base: int = 16384,
        max_channels: int = 512,
        negative_slope: float = 0.2,
        mbstd_group_size: int = 4,
        minibatch_kernels: int = 0,
        minibatch_kernel_dim: int = 5,
    ) -> None:
        super().__init__()
        width = _Widths(resolution, channel_base, max_channels)
        self.resolution, self.channels = resolution, channels
        self.max_level = width.levels - 1
        self.act = nn.LeakyReLU(negative_slope)
        self.from_rgb = nn.ModuleList(EqualizedConv2d(channels, width(k), 1) for k in range(width.levels))
        self.blocks = nn.ModuleList()
        for level in range(1, width.levels):
            c_in, c_out = width(level), width(level - 1)
            self.blocks.append(
                nn.Sequential(
                    EqualizedConv2d(c_in, c_in, 3, padding=1),
                    nn.LeakyReLU(negative_slope),
                    EqualizedConv2d(c_in, c_out, 3, padding=1),
                    nn.LeakyReLU(negative_slope),
                    nn.AvgPool2d(2),
                )
            )
        c0 = width(0)
        minibatch: list[nn.Module] = []
        if minibatch_kernels:
            minibatch = [MinibatchDiscrimination(c0, minibatch_kernels, minibatch_kernel_dim)]
        self.final = nn.Sequential(
            MinibatchStdDev(mbstd_group_size),
            EqualizedConv2d(c0 + 1, c0, 3, padding=1),
            nn.LeakyReLU(negative_slope),
            EqualizedConv2d(c0, c0, 4),
            nn.LeakyReLU(negative_slope),
            nn.Flatten(),
            *minibatch,
            EqualizedLinear(c0 + minibatch_kernels, 1, gain=1.0),
        )

    def level_of(self, x: torch.Tensor) -> int:
        """The level whose resolution is x's (ValueError for other sizes)."""
        size = x.shape[-1]
        if x.dim() != 4 or x.shape[-2] != size or x.shape[1] != self.channels:
            raise ValueError(f"expected N×{self.channels}×R×R images, got shape {tuple(x.shape)}")
        for level in range(self.max_level + 1):
            if level_resolution(level) == size:
                return level
        sizes = [level_resolution(k) for k in range(self.max_level + 1)]
        raise ValueError(f"image size {size} is not one of this discriminator's resolutions {sizes}")

    def forward(self, x: torch.Tensor, level: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        level, alpha = self._check(self.level_of(x) if level is None else level, alpha)
        if x.shape[-1] != level_resolution(level):
            raise ValueError(f"level {level} takes {level_resolution(level)}px images, got {x.shape[-1]}px")
        if level == 0:
            h = self.act(self.from_rgb[0](x))
        else:
            old = self.act(self.from_rgb[level - 1](downsample(x))) if alpha < 1.0 else None
            if alpha <= 0.0:
                h = old
            else:
                h = self.blocks[level - 1](self.act(self.from_rgb[level](x)))
                h = h if old is None else (1.0 - alpha) * old + alpha * h
        for k in range(level - 1, 0, -1):
            h = self.blocks[k - 1](h)
        return self.final(h)
