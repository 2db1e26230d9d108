"""``RunCheckpoint``: Lightning's ModelCheckpoint writing into ``<run_dir>/checkpoints/`` by default."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_gans.outputs import run_dir


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose ``dirpath`` defaults to the run directory's ``checkpoints/`` folder.

    Plain ModelCheckpoint derives its folder from the first logger's naming scheme, which differs between
    CSV and W&B loggers; every checkpoint of a run belongs next to its config, grids and metrics.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(run_dir(trainer) / "checkpoints")
        super().setup(trainer, pl_module, stage)
