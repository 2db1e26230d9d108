"""How an extractor that runs at a fixed resolution gets its input there — part of the evaluation protocol.

Parmar et al. 2022 ("On Aliased Resizing and Surprising Subtleties in GAN Evaluation", clean-fid) measured FID
differences of up to 6.5 points on FFHQ between resize implementations, so the resize is recorded in every
protocol (``EvalProtocol.resize``) and scores under different resizes are never ranked together.

* ``tf1-bilinear`` — torch-fidelity's TF1-compatible bilinear interpolation without antialiasing, inside its
  Inception module: the resize of the original TF FID/IS code (Heusel et al. 2017), the default.
* ``clean-bicubic`` — clean-fid's "clean" mode: each channel as a float32 PIL image (mode ``F``), resized with
  PIL's bicubic filter (antialiased when downsampling), clipped to [0, 255]. torch-fidelity's network accepts uint8
  only, so the result is rounded to uint8 before it (≤ 0.5 grey levels from clean-fid, which feeds floats).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

RESIZES = ("tf1-bilinear", "clean-bicubic")


def check_resize(resize: str) -> str:
    """``resize`` if it names a resize policy, else one clear ``ValueError``."""
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {', '.join(RESIZES)}, got {resize!r}")
    return resize


def pil_bicubic(images: Tensor, size: int) -> Tensor:
    """uint8 N×C×H×W → float32 N×C×size×size in [0, 255]: per channel, PIL bicubic on float32 (mode ``F``)."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(f"pil_bicubic expects uint8 N×C×H×W images, got {images.dtype} {tuple(images.shape)}")
    array = images.cpu().numpy().astype(np.float32)
    out = np.empty((*array.shape[:2], size, size), dtype=np.float32)
    for i, image in enumerate(array):
        for c, channel in enumerate(image):
            resized = Image.fromarray(channel, mode="F").resize((size, size), resample=Image.Resampling.BICUBIC)
            out[i, c] = np.asarray(resized)
    return torch.from_numpy(np.clip(out, 0.0, 255.0))


def clean_resize_uint8(images: Tensor, size: int) -> Tensor:
    """:func:`pil_bicubic`, rounded to uint8 (what torch-fidelity's Inception accepts), on the input's device."""
    return pil_bicubic(images, size).round().to(torch.uint8).to(images.device)
