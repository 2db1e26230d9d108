"""``RunCheckpoint``: Lightning's ModelCheckpoint writing into ``<run_dir>/checkpoints/`` by default."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_gans.outputs import run_dir


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose ``dirpath`` defaults to the run directory's ``checkpoints/`` folder.

    Plain ModelCheckpoint derives its folder from the first logger's naming scheme, which differs between
    CSV and W&B loggers; every checkpoint of a run belongs next to its config, grids and metrics.

    ``save_last`` is honoured at every save point even without a top-k checkpoint: Lightning ≥ 2.5 writes
    ``last.ckpt`` at an epoch end only together with a top-k save, so the CLI's ``save_last=True, save_top_k=0``
    wrote nothing until training ended and a crash lost the whole run.

    ``fast_dev_run`` writes no checkpoint at all, as Lightning documents: Lightning 2.6's
    ``ModelCheckpoint.on_train_end`` saves ``last.ckpt`` without that check, which fills the disk when the generic
    experiment test smoke-runs every experiment (``docs/training.md``).
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(run_dir(trainer) / "checkpoints")
        super().setup(trainer, pl_module, stage)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # top-k (+ last when top-k saved)
        due = self.save_last and self._should_save_on_train_epoch_end(trainer)
        if due and not self._should_skip_saving_checkpoint(trainer):  # skipped when saved at this step already
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        super().on_train_end(trainer, pl_module)
