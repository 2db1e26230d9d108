"""``RunCheckpoint``: ``last.ckpt`` is written at every epoch end, not only when training ends."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch

from datamodules.mnist import MNISTDataModule
from lightning_gans.callbacks import RunCheckpoint
from lightning_gans.models import GAN
from lightning_gans.networks import MLPDiscriminator, MLPGenerator


class LastCheckpointSteps(pl.Callback):
    """At each epoch start: the ``global_step`` stored in ``last.ckpt`` (None while there is none)."""

    def __init__(self, path: Path) -> None:
        self.path, self.steps = path, []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        exists = self.path.is_file()
        self.steps.append(torch.load(self.path, weights_only=False)["global_step"] if exists else None)


def test_last_checkpoint_after_every_epoch(mnist_root: Path, tmp_path: Path) -> None:
    """The CLI default ``RunCheckpoint(save_last=True, save_top_k=0)`` with a datamodule that has a val loader
    (the GAN skips it): ``last.ckpt`` holds the state of the previous epoch's end at every epoch start."""
    probe = LastCheckpointSteps(tmp_path / "ck" / "last.ckpt")
    checkpoint = RunCheckpoint(dirpath=str(tmp_path / "ck"), save_last=True, save_top_k=0)
    trainer = pl.Trainer(
        max_epochs=3,
        limit_train_batches=2,
        callbacks=[checkpoint, probe],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    gan = GAN(generator=MLPGenerator(hidden=[8]), discriminator=MLPDiscriminator(hidden=[8]))
    trainer.fit(gan, datamodule=MNISTDataModule(data_dir=str(mnist_root), batch_size=16))
    assert probe.steps == [None, 2, 4]  # one GAN step per batch, 2 batches per epoch
    assert torch.load(tmp_path / "ck" / "last.ckpt", weights_only=False)["global_step"] == 6
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["last.ckpt"]
