"""``lightning-gans eval``: argparse and printing; the work is :mod:`lightning_gans.workflows.evaluate`."""

from __future__ import annotations

import argparse
import json

from lightning_gans.evaluation import (
    METRICS,
    check_metrics,
)
from lightning_gans.workflows.evaluate import (
    evaluate_checkpoint,
    markdown_table,
    record_evaluation,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-gans eval", description="FID/IS/KID of a checkpoint (exact N, cached reference statistics)."
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `lightning-gans fit`")
    parser.add_argument("--metrics", default="fid,is", help=f"comma-separated subset of {','.join(METRICS)}")
    parser.add_argument("--n", type=int, default=10000, help="real and fake samples (default 10000)")
    parser.add_argument("--extractor", default="lenet-mnist", help="registered feature extractor")
    parser.add_argument("--extractor_kwargs", default="{}", help='JSON, e.g. \'{"weights_path": "/x/lenet.pt"}\'')
    parser.add_argument("--split", default="test", help="real split (default test)")
    parser.add_argument("--data_dir", default=None, help="dataset root (default: as trained / $LIGHTNING_GANS_DATA)")
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="latent seed (the callback's default is 0 too)")
    parser.add_argument("--kid_subsets", type=int, default=100, help="KID subsets (default 100)")
    parser.add_argument("--kid_subset_size", type=int, default=1000, help="KID subset size (default 1000)")
    parser.add_argument(
        "--coverage_threshold", type=float, default=0.05, help="share of fakes a class needs to count as covered"
    )
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    parser.add_argument("--no-cache", action="store_true", help="recompute the real statistics (and re-cache them)")
    parser.add_argument("--no-ema", action="store_true", help="evaluate the raw generator even if EMA is kept")
    return parser


def main(argv: list[str]) -> None:
    """``lightning-gans eval --ckpt PATH [--metrics fid,is,kid] [--n 10000] [--extractor lenet-mnist] …``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.n < 2 or args.batch_size < 1:
        parser.error(f"need --n >= 2 and --batch_size >= 1, got {args.n}, {args.batch_size}")
    try:
        metrics = check_metrics(args.metrics.split(","))
        extractor_kwargs = json.loads(args.extractor_kwargs)
    except (ValueError, json.JSONDecodeError) as err:
        parser.error(str(err))
    try:
        values, protocol, result = evaluate_checkpoint(
            args.ckpt,
            metrics,
            args.n,
            extractor=args.extractor,
            extractor_kwargs=extractor_kwargs,
            split=args.split,
            data_dir=args.data_dir,
            batch_size=args.batch_size,
            seed=args.seed,
            use_cache=not args.no_cache,
            use_ema=not args.no_ema,
            device=args.device,
            kid_subsets=args.kid_subsets,
            kid_subset_size=args.kid_subset_size,
            coverage_threshold=args.coverage_threshold,
        )
    except ValueError as err:  # n too large, IS without logits, unknown extractor, foreign checkpoint
        parser.error(str(err))
    print(markdown_table(values, protocol))
    print(f"\n{result.wall_time_s:.1f} s; real statistics: {result.real_source}")
    settings = {"kid_subsets": args.kid_subsets, "kid_subset_size": args.kid_subset_size}
    settings["coverage_threshold"] = args.coverage_threshold
    path = record_evaluation(args.ckpt, values, protocol, result, metrics, seed=args.seed, **settings)
    if path is not None:
        print(f"appended to {path}")
