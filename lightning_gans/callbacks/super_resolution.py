"""``SuperResolutionCallback``: PSNR / SSIM on the held-out pairs with the bicubic baseline beside them, and a
per-epoch grid LR | bicubic | SR | HR (SRGAN, *GAN Projects* ch. 5; protocol in
:mod:`lightning_gans.metrics.super_resolution`).

Logged names carry the protocol: ``psnr/<space>/<N>``, ``ssim/…``, ``psnr_bicubic/…``, ``ssim_bicubic/…``
(space ``y`` or ``rgb``, N held-out images); the values are appended to ``metrics.jsonl``
(``kind="super_resolution"`` with split, N, space, crop border and wall time) and PSNR/SSIM are W&B "max"
summaries. Exact under DDP: rank r scores the pairs r, r + W, … < N, the states are sums.

    trainer:
      callbacks:
        - class_path: lightning_gans.callbacks.SuperResolutionCallback
          init_args: {space: y, crop_border: 4, num_samples: 1000, every_n_epochs: 1, grid_images: 8}
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from lightning_gans.callbacks._timing import epoch_due
from lightning_gans.compat import logged_step
from lightning_gans.errors import ConfigError
from lightning_gans.evaluation import broadcast_buffers, count_label
from lightning_gans.evaluation.super_resolution import evaluate_super_resolution
from lightning_gans.metrics.super_resolution import SPACES, SuperResolutionScores, bicubic_upscale
from lightning_gans.outputs import append_metrics, define_wandb_summaries, log_image, make_grid, summary_direction

METRICS = ("psnr", "ssim", "psnr_bicubic", "ssim_bicubic")


def comparison_grid(lr: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor, scale: int) -> Any:
    """uint8 H×W×3 grid, one row per image: LR (nearest-enlarged) | bicubic | SR | HR."""
    columns = [F.interpolate(lr, scale_factor=scale, mode="nearest"), bicubic_upscale(lr, scale), sr, hr]
    rows = torch.stack([c.cpu().float() for c in columns], dim=1).flatten(0, 1)
    return make_grid(rows, nrow=4)


class SuperResolutionCallback(Callback):
    """Every ``every_n_epochs`` epochs (and after the last): PSNR/SSIM of SR and bicubic on ``num_samples`` held-out
    pairs (None: all of them) of ``split`` (None: the datamodule's ``eval_split``), and the comparison grid of the
    first ``grid_images`` pairs. Needs a model with ``upscale(lr)`` and ``scale`` (``SRGAN``) and a datamodule
    with ``pairs(split)`` (``SuperResolutionDataModule``). ``last_metrics`` holds the latest values."""

    def __init__(
        self,
        space: str = "y",
        crop_border: int = 0,
        num_samples: int | None = None,
        split: str | None = None,
        every_n_epochs: int = 1,
        batch_size: int = 16,
        grid_images: int = 8,
    ) -> None:
        super().__init__()
        if space not in SPACES:
            raise ValueError(f"space must be 'y' (BT.601 luma) or 'rgb', got {space!r}")
        if crop_border < 0 or every_n_epochs < 1 or batch_size < 1 or grid_images < 0:
            raise ValueError("need crop_border >= 0, every_n_epochs >= 1, batch_size >= 1, grid_images >= 0")
        if num_samples is not None and num_samples < 1:
            raise ValueError(f"num_samples must be >= 1 (or None for the whole split), got {num_samples}")
        self.space, self.crop_border, self.num_samples, self.split = space, crop_border, num_samples, split
        self.every_n_epochs, self.batch_size, self.grid_images = every_n_epochs, batch_size, grid_images
        self.last_metrics: dict[str, float] = {}
        self._skip = False
        self._summaries_defined = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._skip = bool(trainer.fast_dev_run)
        if self._skip:
            rank_zero_info("SuperResolutionCallback: skipped under fast_dev_run")
            return
        if not callable(getattr(pl_module, "upscale", None)):
            raise ConfigError(f"SuperResolutionCallback needs an SR model (SRGAN); got {type(pl_module).__name__}")
        datamodule = trainer.datamodule
        if not callable(getattr(datamodule, "pairs", None)):
            raise ConfigError(
                "SuperResolutionCallback needs datamodules.super_resolution.SuperResolutionDataModule (pairs(split)); "
                f"got {type(datamodule).__name__}"
            )
        self.split = self.split or datamodule.eval_split
        available = len(datamodule.pairs(self.split))
        if self.num_samples is not None and self.num_samples > available:
            raise ConfigError(
                f"SuperResolutionCallback: num_samples={self.num_samples} but the {self.split} split holds "
                f"{available} pairs: lower num_samples (or None for all of them)"
            )
        if self.crop_border * 2 >= datamodule.hr_size:
            raise ConfigError(f"crop_border={self.crop_border} leaves nothing of {datamodule.hr_size}² images")

    def names(self, n: int) -> dict[str, str]:
        return {m: f"{m}/{self.space}/{count_label(n)}" for m in METRICS}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._skip or not epoch_due(trainer, self.every_n_epochs):
            return
        pairs = trainer.datamodule.pairs(self.split)
        n = self.num_samples or len(pairs)
        start = time.perf_counter()
        broadcast_buffers(pl_module, trainer.world_size)  # every rank scores rank 0's G (BatchNorm statistics)
        values = evaluate_super_resolution(
            pl_module.upscale,
            pairs,
            n,
            pl_module.scale,
            self.space,
            self.crop_border,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            device=pl_module.device,
            batch_size=self.batch_size,
        )
        logged = {self.names(n)[k]: v for k, v in values.items()}
        self.last_metrics = dict(logged)
        for name, value in logged.items():  # global values already: no sync
            pl_module.log(name, value, on_step=False, on_epoch=True, sync_dist=False, logger=False)
        meta = {"split": self.split, "n": n, "space": self.space, "crop_border": self.crop_border}
        append_metrics(
            trainer, logged, kind="super_resolution", wall_time_s=round(time.perf_counter() - start, 3), **meta
        )
        if trainer.is_global_zero:
            if not self._summaries_defined:
                self._summaries_defined = True
                summaries = dict.fromkeys(self.names(n).values(), summary_direction(SuperResolutionScores))
                define_wandb_summaries(trainer, summaries, "SuperResolutionCallback")
            step = logged_step(trainer)
            for logger in trainer.loggers:
                logger.log_metrics({**logged, "epoch": trainer.current_epoch}, step=step)
            self._grid(trainer, pl_module, pairs)

    def _grid(self, trainer: pl.Trainer, pl_module: pl.LightningModule, pairs: Any) -> None:
        count = min(self.grid_images, len(pairs))
        if not count:
            return
        lr, hr = (torch.stack(part) for part in zip(*(pairs[i] for i in range(count))))
        grid = comparison_grid(lr, pl_module.upscale(lr).cpu(), hr, pl_module.scale)
        log_image(
            trainer, "samples/super_resolution", grid, filename=f"sr_grid_epoch{trainer.current_epoch + 1:04d}.png"
        )
