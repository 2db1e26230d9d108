"""Conditional GAN (Mirza & Osindero 2014) on MNIST as in *GANs in Action* ch. 8.

Networks: ``CGANGenerator28`` (z ⊙ Embedding(y) → the ch. 7 generator) and ``CGANDiscriminator28`` (the label
as a learned second image channel); see ``networks/cgan.py``. Batches are ``(images, labels)``.

Per iteration (one GAN step, three optimizer steps — the base loop with ``d_steps="real_then_fake"``):
D on (real, real labels) → 1; D on (G(z, real labels), real labels) → 0; G with fresh z and fresh uniform
random labels y′ on D(G(z, y′), y′) → 1 (non-saturating). D's fakes come from G in inference mode, as the
book's ``generator.predict`` (``d_fakes_eval_mode``). ``mismatched_real_as_fake`` (off, as in the book) also
shows D real images with wrong labels as fakes in its fake step (Reed et al. 2016, GAN-CLS).

``sample(n, labels=LongTensor)`` draws the requested digits (labels 0, 1, …, 9, 0, … when omitted);
``sample_fixed()`` is the class grid: row c holds digit c for each fixed latent.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from lightning_gans.models._keras_predict import eval_mode
from lightning_gans.models.base import Batch, GANModule
from lightning_gans.models.options import Schedule
from lightning_gans.networks.cgan import CGANDiscriminator28, CGANGenerator28


def check_labels(labels: Any, n: int, num_classes: int, device: torch.device) -> torch.Tensor:
    """``labels`` as a LongTensor of shape (n,) on ``device``, or ValueError saying what is wrong."""
    labels = torch.as_tensor(labels, device=device)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    labels = labels.long()
    if labels.shape != (n,):
        raise ValueError(f"need one label per sample: shape ({n},), got {tuple(labels.shape)}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}], got {sorted(set(labels.tolist()))}")
    return labels


class CGAN(GANModule):
    """Conditional GAN: ``generator(z, labels)``, ``discriminator(x, labels)`` → logits (see module docstring)."""

    conditional = True

    def __init__(
        self,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        schedule: Schedule = Schedule(d_steps="real_then_fake"),
        d_fakes_eval_mode: bool = True,
        mismatched_real_as_fake: bool = False,
        **kwargs: Any,
    ) -> None:
        latent_dim = kwargs.get("latent_dim", 100)
        generator = generator or CGANGenerator28(latent_dim=latent_dim)
        discriminator = discriminator or CGANDiscriminator28(num_classes=getattr(generator, "num_classes", 10))
        num_classes = int(getattr(generator, "num_classes", 10))
        if getattr(discriminator, "num_classes", num_classes) != num_classes:
            raise ValueError(
                f"generator has {num_classes} classes but the discriminator {discriminator.num_classes}: "
                "set num_classes to the same value in both"
            )
        super().__init__(generator=generator, discriminator=discriminator, schedule=schedule, **kwargs)
        self.num_classes = num_classes

    # ------------------------------------------------------------------ hooks
    def _labels(self, batch: Batch) -> torch.Tensor:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("CGAN trains on (images, labels) batches; this datamodule yields no labels")
        return batch[1]

    def random_labels(self, n: int) -> torch.Tensor:
        """n labels drawn uniformly from the classes (the book's G-step labels)."""
        return torch.randint(0, self.num_classes, (n,), device=self.device)

    def generate(self, batch: Batch) -> torch.Tensor:
        """Fakes with the batch's own labels (the book's D fake step)."""
        labels = self._labels(batch)
        return self.generator(self.sample_noise(labels.shape[0]), labels)

    def discriminate(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """D logits for ``x`` under the labels of ``batch``."""
        return self.discriminator(x, self._labels(batch))

    def discriminator_step(self, batch: Batch, part: Literal["both", "real", "fake"] = "both") -> dict:
        with eval_mode(self.generator, self.hparams.d_fakes_eval_mode):
            logs = super().discriminator_step(batch, part)
        if self.hparams.mismatched_real_as_fake and part in ("both", "fake"):
            real, labels = self.real_samples(batch), self._labels(batch)
            shift = torch.randint(1, self.num_classes, labels.shape, device=labels.device)
            wrong = (labels + shift) % self.num_classes  # never the true label
            scores = self.discriminate(real, (real, wrong))
            logs["d_mismatched"] = self.adversarial_loss.discriminator_fake(scores)
            logs["loss"] = logs["loss"] + logs["d_mismatched"]
        return logs

    def generator_step(self, batch: Batch) -> dict:
        """Fresh z and fresh uniform labels y′: the base G loss on D(G(z, y′), y′)."""
        real = self.real_samples(batch)
        return super().generator_step((real, self.random_labels(real.shape[0])))

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, noise: torch.Tensor | None = None, labels: Any = None) -> torch.Tensor:
        """``n`` images of the requested ``labels`` (default 0, 1, …, 9, 0, …), in eval mode."""
        if labels is None:
            labels = torch.arange(n) % self.num_classes
        labels = check_labels(labels, n, self.num_classes, self.device)
        z = self.sample_noise(n) if noise is None else noise.to(self.device, self.dtype)
        with eval_mode(self.sampling_generator) as net:
            return net(z, labels)

    def sample_fixed(self) -> torch.Tensor:
        """The class grid: ``num_classes`` rows (row c = digit c), one column per fixed latent."""
        k = self.fixed_noise.shape[0]
        labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(k)
        return self.sample(len(labels), noise=self.fixed_noise.repeat(self.num_classes, 1), labels=labels)
