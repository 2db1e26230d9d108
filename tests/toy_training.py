"""Small in-process training helpers shared by the training-loop tests: a tiny 2-D GAN, data, a bare Trainer."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_gans.models import GAN
from lightning_gans.networks import MLPDiscriminator, MLPGenerator


def toy_module(**kwargs) -> GAN:
    """A 2-D GAN with one hidden layer of 16 units and a 4-d latent; ``kwargs`` go to ``GANModule``."""
    return GAN(
        generator=MLPGenerator(latent_dim=4, hidden=[16], out_shape=[2], output="linear"),
        discriminator=MLPDiscriminator(in_shape=[2], hidden=[16]),
        latent_dim=4,
        **kwargs,
    )


def toy_loader(n_batches: int = 6, batch: int = 8) -> DataLoader:
    """``n_batches`` seeded batches of 2-D normal points (unshuffled), as ``(points, zeros)`` tuples."""
    g = torch.Generator().manual_seed(0)
    points = torch.randn(n_batches * batch, 2, generator=g)
    return DataLoader(TensorDataset(points, torch.zeros(len(points))), batch_size=batch)


def bare_trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    """A CPU Trainer without logger, checkpoints, progress bar or summary (``kwargs`` override any of them)."""
    options = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    options.update(enable_model_summary=False, default_root_dir=tmp_path, **kwargs)
    return pl.Trainer(accelerator="cpu", devices=1, **options)


class StepRecorder(pl.Callback):
    """Records the optimizer steps in order as a string: "G" for the generator's, "D" for the discriminator's."""

    def __init__(self) -> None:
        self.steps: list[str] = []

    @property
    def order(self) -> str:
        return "".join(self.steps)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        opt_g, opt_d = trainer.optimizers
        opt_g.register_step_post_hook(lambda *a: self.steps.append("G"))
        opt_d.register_step_post_hook(lambda *a: self.steps.append("D"))
