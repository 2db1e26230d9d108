"""PSNR / SSIM of super-resolved images against HR, with the bicubic baseline beside them; exact under DDP.

Protocol (the usual SR evaluation, Ledig et al. 2017 §3.1): images are quantised to uint8 (as saved) and scaled
to [0, 1]; ``space="y"`` scores the luma channel of ITU-R BT.601 (Y = 16 + 65.481 R + 128.553 G + 24.966 B on
[0, 1] RGB, /255 — MATLAB's ``rgb2ycbcr``; grey images are scored as they are), ``space="rgb"`` all channels;
``crop_border`` pixels are removed on every side first (Ledig et al. crop the scale factor, 4). PSNR and SSIM
come from torchmetrics per image (PSNR = 10·log10(1 / MSE), data range 1; SSIM with its 11×11 Gaussian
window), and the reported values are means over images. Identical images have infinite PSNR; each image's PSNR
is capped at ``max_psnr`` (100 dB) so one perfect image cannot make the mean infinite.

Sharding is the "exact N" rule of :mod:`lightning_gans.evaluation`: rank r scores the held-out pairs at global
indices r, r + W, … < N (no ``DistributedSampler`` padding); the metric states are sums, so a 2-process
evaluation gives the 1-process numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

SPACES = ("y", "rgb")
MAX_PSNR = 100.0
Upscaler = Callable[[Tensor], Tensor]  # LR batch in [-1, 1] -> SR batch in [-1, 1]


def bicubic_upscale(lr: Tensor, scale: int) -> Tensor:
    """The baseline: bicubic ×``scale`` upsampling of [-1, 1] images, clamped to [-1, 1]."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1.0, 1.0)


def rgb_to_y(images: Tensor) -> Tensor:
    """BT.601 luma of [0, 1] RGB images (N×3×H×W) → N×1×H×W in [16/255, 235/255]."""
    weights = images.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return (16.0 + (images * weights).sum(dim=1, keepdim=True)) / 255.0


def prepare(images: Tensor, space: str = "y", crop_border: int = 0) -> Tensor:
    """[-1, 1] images → quantised [0, 1] images in the scoring space, borders cropped."""
    if space not in SPACES:
        raise ValueError(f"space must be 'y' or 'rgb', got {space!r}")
    out = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().div_(255.0)  # to_uint8 / 255, on device
    if space == "y" and out.shape[1] == 3:
        out = rgb_to_y(out)
    if crop_border:
        out = out[..., crop_border:-crop_border, crop_border:-crop_border]
    return out


def psnr_per_image(pred: Tensor, target: Tensor, max_psnr: float = MAX_PSNR) -> Tensor:
    """PSNR (dB) of each image pair, data range 1, capped at ``max_psnr``."""
    values = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return values.nan_to_num(posinf=max_psnr).clamp(max=max_psnr)


def ssim_per_image(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM (Wang et al. 2004; 11×11 Gaussian window, σ 1.5) of each image pair, data range 1."""
    return structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")


class SuperResolutionScores(Metric):
    """Mean PSNR / SSIM of SR and bicubic images against HR; sum states (exact under DDP)."""

    higher_is_better = True  # PSNR and SSIM, of the model and of bicubic

    full_state_update = False

    def __init__(self, space: str = "y", crop_border: int = 0, max_psnr: float = MAX_PSNR) -> None:
        super().__init__()
        if space not in SPACES or crop_border < 0:
            raise ValueError(f"need space in {SPACES} and crop_border >= 0, got {space!r}, {crop_border}")
        self.space, self.crop_border, self.max_psnr = space, crop_border, max_psnr
        for name in ("psnr", "ssim", "psnr_bicubic", "ssim_bicubic"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, sr: Tensor, bicubic: Tensor, hr: Tensor) -> None:
        """One batch of [-1, 1] images of equal size."""
        target = prepare(hr, self.space, self.crop_border)
        for suffix, images in (("", sr), ("_bicubic", bicubic)):
            pred = prepare(images, self.space, self.crop_border)
            for metric, values in (
                ("psnr", psnr_per_image(pred, target, self.max_psnr)),
                ("ssim", ssim_per_image(pred, target)),
            ):
                name = metric + suffix
                setattr(self, name, getattr(self, name) + values.double().sum().to(self.count.device))
        self.count += hr.shape[0]

    def compute(self) -> dict[str, float]:
        n = max(int(self.count), 1)
        return {k: float(getattr(self, k)) / n for k in ("psnr", "ssim", "psnr_bicubic", "ssim_bicubic")}
