"""``lightning-gans eval``: FID / IS / KID of a checkpoint, with the protocol of the training-time callback.

    lightning-gans eval --ckpt runs/dcgan_mnist/<run>/checkpoints/last.ckpt --metrics fid,is,kid --n 10000

The module and its datamodule are rebuilt from the checkpoint (a ``lightning-gans fit`` checkpoint stores the
datamodule's class path and arguments), the evaluation runs in this one process with
:func:`lightning_gans.quality.evaluate_image_quality` — the same code, latents (``--seed``) and reference cache
as :class:`~lightning_gans.callbacks.ImageQualityCallback`, so the numbers are comparable — and a markdown table
is printed. When the checkpoint sits in ``<run>/checkpoints/`` the same JSON line (``kind="eval"``) is appended
to ``<run>/metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_gans.metrics import ReferenceCache, build_extractor
from lightning_gans.outputs import append_metrics
from lightning_gans.quality import (
    METRICS,
    ModuleSampler,
    QualityResult,
    check_metrics,
    evaluate_image_quality,
    make_protocol,
    metric_names,
)


def load_datamodule(ckpt: str | Path, data_dir: str | None = None) -> pl.LightningDataModule:
    """Rebuild the datamodule a ``lightning-gans fit`` checkpoint was trained with (``data_dir`` overrides)."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    hparams = checkpoint.get("datamodule_hyper_parameters") or {}
    class_path = hparams.get("_class_path")
    if not class_path:
        raise ValueError(
            f"{ckpt} stores no datamodule class (it was not written by `lightning-gans fit`): "
            "evaluate it from Python with lightning_gans.quality.evaluate_image_quality"
        )
    # Lightning only instantiates classes that are already imported (its guard against code in checkpoints);
    # the user vouches for this checkpoint (its weights are unpickled too), so import the module it names.
    importlib.import_module(class_path.rsplit(".", 1)[0])
    overrides = {"data_dir": data_dir} if data_dir else {}
    return pl.LightningDataModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False, **overrides)


def run_dir_of(ckpt: str | Path) -> Path | None:
    """``<run>`` for ``<run>/checkpoints/<name>.ckpt``, else None."""
    path = Path(ckpt).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else None


def describe(protocol: dict[str, Any]) -> str:
    """One-line protocol for tables: ``mnist/test n=10000 lenet-mnist@1a2b3c 28px resize=none``."""
    return (
        f"{protocol['dataset']}/{protocol['split']} n={protocol['n']} {protocol['extractor']}@{protocol['weights']} "
        f"{protocol['image_size']}px resize={protocol['resize']}"
    )


def markdown_table(values: dict[str, float], protocol: dict[str, Any]) -> str:
    """``| metric | value | protocol |`` rows, one per logged name."""
    lines = ["| metric | value | protocol |", "|---|---:|---|"]
    lines += [f"| {name} | {value:.6g} | {describe(protocol)} |" for name, value in values.items()]
    return "\n".join(lines)


def evaluate_checkpoint(
    ckpt: str | Path,
    metrics: list[str],
    n: int,
    extractor: str = "lenet-mnist",
    extractor_kwargs: dict | None = None,
    split: str = "test",
    data_dir: str | None = None,
    batch_size: int = 500,
    seed: int = 0,
    use_cache: bool = True,
    use_ema: bool = True,
    device: str | None = None,
    progress: bool = True,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    coverage_threshold: float = 0.05,
) -> tuple[dict[str, float], dict[str, Any], QualityResult]:
    """Evaluate a checkpoint in this process: (values by logged name, protocol, raw result)."""
    from lightning_gans.sampling import load_module

    metrics = check_metrics(metrics)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    module = load_module(ckpt).to(target)
    if not use_ema:
        module.generator_ema = None
    datamodule = load_datamodule(ckpt, data_dir)
    datamodule.prepare_data()
    images, labels = datamodule.real_images(split)
    if n > len(images):
        raise ValueError(f"--n {n} but the {split} split of {datamodule.name} has {len(images)} images: lower --n")
    net = build_extractor(extractor, **(extractor_kwargs or {})).to(target)
    protocol = make_protocol(getattr(datamodule, "name", type(datamodule).__name__), split, n, net)
    result = evaluate_image_quality(
        ModuleSampler(module, seed=seed),
        images,
        labels,
        n,
        net,
        metrics,
        device=target,
        batch_size=batch_size,
        conditional=bool(getattr(module, "conditional", False)),
        cache=ReferenceCache() if use_cache else None,
        protocol=protocol,
        progress=progress,
        seed=seed,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        coverage_threshold=coverage_threshold,
    )
    names = metric_names(metrics, net.name, n)
    return {names[k]: v for k, v in result.values.items()}, protocol, result


def eval_command(argv: list[str]) -> None:
    """``lightning-gans eval --ckpt PATH [--metrics fid,is,kid] [--n 10000] [--extractor lenet-mnist] …``."""
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
    run = run_dir_of(args.ckpt)
    if run is not None:
        checkpoint = torch.load(args.ckpt, map_location="cpu", weights_only=False)
        # append_metrics' row format ({"epoch", "step", **meta, **metrics}) for a checkpoint instead of a trainer
        shim = SimpleNamespace(
            is_global_zero=True,
            current_epoch=checkpoint.get("epoch"),
            global_step=checkpoint.get("global_step"),
            default_root_dir=str(run),
        )
        meta = {"protocol": protocol, "real_statistics": result.real_source, "seed": args.seed, "ckpt": args.ckpt}
        if "kid" in metrics:
            meta["kid_settings"] = {"subsets": args.kid_subsets, "subset_size": args.kid_subset_size}
        if {"coverage", "class_kl"} & set(metrics):
            meta["coverage_threshold"] = args.coverage_threshold
        append_metrics(shim, values, kind="eval", wall_time_s=round(result.wall_time_s, 3), **meta)
        print(f"appended to {run / 'metrics.jsonl'}")
