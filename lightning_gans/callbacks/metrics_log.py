"""``MetricsJsonl``: append the epoch-level logged metrics to ``<run_dir>/metrics.jsonl``."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from lightning_gans.outputs import append_metrics


class MetricsJsonl(Callback):
    """One JSON line per epoch with the epoch-level training metrics (losses) in ``trainer.callback_metrics``."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logged = trainer.callback_metrics
        # ``self.log(on_step=True, on_epoch=True)`` yields "x", "x_step" and "x_epoch": keep one per metric.
        # Namespaced metrics ("fid/…", "toy/…") are written by their own callbacks, with their protocol, only
        # when computed; ``callback_metrics`` would repeat their stale values every epoch.
        metrics = {k: v for k, v in logged.items() if not k.endswith(("_step", "_epoch")) and "/" not in k}
        if metrics:
            append_metrics(trainer, metrics, kind="train_epoch")
