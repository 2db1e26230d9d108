"""SRGAN and SRResNet: 4× single-image super-resolution (*GAN Projects* ch. 5, reference §6; Ledig et al. 2017).

Batches are ``(lr, hr)`` pairs from :class:`datamodules.super_resolution.SuperResolutionDataModule`, or
``{"discriminator": (lr, hr), "generator": (lr, hr)}`` when it draws a separate batch for the generator step as
the chapter does (``separate_generator_batch``). Networks: ``lightning_gans.networks.srgan``.

* **SRResNet** (stage 1, ``adversarial=False``, ``content_loss="mse"``): G alone, pixel MSE — the SRResNet-MSE of
  Ledig et al.; no discriminator, one optimizer. Its checkpoint initialises stage 2 (``init_generator_from``),
  as the paper does "to avoid undesired local optima".
* **SRGAN** (stage 2, the chapter): per GAN step a D step on HR → 1 and a D step on G(LR) → 0 (two optimizer
  steps: Keras ``train_on_batch`` twice; the fakes made by G in inference mode, as ``generator.predict``), then
  a G step on the next batch with L_G = content + 10⁻³·adversarial. Adversarial = BCE(D(G(LR)), 1).
  Content (``content_loss="vgg"``, the chapter): MSE between frozen VGG19 features of SR and HR at
  ``vgg_layer`` (``relu3_3`` = Keras ``block3_conv3``, the chapter; ``relu5_4`` is the paper's VGG54, whose
  features Ledig et al. rescale by 1/12.75 — ``content_weight: 0.006`` ≈ 1/12.75²); ``"mse"``: pixel MSE.
* **D loss.** The chapter compiles D with MSE on its sigmoid output while G's adversarial term is BCE — kept as
  the faithful default ``d_loss="mse"`` (the registry's ``lsgan`` terms on sigmoid(D): ½E(s−1)², ½E s²; the ½ is
  a constant factor Adam ignores). ``d_loss="bce"`` makes D consistent with G (BCE on logits).

Book bugs fixed: VGG19 gets ImageNet-normalised RGB in [0, 1] (the chapter feeds it [-1, 1] images, see
:class:`~lightning_gans.networks.srgan.VGGFeatures`); the truncated VGG is built explicitly instead of reassigning
``vgg.outputs``; D and G have separate Adam instances (the chapter shares one optimizer object).

Pretrained VGG19 weights cannot be downloaded here: the content loss loads torchvision's file from the torch hub
cache or ``vgg_weights``; a missing file stops ``fit`` at setup with one error naming the file, where to put it and
``--model.content_loss=mse``. The VGG is not part of the checkpoint (it is frozen and loaded from its file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lightning_gans.errors import ConfigError
from lightning_gans.losses import get_loss
from lightning_gans.models._keras_predict import eval_mode
from lightning_gans.models.base import Batch, GANModule
from lightning_gans.models.options import EMA, Regularisers, Schedule, Tricks
from lightning_gans.networks.srgan import SRResNetGenerator, VGGFeatures

PARTS = ("discriminator", "generator")


class SRGAN(GANModule):
    """SRGAN / SRResNet on (LR, HR) pairs (see the module docstring)."""

    def __init__(
        self,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        adversarial: bool = True,
        content_loss: Literal["vgg", "mse"] = "vgg",
        vgg_layer: str = "relu3_3",
        vgg_weights: str | None = None,
        content_weight: float = 1.0,
        adversarial_weight: float = 1e-3,
        d_loss: Literal["mse", "bce"] = "mse",
        d_fakes_eval_mode: bool = True,
        init_generator_from: str | None = None,
        schedule: Schedule = Schedule(d_steps="real_then_fake"),
        **kwargs: Any,
    ) -> None:
        if content_loss not in ("vgg", "mse"):
            raise ValueError(f"content_loss must be 'vgg' (VGG19 features) or 'mse' (pixels), got {content_loss!r}")
        if d_loss not in ("mse", "bce"):
            raise ValueError(f"d_loss must be 'mse' (the chapter) or 'bce', got {d_loss!r}")
        if "loss" in kwargs:
            raise ValueError("SRGAN sets its adversarial losses with d_loss ('mse' | 'bce'); G's term is always BCE")
        if adversarial != (discriminator is not None):
            raise ValueError(
                "adversarial=True (SRGAN) needs a discriminator (e.g. SRGANDiscriminator); "
                "adversarial=False (SRResNet) trains G alone: leave the discriminator out"
            )
        super().__init__(
            generator=generator or SRResNetGenerator(),
            discriminator=discriminator,
            loss="lsgan" if d_loss == "mse" else "non_saturating",
            schedule=schedule,
            **kwargs,
        )
        self.generator_adversarial_loss = get_loss("non_saturating")  # BCE(D(G(LR)), 1) on logits
        self.scale = int(getattr(self.generator, "scale", 4))
        # Frozen, loaded from its own file at fit start; kept out of the module tree (and the checkpoint).
        self.__dict__["content_network"] = None

    def _check_groups(self, schedule: Schedule, regularisers: Regularisers, tricks: Tricks, ema: EMA) -> None:
        if schedule.update != "alternating":
            raise ValueError("SRGAN updates D, then G on the next batch: use update='alternating'")

    # ------------------------------------------------------------------ setup: VGG and stage-1 weights
    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        if self.hparams.content_loss == "vgg" and self.content_network is None:
            self.__dict__["content_network"] = VGGFeatures(self.hparams.vgg_layer, self.hparams.vgg_weights)
        if self.hparams.init_generator_from:
            self.load_generator(self.hparams.init_generator_from)

    def load_generator(self, ckpt: str | Path) -> None:
        """Copy the generator weights of a checkpoint (an SRResNet run) into this model's generator."""
        path = Path(ckpt)
        if not path.is_file():
            raise FileNotFoundError(
                f"init_generator_from: {path} does not exist; train stage 1 first (lightning-gans fit --config "
                "experiments/srresnet_<data>.yaml) and pass its runs/<exp>/<run>/checkpoints/last.ckpt"
            )
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        weights = {k.removeprefix("generator."): v for k, v in state.items() if k.startswith("generator.")}
        try:
            self.generator.load_state_dict(weights)
        except RuntimeError as err:
            raise ConfigError(
                f"init_generator_from: the generator in {path} does not match this generator's architecture "
                f"({str(err).splitlines()[0]}): use the same generator init_args in both stages"
            ) from None
        if self.generator_ema is not None:
            self.generator_ema.load_state_dict(self.generator.state_dict())

    # ------------------------------------------------------------------ batches
    @staticmethod
    def pair(batch: Batch, part: str = "generator") -> tuple[torch.Tensor, torch.Tensor]:
        """``(lr, hr)`` of a batch; of its ``part`` for a ``{"discriminator": …, "generator": …}`` batch."""
        if isinstance(batch, dict):
            if set(PARTS) - set(batch):
                raise ConfigError(f"SRGAN batch dicts need the keys {PARTS}, got {sorted(batch)}")
            batch = batch[part]
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ConfigError(
                "SRGAN trains on (lr, hr) batches: use datamodules.super_resolution.SuperResolutionDataModule"
            )
        return batch[0], batch[1]

    def real_samples(self, batch: Batch) -> torch.Tensor:
        return self.pair(batch)[1]

    def generate(self, batch: Batch) -> torch.Tensor:
        return self.generator(self.pair(batch)[0])

    # ------------------------------------------------------------------ losses
    def content(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Pixel MSE or the MSE of frozen VGG19 features (ImageNet-normalised inputs)."""
        if self.hparams.content_loss == "mse":
            return F.mse_loss(sr, hr)
        vgg = self.content_network
        if vgg is None:
            raise RuntimeError("the VGG content network is built in setup('fit'); call model.setup('fit') first")
        if vgg.mean.device != sr.device:
            vgg.to(sr.device)
        with torch.no_grad():
            target = vgg(hr)
        return F.mse_loss(vgg(sr), target)

    def _d_scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.hparams.d_loss == "mse" else logits

    def discriminator_step(self, batch: Batch, part: Literal["both", "real", "fake"] = "both") -> dict:
        """D on HR → 1 and/or on G(LR) → 0 (G in inference mode, as Keras ``predict``)."""
        lr, hr = self.pair(batch)
        real_scores = fake_scores = None
        if part in ("both", "real"):
            real_scores = self._d_scores(self.critic(hr, batch))
        if part in ("both", "fake"):
            with torch.no_grad(), eval_mode(self.generator, self.hparams.d_fakes_eval_mode):
                fake = self.generator(lr)
            fake_scores = self._d_scores(self.critic(fake, batch))
        logs = self._d_loss_terms(real_scores, fake_scores)
        logs["loss"] = sum(logs.values())
        return logs

    def generator_step(self, batch: Batch) -> dict:
        """content_weight · content + adversarial_weight · BCE(D(G(LR)), 1) (content alone for SRResNet)."""
        lr, hr = self.pair(batch)
        sr = self.generator(lr)
        content = self.content(sr, hr)
        logs = {"g_content": content.detach()}
        loss = self.hparams.content_weight * content
        if self.discriminator is not None:
            adversarial = self.generator_adversarial_loss.generator(self.critic(sr, batch))
            logs["g_adversarial"] = adversarial.detach()
            loss = loss + self.hparams.adversarial_weight * adversarial
        logs["loss"] = loss
        return logs

    # ------------------------------------------------------------------ the loop: D on one batch, G on the next
    def _discriminator_update(self, batch: Batch) -> dict:
        if self.discriminator is None:
            return {}
        part = batch["discriminator"] if isinstance(batch, dict) else batch
        return super()._discriminator_update(part)

    def _generator_update(self, batch: Batch) -> dict:
        return super()._generator_update(batch["generator"] if isinstance(batch, dict) else batch)

    def optimizers(self, use_pl_optimizer: bool = True) -> list:
        """Always a list (SRResNet has only G's optimizer; Lightning would return it bare)."""
        optimizers = super().optimizers(use_pl_optimizer)
        return optimizers if isinstance(optimizers, list) else [optimizers]

    def configure_optimizers(self) -> Any:
        if self.discriminator is not None:
            return super().configure_optimizers()
        opt_g = self.optimizer_factories[0](self.generator.parameters())
        factory = self.scheduler_factories[0]
        schedulers = (
            [] if factory is None else [{"scheduler": factory(opt_g), "interval": self.hparams.lr_scheduler_interval}]
        )
        return [opt_g], schedulers

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        """SR images in [-1, 1] for LR images in [-1, 1] (eval mode; the EMA generator when kept)."""
        net = self.sampling_generator
        was_training = net.training
        net.eval()
        try:
            return net(lr.to(self.device, self.dtype))
        finally:
            net.train(was_training)

    def sample(self, n: int, noise: torch.Tensor | None = None, **condition: Any) -> torch.Tensor:
        raise ValueError(
            "SRGAN upscales images instead of sampling them: "
            "lightning-gans upscale --ckpt CKPT --input DIR|IMAGE --out DIR"
        )
