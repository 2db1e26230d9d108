"""``lightning-gans upscale``: argparse and printing; the work is :mod:`lightning_gans.workflows.upscale`."""

from __future__ import annotations

import argparse

from datamodules._images import describe_files
from lightning_gans.user_errors import fail
from lightning_gans.workflows.upscale import (
    upscale_images,
)


def main(argv: list[str]) -> None:
    """``lightning-gans upscale --ckpt CKPT --input DIR|IMAGE --out DIR [--bicubic] [--no-ema]``."""
    parser = argparse.ArgumentParser(
        prog="lightning-gans upscale",
        description="Super-resolve images with an SRGAN/SRResNet checkpoint (GAN Projects ch. 5).",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `lightning-gans fit` (srgan_*/srresnet_*)")
    parser.add_argument("--input", required=True, help="an image file or a folder of images (searched recursively)")
    parser.add_argument("--out", required=True, help="output folder for the upscaled PNGs")
    parser.add_argument("--bicubic", action="store_true", help="also write the bicubic upscale (<name>_bicubic.png)")
    parser.add_argument("--no-ema", action="store_true", help="use the raw generator even if EMA is kept")
    args = parser.parse_args(argv)
    try:
        written, unreadable = upscale_images(args.ckpt, args.input, args.out, args.bicubic, not args.no_ema)
    except ValueError as err:
        fail(parser.prog, err, 2)
    print(f"wrote {len(written)} image{'s' if len(written) != 1 else ''} to {args.out}")
    if unreadable:
        print(f"skipped {describe_files(unreadable)}: not readable as images")
