"""``RunCheckpoint``: Lightning's ModelCheckpoint writing into ``<run_dir>/checkpoints/`` by default; and
``AtomicCheckpointIO``: every checkpoint written to a temporary file and renamed into place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lightning_gans.errors import CheckpointError
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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file in the target's folder, flushed to disk, then renamed over the
    target: a kill during a save (SIGKILL, a node failure) never leaves a torn ``last.ckpt`` — the previous one
    stays whole and loadable. A failed write (a full disk, a quota) removes the temporary file, keeps the previous
    checkpoint and raises one :class:`~lightning_gans.errors.CheckpointError` line. The CLI installs it on every
    trainer it builds (``GANLightningCLI.instantiate_trainer``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            with open(tmp, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except OSError as err:
            kept = f"the previous {target.name} is kept" if target.is_file() else f"no {target.name} was written"
            raise CheckpointError(
                f"could not write checkpoint {target} ({err.strerror or err}): {kept}; free space in "
                f"{target.parent} or point --runs_dir elsewhere, then resume with --ckpt_path"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
