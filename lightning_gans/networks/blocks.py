"""Reusable layers of Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and
Variation" (ProGAN; *GANs in Action* ch. 6): equalised-learning-rate conv/linear, pixel norm, minibatch stddev.

* **Equalised learning rate** (§4.1): weights are stored as w ~ N(0, 1) (bias 0) and multiplied by the He
  constant c = gain/√fan_in *in every forward pass* (fan_in = C_in·k_h·k_w). Scaling at run time, not once at
  init, makes Adam's per-parameter step the same relative speed for every layer. Gain √2 by default (ReLU-like
  activations); 1 for linear outputs such as toRGB and the critic's score.
* **Pixel norm** (§4.2): b = a / √(mean_c a² + ε), ε = 1e-8, over channels at every pixel (no parameters).
* **Minibatch standard deviation** (§3): the batch is split into groups of G = min(4, B) samples (the largest
  divisor of B not above 4 when 4 does not divide B); for every group slot the population std over the group of
  every feature and pixel is averaged into one number, appended as a constant extra feature map. As in the
  book's Listing 6.2 (reshape to [G, B/G, …]), sample i falls in group slot i mod (B/G).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


class EqualizedConv2d(nn.Module):
    """Conv2d with the equalised learning rate: weight N(0, 1) stored, ``weight·gain/√fan_in`` used (Karras §4.1)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, gain: float = SQRT2
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        out_c, in_c, k, _ = self.weight.shape
        return f"{in_c}, {out_c}, kernel_size={k}, padding={self.padding}, scale={self.scale:.4g}"


class EqualizedLinear(nn.Module):
    """Linear layer with the equalised learning rate (Karras et al. 2018, §4.1)."""

    def __init__(self, in_features: int, out_features: int, gain: float = SQRT2) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, scale={self.scale:.4g}"


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 when it is float16/bfloat16 (mixed precision), else unchanged (float32, float64)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class PixelNorm(nn.Module):
    """Per-pixel feature vector normalisation over channels (dim 1): a / √(mean_c a² + ε) (Karras §4.2)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In fp32 under autocast (CPU autocast keeps pow/mean/rsqrt in fp16): fp16 rounds ε = 1e-8 to 0 (rsqrt(0) =
        # inf, 0·inf = NaN at an all-zero pixel) and a² overflows above 256.
        a = _at_least_fp32(x)
        return (a * torch.rsqrt(a.pow(2).mean(dim=1, keepdim=True) + self.eps)).to(x.dtype)


def minibatch_group_size(batch: int, group_size: int = 4) -> int:
    """The largest G ≤ min(group_size, batch) that divides ``batch`` (Karras et al. use G = 4, B divisible by 4)."""
    for g in range(min(group_size, batch), 0, -1):
        if batch % g == 0:
            return g
    raise ValueError(f"minibatch stddev needs a non-empty batch, got batch size {batch}")


class MinibatchStdDev(nn.Module):
    """Append one feature map: the mean over features and pixels of the per-group std (Karras et al. 2018, §3)."""

    def __init__(self, group_size: int = 4, eps: float = 1e-8) -> None:
        super().__init__()
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.group_size = group_size
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = minibatch_group_size(b, self.group_size)
        # The statistic in fp32 under autocast: fp16 rounds ε = 1e-8 to 0, and a zero variance (also an underflowed
        # one) then gives sqrt'(0) = inf, a NaN gradient.
        y = _at_least_fp32(x).reshape(g, b // g, c, h, w)
        y = (y - y.mean(dim=0)).pow(2).mean(dim=0).add(self.eps).sqrt()  # population std, [B/G, C, H, W]
        s = y.mean(dim=(1, 2, 3)).to(x.dtype)  # [B/G]
        feature = s.repeat(g).reshape(b, 1, 1, 1).expand(b, 1, h, w)  # sample i gets s[i mod B/G]
        return torch.cat([x, feature], dim=1)
