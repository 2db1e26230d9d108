"""Semi-supervised GAN (Salimans et al. 2016, §5; Odena 2016) on MNIST as in *GANs in Action* ch. 7.

Networks: ``SGANGenerator28`` and ``SGANDiscriminator28`` (see ``networks/sgan.py``): one D body with 10 class
logits l and two heads sharing every weight — supervised softmax(l) and unsupervised real/fake
sigmoid(logsumexp(l)) = Z/(Z+1), Z = Σ exp(l_k), scored by the loss registry's BCE terms on logsumexp(l).

Data: ``datamodules.mnist.SemiSupervisedMNISTDataModule`` batches ``{"labelled": [x, y], "unlabelled": [x]}``
(100 labelled images, the others without labels). Validation: the supervised head's accuracy on the
datamodule's validation split, logged as ``val_accuracy`` (and ``val_loss``); ``test`` logs ``test_accuracy``.
The experiments carve the validation split from the unlabelled pool (``validation_fraction``) and report the test
accuracy of the last and of the validation-selected weights at the end of fit (``ClassifierTestReport``).

Per iteration (one GAN step, four optimizer steps in the order of the book's Listing 7.9):
1. supervised D step: cross-entropy of softmax(l) on the labelled batch (optimizer ``optimizer_d_supervised``);
2. unsupervised D step on the unlabelled real batch → 1, 3. on G(z) → 0 (``optimizer_d``; the base loop's
   ``d_steps="real_then_fake"``), D's fakes made by G in inference mode like Keras ``predict``;
4. G step with fresh z: non-saturating BCE through D's unsupervised head (``optimizer_g``), or, with the base
   module's switch ``feature_matching="replace"`` (``"add"``: both), ‖E f(x) − E f(G(z))‖² on D's flattened body
   features f (Salimans et al. 2016, §3.1; the real batch is the unlabelled one). SGAN matches its D's
   ``features()`` (``feature_layer`` does not apply) through one joint real+fake forward (see ``generator_step``).
The two D optimizers keep separate Adam moments on the same weights, as the book's two compiled Keras models.
``d_objective="joint"`` instead takes one ``optimizer_d`` step on L_supervised + ½·(unsupervised real + fake), the
single D objective of Salimans et al.'s code (``sgan_mnist_salimans.yaml``).
Optimizers are ordered (G, D-unsupervised, D-supervised), so index 1 is the adversarial D optimizer as in every
other model. ``adversarial=False`` trains only step 1: the supervised baseline (same body, same labels).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from lightning_gans.errors import ConfigError
from lightning_gans.models._keras_predict import eval_mode
from lightning_gans.models.base import Batch, GANModule
from lightning_gans.models.options import EMA, Regularisers, Schedule, Tricks
from lightning_gans.networks.sgan import SGANDiscriminator28, SGANGenerator28

BATCH_KEYS = ("labelled", "unlabelled")


def _keras_adam(params: Any) -> torch.optim.Optimizer:
    """Keras ``Adam()`` defaults: lr 1e-3, β (0.9, 0.999), epsilon 1e-7."""
    return torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7)


def _batch_error(batch: Batch) -> Exception:
    got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
    return ConfigError(
        f"SGAN trains on {{'labelled': [x, y], 'unlabelled': [x]}} batches, got {got}: use "
        "datamodules.mnist.SemiSupervisedMNISTDataModule (data.class_path in the experiment YAML)"
    )


class SGAN(GANModule):
    """Semi-supervised GAN with a shared-body two-head discriminator (see module docstring)."""

    def __init__(
        self,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        optimizer_d_supervised: OptimizerCallable = _keras_adam,
        adversarial: bool = True,
        d_fakes_eval_mode: bool = True,
        d_objective: Literal["separate", "joint"] = "separate",
        schedule: Schedule = Schedule(d_steps="real_then_fake"),
        **kwargs: Any,
    ) -> None:
        latent_dim = kwargs.get("latent_dim", 100)
        super().__init__(
            generator=generator or SGANGenerator28(latent_dim=latent_dim),
            discriminator=discriminator or SGANDiscriminator28(),
            schedule=schedule,
            **kwargs,
        )
        self.supervised_optimizer_factory = optimizer_d_supervised
        if d_objective not in ("separate", "joint"):
            raise ValueError(f"d_objective must be 'separate' or 'joint', got {d_objective!r}")
        if d_objective == "joint" and self.schedule.d_steps != "joint":
            raise ValueError("d_objective='joint' takes one D step on everything: use schedule.d_steps='joint'")
        for method in ("features", "head", "unsupervised_logit"):
            if not callable(getattr(self.discriminator, method, None)):
                raise ValueError(f"SGAN needs a discriminator with a {method}() method, like SGANDiscriminator28")

    def _check_groups(self, schedule: Schedule, regularisers: Regularisers, tricks: Tricks, ema: EMA) -> None:
        if schedule.update != "alternating":
            raise ValueError("SGAN takes its four optimizer steps one after another: use update='alternating'")
        if tricks.feature_layer is not None:
            raise ValueError(
                "SGAN feature matching uses its discriminator's features() (the flattened body): drop feature_layer"
            )

    # ------------------------------------------------------------------ batches
    @staticmethod
    def _check(batch: Batch) -> dict:
        if not isinstance(batch, dict) or set(BATCH_KEYS) - set(batch):
            raise _batch_error(batch)
        return batch

    def labelled_batch(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of the labelled part of a training batch."""
        images, labels = self._check(batch)["labelled"][:2]
        return images, labels

    def real_samples(self, batch: Batch) -> torch.Tensor:
        """The unlabelled real images of a training batch ((x, y) tuples elsewhere, e.g. validation)."""
        if isinstance(batch, dict):
            return self._check(batch)["unlabelled"][0]
        return super().real_samples(batch)

    # ------------------------------------------------------------------ the two heads
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits l (N, 10) of the supervised head (softmax(l) are the class probabilities)."""
        return self.discriminator(x)

    def discriminate(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Unsupervised head: the real/fake logit logsumexp(l)."""
        return self.discriminator.unsupervised_logit(self.discriminator(x))

    def supervised_step(self, batch: Batch) -> dict:
        """Cross-entropy of softmax(l) on the labelled batch (step 1 of Listing 7.9)."""
        images, labels = self.labelled_batch(batch)
        logits = self.classify(images)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        return {"loss": F.cross_entropy(logits, labels), "train_accuracy": accuracy}

    def discriminator_step(self, batch: Batch, part: Literal["both", "real", "fake"] = "both") -> dict:
        with eval_mode(self.generator, self.hparams.d_fakes_eval_mode):  # Keras generator.predict
            return super().discriminator_step(batch, part)

    def generator_step(self, batch: Batch) -> dict:
        if self.tricks.feature_matching == "off":
            return super().generator_step(batch)
        real = self.real_samples(batch)
        # One D forward over real and fake together, so BatchNorm normalises both with the same statistics. With
        # a fake-only batch, BN would normalise away each channel's mean and scale of the fakes, and feature
        # matching would have little left to match. The real mean is a constant target (detached in the loss).
        features = self.discriminator.features(torch.cat([real, self.generate(batch)]))
        real_features, fake_features = features[: len(real)], features[len(real) :]
        fake_logits = self.discriminator.unsupervised_logit(self.discriminator.head(fake_features))
        return self._generator_loss(fake_logits, [real_features, fake_features])

    # ------------------------------------------------------------------ optimisers and the loop
    def configure_optimizers(self) -> Any:
        """(G, D-unsupervised, D-supervised): two D optimizers on the same parameters, own moments each."""
        (opt_g, opt_d), schedulers = super().configure_optimizers()
        opt_supervised = self.supervised_optimizer_factory(self.discriminator.parameters())
        if self.scheduler_factories[1] is not None:
            interval = self.hparams.lr_scheduler_interval
            schedulers.append({"scheduler": self.scheduler_factories[1](opt_supervised), "interval": interval})
        return [opt_g, opt_d, opt_supervised], schedulers

    def _discriminator_update(self, batch: Batch) -> dict:
        """Step 1 (supervised), then steps 2–3 (unsupervised real, fake) through the base D update; with
        ``d_objective="joint"`` one step of ``optimizer_d`` on both (``_joint_update``)."""
        if self.hparams.get("d_objective", "separate") == "joint" and self.hparams.adversarial:
            return self._joint_update(batch)
        logs = self._supervised_update(batch)
        if self.hparams.adversarial:
            logs.update(super()._discriminator_update(batch))
        return logs

    def _generator_update(self, batch: Batch) -> dict:
        return super()._generator_update(batch) if self.hparams.adversarial else {}

    def _joint_update(self, batch: Batch) -> dict:
        """Salimans et al. 2016's D objective in one optimizer step: L_supervised + ½·(BCE real + BCE fake) (their
        code's loss_lab + loss_unl); ``optimizer_d_supervised`` is not used."""
        optimizer = self.optimizers()[1]
        self.toggle_optimizer(optimizer)
        try:
            supervised = self.supervised_step(batch)
            unsupervised = self.discriminator_step(batch, "both")
            loss = supervised["loss"] + 0.5 * unsupervised["loss"]
            self._optimize(optimizer, loss, self.regularisers.gradient_clip_d, "d_loss")
        finally:
            self.untoggle_optimizer(optimizer)
        logs = {k: v.detach() for k, v in unsupervised.items() if k != "loss"}
        return {**logs, "d_supervised": supervised["loss"].detach(), "train_accuracy": supervised["train_accuracy"],
                "d_loss": loss.detach()}  # fmt: skip

    def _supervised_update(self, batch: Batch) -> dict:
        optimizer = self.optimizers()[2]
        self.toggle_optimizer(optimizer)
        try:
            step_logs = self.supervised_step(batch)
            self._optimize(optimizer, step_logs["loss"], self.regularisers.gradient_clip_d, "d_supervised")
        finally:
            self.untoggle_optimizer(optimizer)
        return {"d_supervised": step_logs["loss"].detach(), "train_accuracy": step_logs["train_accuracy"]}

    # ------------------------------------------------------------------ test accuracy
    def _evaluate(self, batch: Batch, split: str) -> None:
        images, labels = batch[0], batch[1]
        logits = self.classify(images)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        size = labels.shape[0]
        # on_epoch: the batch-size weighted mean over the whole split (summed over ranks under DDP)
        self.log(f"{split}_accuracy", accuracy, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        self.log(f"{split}_loss", F.cross_entropy(logits, labels), on_epoch=True, batch_size=size, sync_dist=True)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        """``val_accuracy`` / ``val_loss`` on the datamodule's validation split (what selection may use)."""
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")
