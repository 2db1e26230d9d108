"""``lightning-gans eval``: argparse and printing; the work is :mod:`lightning_gans.workflows.evaluate`."""

from __future__ import annotations

import argparse
import json

from lightning_gans.errors import ReferenceStatsError
from lightning_gans.evaluation import (
    METRICS,
    EvalSettings,
    check_metrics,
)
from lightning_gans.user_errors import fail
from lightning_gans.workflows.evaluate import (
    evaluate_checkpoint,
    markdown_table,
    record_evaluation,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-gans eval",
        description="FID/IS/KID/PRDC/intra-FID of a checkpoint (exact N, cached or given reference statistics).",
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
    parser.add_argument("--prdc_k", type=int, default=5, help="PRDC's k-th neighbour (default 5, Naeem et al. 2020)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="disjoint fake sets of N: report mean ± std over them (default 1)"
    )
    parser.add_argument(
        "--reference", default=None, help="real statistics file from `lightning-gans stats compute` (same protocol)"
    )
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    parser.add_argument("--no-cache", action="store_true", help="recompute the real statistics (and re-cache them)")
    parser.add_argument("--no-ema", action="store_true", help="evaluate the raw generator even if EMA is kept")
    return parser


def main(argv: list[str]) -> None:
    """``lightning-gans eval --ckpt PATH [--metrics fid,is,kid,prdc] [--n 10000] [--repeats 5] …``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error(f"need --n >= 2, got {args.n}")
    try:
        metrics = check_metrics(args.metrics.split(","))
        extractor_kwargs = json.loads(args.extractor_kwargs)
        settings = EvalSettings(
            args.batch_size,
            args.kid_subsets,
            args.kid_subset_size,
            args.coverage_threshold,
            args.seed,
            args.prdc_k,
            args.repeats,
        )
    except (ValueError, json.JSONDecodeError) as err:
        fail(parser.prog, err, 2)
    try:
        values, protocol, result = evaluate_checkpoint(
            args.ckpt,
            metrics,
            args.n,
            extractor=args.extractor,
            extractor_kwargs=extractor_kwargs,
            split=args.split,
            data_dir=args.data_dir,
            settings=settings,
            use_cache=not args.no_cache,
            use_ema=not args.no_ema,
            device=args.device,
            reference=args.reference,
        )
    except ReferenceStatsError:
        raise  # printed as one line by the CLI
    except ValueError as err:  # n too large, IS without logits, unknown extractor, foreign checkpoint
        fail(parser.prog, err, 2)
    print(markdown_table(values, dict(protocol)))
    if "intra_fid_per_class" in result.details:
        per_class = ", ".join(f"{c}: {v:.4g}" for c, v in enumerate(result.details["intra_fid_per_class"]))
        print(f"\nintra-FID per class: {per_class}")
    print(f"\n{result.wall_time_s:.1f} s; real statistics: {result.real_source}")
    path = record_evaluation(args.ckpt, values, protocol, result, metrics, settings)
    if path is not None:
        print(f"appended to {path}")
