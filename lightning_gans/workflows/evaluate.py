"""``lightning-gans eval``: FID / IS / KID / PRDC / intra-FID of a checkpoint, with the protocol of the
training-time callback (``--repeats R``: mean ± std over R disjoint fake sets; ``--reference FILE``: real statistics
from a ``lightning-gans stats`` file of the same protocol).

    lightning-gans eval --ckpt runs/dcgan_mnist/<run>/checkpoints/last.ckpt --metrics fid,kid,prdc --repeats 5

The module and its datamodule are rebuilt from the checkpoint (a ``lightning-gans fit`` checkpoint stores the
datamodule's class path and arguments), the evaluation runs in this one process with
:func:`lightning_gans.evaluation.evaluate_image_quality` — the same code, latents (``--seed``) and reference cache
as :class:`~lightning_gans.callbacks.ImageQualityCallback`, so the numbers are comparable — and a markdown table
is printed. When the checkpoint sits in ``<run>/checkpoints/`` the same JSON line (``kind="eval"``) is appended
to ``<run>/metrics.jsonl``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_gans.capabilities import is_conditional
from lightning_gans.checkpoints import read_checkpoint
from lightning_gans.evaluation import (
    EvalProtocol,
    EvalSettings,
    ModuleSampler,
    QualityResult,
    check_metrics,
    evaluate_image_quality,
    evaluation_metadata,
    load_reference,
    make_protocol,
    metric_names,
)
from lightning_gans.metrics import ReferenceCache, build_extractor
from lightning_gans.outputs import append_metrics


def load_datamodule(ckpt: str | Path, data_dir: str | None = None) -> pl.LightningDataModule:
    """Rebuild the datamodule a ``lightning-gans fit`` checkpoint was trained with (``data_dir`` overrides)."""
    checkpoint = read_checkpoint(ckpt)
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
    """``| metric | value | protocol |`` rows, one per logged name; a value with a spread (``fid_std/…`` from
    repeats, ``kid_std/…``) is shown as ``mean ± std`` in its metric's row."""
    lines = ["| metric | value | protocol |", "|---|---:|---|"]
    for name, value in values.items():
        key, _, suffix = name.partition("/")
        if key.endswith("_std") and f"{key[:-4]}/{suffix}" in values:
            continue
        spread = values.get(f"{key}_std/{suffix}")
        cell = f"{value:.6g}" + (f" ± {spread:.2g}" if spread is not None else "")
        lines.append(f"| {name} | {cell} | {describe(protocol)} |")
    return "\n".join(lines)


def evaluate_checkpoint(
    ckpt: str | Path,
    metrics: list[str],
    n: int,
    extractor: str = "lenet-mnist",
    extractor_kwargs: dict | None = None,
    split: str = "test",
    data_dir: str | None = None,
    settings: EvalSettings = EvalSettings(),
    use_cache: bool = True,
    use_ema: bool = True,
    device: str | None = None,
    progress: bool = True,
    reference: str | Path | None = None,
) -> tuple[dict[str, float], EvalProtocol, QualityResult]:
    """Evaluate a checkpoint in this process: (values by logged name, protocol, raw result). ``reference``: a
    stats file (``lightning-gans stats compute``) used for the real side, refused unless its protocol is this one."""
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
    stats = load_reference(reference, protocol, metrics) if reference is not None else None
    result = evaluate_image_quality(
        ModuleSampler(module, seed=settings.seed),
        images,
        labels,
        net,
        protocol,
        metrics,
        settings,
        conditional=is_conditional(module),
        device=target,
        reference=stats,
        cache=ReferenceCache() if use_cache and stats is None else None,
        progress=progress,
    )
    names = metric_names(metrics, net.name, n, settings.repeats)
    return {names[k]: v for k, v in result.values.items()}, protocol, result


def record_evaluation(
    ckpt: str | Path,
    values: dict[str, float],
    protocol: EvalProtocol,
    result: QualityResult,
    metrics: list[str],
    settings: EvalSettings,
) -> Path | None:
    """Append an ``eval`` line to the checkpoint's run ``metrics.jsonl`` (None when it is not in a run dir)."""
    run = run_dir_of(ckpt)
    if run is None:
        return None
    checkpoint = read_checkpoint(ckpt)
    # append_metrics' row format ({"epoch", "step", **meta, **metrics}) for a checkpoint instead of a trainer
    shim = SimpleNamespace(
        is_global_zero=True,
        current_epoch=checkpoint.get("epoch"),
        global_step=checkpoint.get("global_step"),
        default_root_dir=str(run),
    )
    meta = {**evaluation_metadata(protocol, result, metrics, settings), "ckpt": str(ckpt)}
    append_metrics(shim, values, kind="eval", wall_time_s=round(result.wall_time_s, 3), **meta)
    return run / "metrics.jsonl"
