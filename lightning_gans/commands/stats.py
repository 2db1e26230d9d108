"""``lightning-gans stats compute|verify|list``: argparse and printing (the work: ``workflows/stats.py``)."""

from __future__ import annotations

import argparse
import json

from lightning_gans.errors import ConfigError, LightningGANsError
from lightning_gans.evaluation import METRICS, check_metrics
from lightning_gans.metrics.extractors import file_sha256
from lightning_gans.user_errors import fail
from lightning_gans.workflows.stats import StatsSource, compute_file, list_files, markdown_rows, verify


def _source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="experiment file whose data: section gives the real images")
    parser.add_argument("--ckpt", default=None, help="…or a `lightning-gans fit` checkpoint (its datamodule)")
    parser.add_argument("--data_dir", default=None, help="dataset root (default: the config's / $LIGHTNING_GANS_DATA)")
    parser.add_argument("--split", default="test", help="real split (default test)")
    parser.add_argument("--n", type=int, default=10000, help="real images: the first N of the split (default 10000)")
    parser.add_argument("--extractor", default="lenet-mnist", help="registered feature extractor")
    parser.add_argument("--extractor_kwargs", default="{}", help='JSON, e.g. \'{"resize": "clean-bicubic"}\'')
    parser.add_argument(
        "--metrics",
        default="fid,kid,prdc",
        help=f"metrics to serve (subset of {','.join(METRICS)}; default fid,kid,prdc)",
    )
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-gans stats", description="Real-feature statistics as checksummed, shareable .npz files."
    )
    commands = parser.add_subparsers(dest="action", required=True)
    compute = commands.add_parser("compute", help="compute the statistics of a dataset split into one file")
    _source_arguments(compute)
    compute.add_argument("--out", required=True, help="output file (.npz)")
    compute.add_argument("--cache", action="store_true", help="also store it in the reference cache")
    check = commands.add_parser("verify", help="check a file's checksums (and protocol, or a recomputation)")
    check.add_argument("file")
    _source_arguments(check)
    check.add_argument("--recompute", action="store_true", help="recompute from the data and compare the arrays")
    listing = commands.add_parser("list", help="list statistics files (default: the reference cache)")
    listing.add_argument("paths", nargs="*", metavar="FILE_OR_DIR")
    return parser


def _source(args: argparse.Namespace) -> StatsSource:
    """The source options, checked (each bad value: one ConfigError line naming the option)."""
    if args.n < 2 or args.batch_size < 1:
        raise ConfigError(f"need --n >= 2 and --batch_size >= 1, got --n {args.n}, --batch_size {args.batch_size}")
    try:
        kwargs = json.loads(args.extractor_kwargs)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--extractor_kwargs {args.extractor_kwargs!r} is not JSON ({err})") from None
    if not isinstance(kwargs, dict):
        raise ConfigError(f"--extractor_kwargs must be a JSON object, got {args.extractor_kwargs!r}")
    try:
        metrics = check_metrics(args.metrics.split(","))
    except ValueError as err:
        raise ConfigError(f"--metrics: {err}") from None
    return StatsSource(
        args.config, args.ckpt, args.data_dir, args.split, args.n, args.extractor, kwargs, tuple(metrics),
        args.batch_size, args.device,
    )  # fmt: skip


def main(argv: list[str]) -> None:
    """Entry point (errors: one ``lightning-gans stats: error: …`` line on stderr, non-zero exit)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.action == "compute":
            stats_file = compute_file(_source(args), args.out, cache=args.cache)
            print(f"wrote {stats_file.path} (sha256 {file_sha256(stats_file.path)[:16]})")
            print(f"protocol: {json.dumps(stats_file.protocol, sort_keys=True)}")
            print(f"arrays: {', '.join(f'{k} {tuple(v.shape)}' for k, v in stats_file.stats.items())}")
        elif args.action == "verify":
            wants_source = args.config is not None or args.ckpt is not None
            if args.recompute and not wants_source:
                raise ConfigError("--recompute needs --config or --ckpt (where the real images come from)")
            print(verify(args.file, _source(args) if wants_source else None, args.recompute))
        else:
            print(markdown_rows(list_files(args.paths)))
    except (LightningGANsError, ValueError, FileNotFoundError) as err:
        fail("lightning-gans stats", err)
