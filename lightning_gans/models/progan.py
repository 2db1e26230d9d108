"""Progressive growing of GANs (Karras et al. 2018; *GANs in Action* ch. 6) on the ``GANModule`` loop.

Networks: ``ProGANGenerator`` / ``ProGANDiscriminator`` (``networks/progan.py``), built for every level up front,
so the optimizers hold all levels' parameters from the first step and checkpoints keep one shape during growth.
The paper does not reset Adam's moments when a level is added (the official code keeps one optimizer state for
the whole run; new layers' moments simply start at zero because they have had no gradient yet) — neither do we.

Growth state lives in three persistent buffers, saved in every checkpoint and restored on resume (and by
``lightning-gans sample``/``interpolate``): ``resolution_level`` (level k works at 4·2^k px), ``fade_in_alpha``
(the new level's weight during its fade-in) and ``images_shown`` (real images trained on, summed over ranks).
They are buffers rather than hyperparameters so that ``hparams`` stays the run's configuration. The
``ProgressiveGrowing`` callback (``callbacks/progressive.py``) sets level and α from ``images_shown``.

Reals (§3, Fig. 2 caption): the datamodule serves full-size images; the model pads them to ``resolution`` when
``real_image_size`` is smaller (MNIST 28 → 32, background −1 on every side), average-pools them to the current
resolution and, during a fade-in, blends the current and the previous resolution (upsampled) with the same α as
the networks — exact, and independent of the datamodule.

Loss (§A.1): WGAN-GP (λ = 10) with n_critic = 1 plus the drift term ε_drift·E D(x)², ε_drift = 0.001;
Adam lr 1e-3, β = (0, 0.99), ε = 1e-8 for both networks. These are the defaults here.

``sample(n)`` draws images at the current resolution; by default they are shown in the dataset's format —
nearest-upsampled to ``resolution`` and cropped back to ``real_image_size`` — so grids, the training GIF and FID keep
one size during growth (``native=True`` returns the current-resolution tensor). Outputs are clamped to [−1, 1]
(the paper's generator output is linear).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from lightning_gans.compat import attached_trainer
from lightning_gans.models.base import Batch, GANModule
from lightning_gans.models.options import Regularisers
from lightning_gans.networks.progan import downsample, level_resolution, upsample


def progan_adam(params: Any) -> torch.optim.Optimizer:
    """Adam lr 1e-3, β = (0, 0.99), ε = 1e-8 (Karras et al. 2018, §A.1)."""
    return torch.optim.Adam(params, lr=1e-3, betas=(0.0, 0.99), eps=1e-8)


class ProGAN(GANModule):
    """A ``GANModule`` whose networks run at ``resolution_level`` with fade-in ``fade_in_alpha`` (module docstring)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        real_image_size: int | None = None,
        latent_dim: int = 512,
        loss: str = "wasserstein",
        regularisers: Regularisers = Regularisers(gradient_penalty=10.0, drift=0.001),
        optimizer_g: OptimizerCallable = progan_adam,
        optimizer_d: OptimizerCallable = progan_adam,
        **kwargs: Any,
    ) -> None:
        for name, net in (("generator", generator), ("discriminator", discriminator)):
            if not hasattr(net, "max_level"):
                raise ValueError(
                    f"ProGAN needs growing networks with levels (e.g. lightning_gans.networks.ProGAN{name.title()}); "
                    f"got {type(net).__name__} as the {name}"
                )
        if generator.max_level != discriminator.max_level:
            raise ValueError(
                f"generator grows to {level_resolution(generator.max_level)}px but the discriminator to "
                f"{level_resolution(discriminator.max_level)}px: give both the same resolution"
            )
        resolution = level_resolution(generator.max_level)
        size = real_image_size
        if size is not None and not (0 < size <= resolution and (resolution - size) % 2 == 0):
            raise ValueError(
                f"real_image_size={size} must be <= resolution={resolution} with an even difference (padded equally "
                f"on both sides), e.g. 28 for MNIST in a 32px network; or None for images of {resolution}px"
            )
        super().__init__(
            generator=generator,
            discriminator=discriminator,
            latent_dim=latent_dim,
            loss=loss,
            regularisers=regularisers,
            optimizer_g=optimizer_g,
            optimizer_d=optimizer_d,
            **kwargs,
        )
        self.max_level = generator.max_level
        self.resolution = resolution
        self.real_image_size = real_image_size or resolution
        self.register_buffer("resolution_level", torch.tensor(0, dtype=torch.long))
        self.register_buffer("fade_in_alpha", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("images_shown", torch.tensor(0, dtype=torch.long))

    # ------------------------------------------------------------------ growth state
    @property
    def level(self) -> int:
        return int(self.resolution_level)

    @property
    def alpha(self) -> float:
        return float(self.fade_in_alpha)

    @property
    def current_resolution(self) -> int:
        return level_resolution(self.level)

    def set_growth(self, level: int, alpha: float) -> None:
        """Run the networks at ``level`` (4·2^level px) with fade-in weight ``alpha`` from the next batch on."""
        if not 0 <= level <= self.max_level or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"need 0 <= level <= {self.max_level} and 0 <= alpha <= 1, got {level}, {alpha}")
        self.resolution_level.fill_(level)
        self.fade_in_alpha.fill_(alpha)

    # ------------------------------------------------------------------ hooks
    def pad_reals(self, x: torch.Tensor) -> torch.Tensor:
        """Full-resolution reals: ``real_image_size`` images padded with background (−1) to ``resolution``."""
        if x.dim() != 4 or x.shape[-1] != self.real_image_size or x.shape[-2] != self.real_image_size:
            raise ValueError(
                f"ProGAN expects N×C×{self.real_image_size}×{self.real_image_size} real images, got {tuple(x.shape)}: "
                "set model.real_image_size to the dataset's image size"
            )
        pad = (self.resolution - self.real_image_size) // 2
        return F.pad(x, (pad, pad, pad, pad), value=-1.0) if pad else x

    def real_samples(self, batch: Batch) -> torch.Tensor:
        """Reals at the current resolution; during a fade-in blended with the previous one (Karras Fig. 2)."""
        x = self.pad_reals(super().real_samples(batch))
        level, alpha = self.level, self.alpha
        factor = 2 ** (self.max_level - level)
        current = F.avg_pool2d(x, factor) if factor > 1 else x
        if level == 0 or alpha >= 1.0:
            return current
        previous = upsample(downsample(current))
        return (1.0 - alpha) * previous + alpha * current

    def generate(self, batch: Batch) -> torch.Tensor:
        n = super().real_samples(batch).shape[0]
        return self.generator(self.sample_noise(n), self.level, self.alpha)

    def discriminate(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.discriminator(x, self.level, self.alpha)

    def _batch_size(self, batch: Batch) -> int:
        return super().real_samples(batch).shape[0]

    def to_dataset_format(self, images: torch.Tensor) -> torch.Tensor:
        """Current-resolution images → ``real_image_size`` px: nearest upsampling to ``resolution``, centre crop."""
        factor = self.resolution // images.shape[-1]
        if factor > 1:
            images = F.interpolate(images, scale_factor=factor, mode="nearest")
        crop = (self.resolution - self.real_image_size) // 2
        return images[..., crop : crop + self.real_image_size, crop : crop + self.real_image_size] if crop else images

    @torch.no_grad()
    def sample(self, n: int, noise: torch.Tensor | None = None, native: bool = False, **condition: Any) -> torch.Tensor:
        """``n`` images in [−1, 1] from the current level and α (``native``: at the current resolution)."""
        net = self.sampling_generator
        was_training = net.training
        net.eval()
        try:
            z = self.sample_noise(n) if noise is None else noise.to(self.device, self.dtype)
            images = net(z, self.level, self.alpha).clamp(-1.0, 1.0)
        finally:
            net.train(was_training)
        return images if native else self.to_dataset_format(images)

    # ------------------------------------------------------------------ loop
    def training_step(self, batch: Batch, batch_idx: int) -> None:
        super().training_step(batch, batch_idx)
        world = self.trainer.world_size if attached_trainer(self) is not None else 1
        self.images_shown += self._batch_size(batch) * world
        size = self._batch_size(batch)
        growth = {"resolution": float(self.current_resolution), "fade_in_alpha": self.alpha}
        self.log_dict(growth, on_step=True, on_epoch=False, batch_size=size)
