"""``lightning-gans age``: argparse and printing; the work is :mod:`lightning_gans.workflows.age`."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lightning_gans.user_errors import fail
from lightning_gans.workflows.age import (
    write_age_grid,
)


def main(argv: list[str]) -> None:
    """``lightning-gans age --ckpt CKPT --input FACE.jpg [FACE2.jpg …] --out grid.png``."""
    parser = argparse.ArgumentParser(
        prog="lightning-gans age",
        description="Render faces at all six age bins with an Age-cGAN checkpoint (GAN Projects ch. 3).",
    )
    parser.add_argument("--ckpt", required=True, help="Age-cGAN checkpoint of stage encoder or identity")
    parser.add_argument("--input", required=True, nargs="+", type=Path, help="face picture(s)")
    parser.add_argument("--out", required=True, help="output PNG: one row per face, columns = ages 0-18 … 60+")
    parser.add_argument("--latent-steps", type=int, default=0, help="per-image latent optimisation steps (paper)")
    parser.add_argument("--source-age", type=int, default=None, choices=range(6), help="age bin of the inputs")
    parser.add_argument("--interpolation", default="nearest", choices=["nearest", "bilinear", "bicubic"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.latent_steps < 0:
        parser.error(f"--latent-steps must be >= 0, got {args.latent_steps}")
    torch.manual_seed(args.seed)
    try:
        png = write_age_grid(args.ckpt, args.input, args.out, args.latent_steps, args.source_age, args.interpolation)
    except ValueError as err:
        fail(parser.prog, err, 2)
    print(f"wrote {png} ({len(args.input)} face(s) × 6 ages: 0-18, 19-29, 30-39, 40-49, 50-59, 60+)")
