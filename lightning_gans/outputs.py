"""Run-directory outputs shared by callbacks: PNG images, image logging to every logger, metrics.jsonl.

A run directory is ``trainer.default_root_dir`` (the CLI sets it to ``runs/<experiment>/<timestamp>/``).
Only global rank 0 writes files; every function here is safe to call on all ranks.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image

from lightning_gans.compat import logged_step


def run_dir(trainer: pl.Trainer) -> Path:
    """The run directory of ``trainer`` (created on first use)."""
    path = Path(trainer.default_root_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images (N×C×H×W) → uint8 in [0, 255]. W&B renders float images black, so log these."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """[-1, 1] images N×C×H×W → one uint8 H×W×3 grid (grey images repeated to RGB)."""
    import torchvision

    nrow = nrow or max(1, int(math.ceil(math.sqrt(images.shape[0]))))
    grid = torchvision.utils.make_grid(to_uint8(images), nrow=nrow, padding=padding, pad_value=255)
    return grid.permute(1, 2, 0).numpy()


def save_png(image: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def log_image(trainer: pl.Trainer, key: str, image: np.ndarray, filename: str | None = None) -> Path | None:
    """Save a uint8 H×W×3 image under ``<run_dir>/samples/`` and send it to every image-capable logger.

    ``filename`` defaults to ``<key>_epoch<NNNN>.png``. Returns the PNG path on rank 0, else None.
    """
    if not trainer.is_global_zero:
        return None
    if image.dtype != np.uint8:
        raise TypeError(f"log_image expects uint8 images (W&B renders floats black), got {image.dtype}")
    name = filename or f"{key.replace('/', '_')}_epoch{trainer.current_epoch:04d}.png"
    path = save_png(image, run_dir(trainer) / "samples" / name)
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):  # WandbLogger
            logger.log_image(key=key, images=[image], step=logged_step(trainer))
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def append_metrics(trainer: pl.Trainer, metrics: dict[str, Any], **meta: Any) -> None:
    """Append one JSON line ``{"epoch", "step", **meta, **metrics}`` to ``<run_dir>/metrics.jsonl`` (rank 0)."""
    if not trainer.is_global_zero:
        return
    row = {"epoch": trainer.current_epoch, "step": trainer.global_step, **meta}
    row.update({k: _jsonable(v) for k, v in metrics.items()})
    with open(run_dir(trainer) / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")


def higher_is_better(metric_class: type, output: str | None = None) -> bool | None:
    """Whether higher is better for a metric object's output: ``output_higher_is_better[output]`` (metrics with
    several outputs) or torchmetrics' ``higher_is_better``; None when unknown."""
    return getattr(metric_class, "output_higher_is_better", {}).get(output, metric_class.higher_is_better)


def summary_direction(metric_class: type, output: str | None = None) -> str | None:
    """The W&B summary of a metric object's output: "max" when higher is better, "min" when lower, else None."""
    better = higher_is_better(metric_class, output)
    return None if better is None else ("max" if better else "min")


def define_wandb_summaries(trainer: pl.Trainer, summaries: dict[str, str], owner: str) -> None:
    """Declare W&B run summaries (``{metric name: "min" | "max"}``) on every active ``WandbLogger``, so the run
    table shows the best value rather than the last; a disabled or odd W&B run only logs a message (``owner``)."""
    from lightning.pytorch.loggers import WandbLogger
    from lightning.pytorch.utilities import rank_zero_info

    for logger in trainer.loggers:
        if not isinstance(logger, WandbLogger):
            continue
        try:
            for name, summary in summaries.items():
                logger.experiment.define_metric(name, summary=summary)
        except Exception as err:  # a disabled/odd W&B run must not break training
            rank_zero_info(f"{owner}: W&B define_metric failed: {err}")


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` a temporary file beside ``path``, then rename it over ``path``: concurrent writers (several
    ranks) and a killed process never leave a torn file under the final name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
