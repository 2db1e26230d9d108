"""``lightning-gans upscale --ckpt CKPT --input DIR|IMAGE --out DIR``: super-resolve pictures with an SRGAN /
SRResNet checkpoint (*GAN Projects* ch. 5).

Every image under ``--input`` (a file, or a folder searched recursively for .jpg/.jpeg/.png/.bmp/.webp) is read
at its own size (grey for one-channel models such as the MNIST ones, else RGB), mapped to [-1, 1], upscaled by the
generator (fully convolutional: any size; eval mode, the EMA weights when kept) and written as
``OUT/<relative path>.png`` (scale× larger). ``--bicubic`` also writes ``<name>_bicubic.png`` for comparison.
Unreadable files are skipped and named at the end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datamodules._images import DECODE_ERRORS
from datamodules.image_folder import find_images
from datamodules.super_resolution import to_unit_range
from lightning_gans.metrics.super_resolution import bicubic_upscale
from lightning_gans.outputs import save_png, to_uint8


def _read(path: Path, channels: int) -> torch.Tensor:
    with Image.open(path) as image:
        array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    tensor = torch.from_numpy(array.copy())
    tensor = tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)
    return to_unit_range(tensor)[None]


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    array = to_uint8(image)[0].permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def upscale_images(
    ckpt: str | Path, source: str | Path, out: str | Path, bicubic: bool = False, use_ema: bool = True
) -> tuple[list[Path], list[str]]:
    """Upscale every image of ``source`` into ``out``; returns (written PNGs, names of unreadable files)."""
    from lightning_gans.workflows.sampling import load_module

    module = load_module(ckpt)
    if not callable(getattr(module, "upscale", None)):
        raise ValueError(f"{ckpt} holds a {type(module).__name__}, not a super-resolution model (SRGAN / SRResNet)")
    if not use_ema:
        module.generator_ema = None
    source, out = Path(source), Path(out)
    if source.is_dir():
        files, root = find_images(source), source
        if not files:
            raise FileNotFoundError(f"no image files (.jpg .jpeg .png .bmp .webp) under {source}")
    elif source.is_file():
        files, root = [source], source.parent
    else:
        raise FileNotFoundError(f"--input {source} does not exist (give an image file or a folder of images)")
    channels = int(getattr(module.generator, "channels", 3))
    written, unreadable = [], []
    for path in files:
        try:
            lr = _read(path, channels)
        except DECODE_ERRORS:
            unreadable.append(str(path.relative_to(root)))
            continue
        target = out / path.relative_to(root).with_suffix(".png")
        written.append(save_png(_to_hwc(module.upscale(lr).cpu()), target))
        if bicubic:
            baseline = bicubic_upscale(lr, module.scale)
            written.append(save_png(_to_hwc(baseline), target.with_name(f"{target.stem}_bicubic.png")))
    return written, unreadable
