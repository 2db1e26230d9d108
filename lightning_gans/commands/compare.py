"""``lightning-gans compare``: argparse and printing; the work is :mod:`lightning_gans.workflows.compare`."""

from __future__ import annotations

import argparse

from lightning_gans.errors import CompareError  # noqa: F401 - re-exported (old import path)
from lightning_gans.user_errors import fail
from lightning_gans.workflows.compare import (
    LABELS,
    compare,
)


def main(argv: list[str]) -> None:
    """Entry point of ``lightning-gans compare`` (errors: one line on stderr, exit status 1)."""
    parser = argparse.ArgumentParser(
        prog="lightning-gans compare", description="Rank runs by FID/KID/IS, one table per evaluation protocol."
    )
    parser.add_argument("runs", nargs="*", metavar="RUN_OR_DIR", help="run dirs or parents of run dirs (default: runs)")
    parser.add_argument("--metric", default="fid", choices=sorted(LABELS), help="ranking metric (default: fid)")
    parser.add_argument("--out", default="compare", help="output prefix: writes OUT.md and OUT.png")
    parser.add_argument("--wandb-project", default=None, help="also read runs from this W&B project (online only)")
    parser.add_argument("--log-y", action="store_true", help="log-scale y axis in the plot")
    args = parser.parse_args(argv)
    paths = args.runs or ([] if args.wandb_project else ["runs"])
    try:
        markdown, md_path, png_path = compare(paths, args.metric, args.out, args.wandb_project, args.log_y)
    except CompareError as err:
        fail("lightning-gans compare", err, 1)
    print(markdown)
    print(f"wrote {md_path} and {png_path}")
