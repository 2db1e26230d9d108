"""``lightning-gans translate``: argparse and printing; the work is :mod:`lightning_gans.workflows.translate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datamodules._images import describe_files
from lightning_gans.user_errors import fail
from lightning_gans.workflows.translate import (
    DIRECTIONS,
    FORMATS,
    translate_images,
)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="lightning-gans translate",
        description="Translate images A→B or B→A with a CycleGAN/DiscoGAN checkpoint (outputs keep the input names).",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `lightning-gans fit`")
    parser.add_argument("--input", required=True, type=Path, help="an image, or a folder of images (not recursive)")
    parser.add_argument("--direction", required=True, choices=DIRECTIONS, help="AtoB (G_AB) or BtoA (G_BA)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--side_by_side", action="store_true", help="also write OUT/side_by_side/<name>: input|output")
    parser.add_argument("--half", choices=("A", "B"), default=None, help="pix2pix side-by-side inputs: left A, right B")
    parser.add_argument("--image_size", type=int, default=None, help="override the checkpoint's image size")
    parser.add_argument("--format", choices=FORMATS, default="png", help="output format (default png, lossless)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, …")
    args = parser.parse_args(argv)
    try:
        report = translate_images(
            args.ckpt, args.input, args.direction, args.out, args.batch_size, args.side_by_side, args.half,
            args.image_size, args.format, args.device,
        )  # fmt: skip
    except ValueError as err:
        fail(parser.prog, err, 2)
    extra = f" (input|output pairs in {args.out / 'side_by_side'})" if args.side_by_side else ""
    print(f"translated {len(report['written'])} images {args.direction} into {args.out}{extra}")
    if report["unreadable"]:
        print(f"skipped {describe_files(report['unreadable'])}: not readable as images", file=sys.stderr)
