"""``lightning-gans eval``: FID / IS / KID of a checkpoint, with the protocol of the training-time callback.

    lightning-gans eval --ckpt runs/dcgan_mnist/<run>/checkpoints/last.ckpt --metrics fid,is,kid --n 10000

The module and its datamodule are rebuilt from the checkpoint (a ``lightning-gans fit`` checkpoint stores the
datamodule's class path and arguments), the evaluation runs in this one process with
:func:`lightning_gans.evaluation.evaluate_image_quality` — the same code, latents (``--seed``) and reference cache
as :class:`~lightning_gans.callbacks.ImageQualityCallback`, so the numbers are comparable — and a markdown table
is printed. When the checkpoint sits in ``<run>/checkpoints/`` the same JSON line (``kind="eval"``) is appended
to ``<run>/metrics.jsonl``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_gans.capabilities import is_conditional
from lightning_gans.evaluation import (
    EvalSettings,
    ModuleSampler,
    QualityResult,
    check_metrics,
    evaluate_image_quality,
    make_protocol,
    metric_names,
)
from lightning_gans.metrics import ReferenceCache, build_extractor
from lightning_gans.outputs import append_metrics


def load_datamodule(ckpt: str | Path, data_dir: str | None = None) -> pl.LightningDataModule:
    """Rebuild the datamodule a ``lightning-gans fit`` checkpoint was trained with (``data_dir`` overrides)."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    hparams = checkpoint.get("datamodule_hyper_parameters") or {}
    class_path = hparams.get("_class_path")
    if not class_path:
        raise ValueError(
            f"{ckpt} stores no datamodule class (it was not written by `lightning-gans fit`): "
            "evaluate it from Python with lightning_gans.evaluation.evaluate_image_quality"
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
    from lightning_gans.workflows.sampling import load_module

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
        net,
        protocol,
        metrics,
        EvalSettings(batch_size, kid_subsets, kid_subset_size, coverage_threshold, seed),
        conditional=is_conditional(module),
        device=target,
        cache=ReferenceCache() if use_cache else None,
        progress=progress,
    )
    names = metric_names(metrics, net.name, n)
    return {names[k]: v for k, v in result.values.items()}, protocol, result


def record_evaluation(
    ckpt: str | Path,
    values: dict[str, float],
    protocol: Mapping[str, Any],
    result: QualityResult,
    metrics: list[str],
    *,
    seed: int,
    kid_subsets: int,
    kid_subset_size: int,
    coverage_threshold: float,
) -> Path | None:
    """Append an ``eval`` line to the checkpoint's run ``metrics.jsonl`` (None when it is not in a run dir)."""
    run = run_dir_of(ckpt)
    if run is None:
        return None
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    # append_metrics' row format ({"epoch", "step", **meta, **metrics}) for a checkpoint instead of a trainer
    shim = SimpleNamespace(
        is_global_zero=True,
        current_epoch=checkpoint.get("epoch"),
        global_step=checkpoint.get("global_step"),
        default_root_dir=str(run),
    )
    meta = {"protocol": dict(protocol), "real_statistics": result.real_source, "seed": seed, "ckpt": str(ckpt)}
    if "kid" in metrics:
        meta["kid_settings"] = {"subsets": kid_subsets, "subset_size": kid_subset_size}
    if {"coverage", "class_kl"} & set(metrics):
        meta["coverage_threshold"] = coverage_threshold
    append_metrics(shim, values, kind="eval", wall_time_s=round(result.wall_time_s, 3), **meta)
    return run / "metrics.jsonl"
