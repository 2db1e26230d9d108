"""``lightning-gans interpolate``: argparse and printing; the work is :mod:`lightning_gans.workflows.interpolation`."""

from __future__ import annotations

import argparse

from lightning_gans.user_errors import fail
from lightning_gans.workflows.interpolation import (
    write_interpolation,
)


def main(argv: list[str]) -> None:
    """``lightning-gans interpolate --ckpt CKPT [--steps 10] [--rows 4] [--mode slerp|linear] [--out DIR]``."""
    parser = argparse.ArgumentParser(
        prog="lightning-gans interpolate",
        description="Latent interpolation strips (PNG) and a GIF from a checkpoint (GANs in Action ch. 6.1).",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `lightning-gans fit`")
    parser.add_argument("--steps", type=int, default=10, help="images per strip, both ends included")
    parser.add_argument("--rows", type=int, default=4, help="number of strips (latent pairs)")
    parser.add_argument("--mode", default="slerp", choices=["slerp", "linear"], help="spherical or straight line")
    parser.add_argument("--out", default=None, help="output folder (default: <run>/interpolation)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ema", action="store_true", help="use the raw generator even if EMA is kept")
    args = parser.parse_args(argv)
    try:
        png, gif = write_interpolation(
            args.ckpt, args.steps, args.out, rows=args.rows, mode=args.mode, seed=args.seed, use_ema=not args.no_ema
        )
    except ValueError as err:
        fail(parser.prog, err, 2)
    print(f"wrote {png} and {gif}")
