"""``lightning-gans sample``: argparse and printing; the work is :mod:`lightning_gans.workflows.sampling`."""

from __future__ import annotations

import argparse

from lightning_gans.user_errors import fail
from lightning_gans.workflows.sampling import write_samples


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="lightning-gans sample", description="Draw samples from a checkpoint.")
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `lightning-gans fit`")
    parser.add_argument("--n", type=int, default=64, help="number of samples")
    parser.add_argument("--out", required=True, help="output prefix: writes OUT.npz and OUT.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ema", action="store_true", help="sample the raw generator even if EMA is kept")
    parser.add_argument(
        "--labels",
        default=None,
        help="conditional models: comma-separated classes, e.g. 0,1,2; --n samples of each, one grid row per label",
    )
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    labels = None
    if args.labels is not None:
        try:
            labels = [int(label) for label in args.labels.split(",")]
        except ValueError:
            parser.error(f"--labels must be comma-separated integers such as 0,1,2, got {args.labels!r}")
    try:
        npz, png = write_samples(args.ckpt, args.n, args.out, seed=args.seed, use_ema=not args.no_ema, labels=labels)
    except ValueError as err:  # labels out of range, or labels for an unconditional model
        fail(parser.prog, err, 2)
    print(f"wrote {npz} and {png}")
