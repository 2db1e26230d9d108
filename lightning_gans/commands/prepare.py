"""``lightning-gans prepare``: argparse and printing; the work is :mod:`lightning_gans.workflows.prepare`."""

from __future__ import annotations

import argparse
from pathlib import Path

from datamodules._images import describe_files
from lightning_gans.errors import LightningGANsError, MissingPackageError
from lightning_gans.user_errors import fail
from lightning_gans.workflows.data import build_decoded_cache
from lightning_gans.workflows.prepare import (
    crop_anime_faces,
    split_pix2pix,
)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="lightning-gans prepare", description="Prepare a training image folder.")
    tasks = parser.add_subparsers(dest="task", required=True)
    anime = tasks.add_parser(
        "anime-faces",
        help="crop the first anime face of every picture to 64×64 PNGs (GAN Projects ch. 4; needs animeface)",
    )
    anime.add_argument("src", type=Path, help="folder of downloaded pictures (searched recursively)")
    anime.add_argument("dst", type=Path, help="output folder of face crops (created)")
    anime.add_argument("--size", type=int, default=64, help="output side in pixels (default 64, the seed's)")
    split = tasks.add_parser(
        "pix2pix-split",
        help="cut pix2pix side-by-side JPGs (SRC/train, SRC/val) into DST/trainA, trainB, testA, testB",
    )
    split.add_argument("src", type=Path, help="pix2pix dataset folder holding train/ (and val/)")
    split.add_argument("dst", type=Path, help="output folder for the CycleGAN layout (created)")
    cache = tasks.add_parser(
        "cache", help="decode an experiment's training images once into the decoded-image cache (--data.cache=true)"
    )
    cache.add_argument("--config", required=True, help="experiment file (its data: section)")
    cache.add_argument("--data_dir", default=None, help="dataset root (default: the config's / $LIGHTNING_GANS_DATA)")
    cache.add_argument("--cache_dir", default=None, help="cache folder (default $LIGHTNING_GANS_CACHE/decoded)")
    args = parser.parse_args(argv)
    if args.task == "cache":
        _cache(args)
        return
    if not args.src.is_dir():
        parser.error(f"SRC {args.src} is not a folder")
    if args.task == "pix2pix-split":
        try:
            counts = split_pix2pix(args.src, args.dst)
        except FileNotFoundError as err:
            fail("lightning-gans prepare", err, 1)
        print(f"wrote {', '.join(f'{n} {k}' for k, n in counts.items())} to {args.dst}")
        return
    try:
        report = crop_anime_faces(args.src, args.dst, size=args.size)
    except (MissingPackageError, FileNotFoundError) as err:
        fail("lightning-gans prepare", err, 1)
    print(f"wrote {report['saved']} face crops ({args.size}×{args.size} PNG) to {args.dst}")
    for key, what in (("no_face", "no face detected"), ("unreadable", "unreadable")):
        if report[key]:
            print(f"skipped {describe_files(report[key])}: {what}")


def _cache(args: argparse.Namespace) -> None:
    try:
        rows = build_decoded_cache(args.config, args.data_dir, args.cache_dir)
    except (LightningGANsError, ValueError, OSError) as err:
        fail("lightning-gans prepare cache", err)
    for row in rows:
        print(
            f"decoded cache {row['folder']}: {row['images']} images of {'×'.join(map(str, row['shape']))} uint8, "
            f"{row['mib']:.1f} MiB, built in {row['build_seconds']:.1f} s"
            + (f", {row['skipped']} unreadable files replaced by their next image" if row["skipped"] else "")
        )
    print(f"train with --data.cache=true{' --data.cache_dir=' + args.cache_dir if args.cache_dir else ''}")
