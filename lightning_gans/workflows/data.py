"""Datamodules from experiment files, and ``lightning-gans prepare cache``: the decoded-image cache built ahead.

    lightning-gans prepare cache --config experiments/dcgan_celeba.yaml [--data_dir D] [--cache_dir C]

builds (or finds) the cache that ``--data.cache=true`` would build at the start of ``fit``, so a cluster job
starts training at once and every DDP rank opens the finished file (:mod:`datamodules._cache`).
"""

from __future__ import annotations

import importlib
import inspect
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from lightning_gans.config_files import compose_file
from lightning_gans.errors import ConfigError


def datamodule_from_config(config: str | Path, **overrides: Any) -> pl.LightningDataModule:
    """The datamodule of an experiment file's composed ``data:`` section, init arguments updated by ``overrides``."""
    data = compose_file(config).get("data")
    if not isinstance(data, dict) or "class_path" not in data:
        raise ConfigError(f"{config} has no data: section with a class_path to read the real images from")
    module_name, _, class_name = str(data["class_path"]).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"{config}: data class_path {data['class_path']!r} cannot be imported") from None
    unknown = sorted(set(overrides) - set(inspect.signature(cls).parameters))
    if unknown:
        raise ConfigError(f"{config}: {class_name} has no option {', '.join(unknown)} (its data: section's class)")
    try:
        return cls(**{**dict(data.get("init_args") or {}), **overrides})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{config}: data: {class_name}: {err}") from None


def build_decoded_cache(config: str | Path, data_dir: str | None = None, cache_dir: str | None = None) -> list[dict]:
    """Build (or open) the decoded caches of ``config``'s training data; one summary dict per cache."""
    overrides: dict[str, Any] = {"cache": True, "cache_dir": cache_dir}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        datamodule = datamodule_from_config(config, **overrides)
    except ConfigError as err:
        if "has no option cache" in str(err):
            raise ConfigError(
                f"{config}: its datamodule has no decoded cache (in-memory or non-image data load at full speed "
                "already); the cache applies to CelebA, image folders, the pix2pix/CycleGAN sets and SR pairs"
            ) from None
        raise
    started = time.monotonic()
    datamodule.prepare_data()
    datamodule.setup("fit")
    seconds = time.monotonic() - started
    rows = []
    for cache in datamodule.decoded_caches():
        size = (cache.folder / "images.u8").stat().st_size
        rows.append({"folder": str(cache.folder), "images": len(cache), "shape": list(cache.shape[1:]),
                     "mib": size / 2**20, "skipped": len(cache.meta.get("skipped", [])),
                     "build_seconds": cache.meta.get("seconds"), "seconds": seconds})  # fmt: skip
    return rows
