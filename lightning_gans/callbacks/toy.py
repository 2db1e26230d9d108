"""Mode-coverage metrics and scatter plots for the 2-D mixture benchmarks (``datamodules.toy``)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from datamodules.toy import MIXTURES, scatter_plot, toy_metrics
from lightning_gans.callbacks._timing import epoch_due
from lightning_gans.capabilities import is_sampler
from lightning_gans.outputs import append_metrics, log_image

REAL_POINTS_SHOWN = 2500


class ToyMetricsCallback(Callback):
    """Every ``every_n_epochs`` training epochs (and always after the last one) draw
    ``pl_module.sample(num_samples)`` (N×2), compute :func:`datamodules.toy.toy_metrics` and log
    ``toy/modes_covered`` and ``toy/high_quality_pct`` (Lightning loggers + ``metrics.jsonl``) plus a
    ``toy/scatter`` plot. Needs ``trainer.datamodule.name`` in {"ring8", "grid25"}.

    Every rank samples and computes (no collectives, so no DDP deadlock); only global rank 0 plots and writes.
    ``last_metrics`` holds the latest ``toy_metrics`` dict (``modes_covered``, ``num_modes``,
    ``high_quality_pct``) plus ``epoch``.
    """

    def __init__(self, num_samples: int = 2500, every_n_epochs: int = 1) -> None:
        super().__init__()
        if num_samples < 1 or every_n_epochs < 1:
            raise ValueError("num_samples and every_n_epochs must be >= 1")
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.last_metrics: dict[str, Any] = {}
        self._real: Tensor | None = None

    @staticmethod
    def _dataset_name(trainer: pl.Trainer) -> str:
        name = getattr(trainer.datamodule, "name", None)
        if name not in MIXTURES:
            raise RuntimeError(
                f"ToyMetricsCallback needs a toy datamodule with .name in {sorted(MIXTURES)}, "
                f"got datamodule {type(trainer.datamodule).__name__} with name={name!r}"
            )
        return name

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._dataset_name(trainer)  # fail before training, not after the first epoch
            if not is_sampler(pl_module):
                raise RuntimeError(f"{type(pl_module).__name__} has no sample(n) method")

    def _real_points(self, trainer: pl.Trainer) -> Tensor | None:
        if self._real is None:
            real_points = getattr(trainer.datamodule, "real_points", None)
            if callable(real_points):
                self._real = real_points("val")[0][:REAL_POINTS_SHOWN].cpu()
        return self._real

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not epoch_due(trainer, self.every_n_epochs):
            return
        name = self._dataset_name(trainer)
        with torch.no_grad():
            samples = pl_module.sample(self.num_samples)
        samples = samples.detach().float().cpu().reshape(-1, 2)
        metrics = toy_metrics(samples, name)
        self.last_metrics = {**metrics, "epoch": trainer.current_epoch}

        logged = {
            "toy/modes_covered": float(metrics["modes_covered"]),
            "toy/high_quality_pct": float(metrics["high_quality_pct"]),
        }
        pl_module.log_dict(logged, on_step=False, on_epoch=True, sync_dist=False, rank_zero_only=True)
        append_metrics(
            trainer,
            {
                "toy/modes_covered": metrics["modes_covered"],
                "toy/num_modes": metrics["num_modes"],
                "toy/high_quality_pct": metrics["high_quality_pct"],
            },
        )
        if trainer.is_global_zero:  # plotting is the expensive part; log_image writes on rank 0 only anyway
            title = (
                f"{name}  epoch {trainer.current_epoch}: {metrics['modes_covered']}/{metrics['num_modes']} "
                f"modes, {metrics['high_quality_pct']:.1f}% high quality"
            )
            log_image(trainer, "toy/scatter", scatter_plot(samples, name, self._real_points(trainer), title))
