"""``RunCheckpoint``: ``last.ckpt`` is written at every epoch end, not only when training ends; ``AtomicCheckpointIO``:
an interrupted or failed save keeps the previous checkpoint whole."""

from __future__ import annotations

import errno
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

import lightning_gans.callbacks.checkpoint as checkpoint_module
from datamodules.mnist import MNISTDataModule
from lightning_gans.callbacks import RunCheckpoint
from lightning_gans.callbacks.checkpoint import AtomicCheckpointIO
from lightning_gans.errors import CheckpointError
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


def _interrupting_save(error: BaseException):
    """A ``torch.save`` that writes half a checkpoint, then fails with ``error`` (a full disk, a kill)."""
    real_save = torch.save

    def save(obj, handle, *args, **kwargs) -> None:
        import io

        buffer = io.BytesIO()
        real_save(obj, buffer)
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise error

    return save


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_interrupted_save_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    io_plugin, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io_plugin.save_checkpoint({"global_step": 10, "w": torch.arange(1000.0)}, path)
    monkeypatch.setattr(checkpoint_module.torch, "save", _interrupting_save(error))
    expected = CheckpointError if isinstance(error, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as info:
        io_plugin.save_checkpoint({"global_step": 20, "w": torch.zeros(1000)}, path)
    if isinstance(error, OSError):
        assert "No space left on device" in str(info.value) and "the previous last.ckpt is kept" in str(info.value)
    monkeypatch.undo()
    kept = torch.load(path, weights_only=False)
    assert kept["global_step"] == 10 and torch.equal(kept["w"], torch.arange(1000.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no partial file left


def test_cli_trainers_write_checkpoints_atomically(runs: Path) -> None:
    from lightning_gans.cli import GANLightningCLI

    config = Path(__file__).resolve().parents[1] / "experiments" / "toy_grid.yaml"
    cli = GANLightningCLI(args=["--config", str(config), "--trainer.max_steps=1"], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    last = Path(cli.trainer.default_root_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] >= 1
    assert not list(last.parent.glob(".*partial"))
