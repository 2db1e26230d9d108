"""``lightning-gans train-extractor``: argparse only; the work is :mod:`lightning_gans.workflows.extractor`."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lightning_gans.metrics.lenet import NAME
from lightning_gans.workflows.extractor import train_lenet_mnist


def main(argv: list[str]) -> None:
    """``lightning-gans train-extractor mnist [--data_dir DIR] [--epochs N] [--out FILE]``."""
    parser = argparse.ArgumentParser(
        prog="lightning-gans train-extractor",
        description=f"Train the {NAME} feature extractor used for MNIST FID/IS/KID and write it to the cache.",
    )
    parser.add_argument("dataset", choices=["mnist"], help="which extractor to train (mnist → lenet-mnist)")
    parser.add_argument("--data_dir", default=None, help="folder holding MNIST/raw/ (default: $LIGHTNING_GANS_DATA)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (default 2)")
    parser.add_argument("--out", type=Path, default=None, help=f"output file (default <cache>/extractors/{NAME}.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_lenet_mnist(data_dir=args.data_dir, out=args.out, epochs=args.epochs, seed=args.seed)
