"""``MetricsJsonl``: append the epoch-level logged metrics to ``<run_dir>/metrics.jsonl``."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from lightning_gans.outputs import append_metrics


class MetricsJsonl(Callback):
    """One JSON line per epoch with every ``*_epoch`` / epoch-level metric in ``trainer.callback_metrics``."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logged = trainer.callback_metrics
        # ``self.log(on_step=True, on_epoch=True)`` yields "x", "x_step" and "x_epoch": keep one per metric.
        metrics = {k: v for k, v in logged.items() if not k.endswith(("_step", "_epoch"))}
        if metrics:
            append_metrics(trainer, metrics, kind="train_epoch")
