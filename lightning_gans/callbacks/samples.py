"""Per-epoch sample grids from the fixed noise buffer, and a training GIF assembled from them.

DCGAN digits seed: a 4×4 grid of the 16 fixed latents each epoch (``image_at_epoch_NNNN.png``), and after
training ``dcgan.gif`` from the frames where ``round(2·sqrt(i))`` increases, plus the last frame. The seed
colour-inverts its grids (``cv2.bitwise_not``); ``invert`` reproduces that, off by default.

Conditional models (``conditional = True``, e.g. the CGAN of *GANs in Action* ch. 8) get a class grid instead:
their ``sample_fixed()`` returns ``num_classes`` rows of the fixed latents, row c conditioned on class c, so each
row shows one digit (``class_grid_epochNNNN.png``).
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import Callback

from lightning_gans.callbacks._timing import epoch_due
from lightning_gans.capabilities import is_conditional
from lightning_gans.outputs import log_image, make_grid, run_dir


def gif_frame_indices(n_frames: int) -> list[int]:
    """Indices of frames where round(2·sqrt(i)) increases, plus the last frame (the seed's GIF rule)."""
    chosen, last = [], -1
    for i in range(n_frames):
        value = round(2 * math.sqrt(i))
        if value > last:
            chosen.append(i)
            last = value
    if n_frames and chosen[-1] != n_frames - 1:
        chosen.append(n_frames - 1)
    return chosen


class SampleGridCallback(Callback):
    """Save ``pl_module.sample_fixed()`` as a PNG grid every ``every_n_epochs`` and a GIF at the end."""

    def __init__(self, every_n_epochs: int = 1, nrow: int | None = None, invert: bool = False, gif: bool = True):
        self.every_n_epochs = every_n_epochs
        self.nrow = nrow
        self.invert = invert
        self.gif = gif
        self.frames: list[Path] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not epoch_due(trainer, self.every_n_epochs):
            return
        images, nrow, name = pl_module.sample_fixed(), self.nrow, "grid"
        if is_conditional(pl_module):  # one row per class: each row one digit
            nrow, name = images.shape[0] // pl_module.num_classes, "class_grid"
        grid = make_grid(images, nrow=nrow)
        if self.invert:
            grid = 255 - grid
        path = log_image(trainer, f"samples/{name}", grid, filename=f"{name}_epoch{trainer.current_epoch + 1:04d}.png")
        if path is not None:
            self.frames.append(path)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self.gif and trainer.is_global_zero and self.frames):
            return
        import imageio.v2 as imageio

        frames = [imageio.imread(self.frames[i]) for i in gif_frame_indices(len(self.frames))]
        imageio.mimsave(run_dir(trainer) / "samples" / "training.gif", [np.asarray(f) for f in frames], duration=0.5)
