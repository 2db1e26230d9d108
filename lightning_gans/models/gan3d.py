"""3D-GAN (Wu et al. 2016) on voxel volumes as in *GAN Projects* ch. 2 (reference: gan-projects-and-dcgan.md §3).

Networks: ``VoxelGenerator`` / ``VoxelDiscriminator`` (``networks/gan3d.py``), 64³ (the chapter) or 32³.
The chapter's training, kept as defaults here and in ``experiments/gan3d_shapenet.yaml``:

* z ∈ R^200 ~ N(0, 0.33²) (``noise_std=0.33``, the chapter's std);
* BCE (``loss="non_saturating"``: D maximises log D(x) + log(1 − D(G(z))), G trained with target 1); D outputs
  logits and the sigmoid lives in BCE-with-logits (numerically safer than the chapter's sigmoid + BCE);
* per batch three optimizer steps — D on the real batch (labels 1), D on a fake batch (labels 0), then G on fresh
  z (``d_steps="real_then_fake"``, the Keras ``train_on_batch`` order of the chapter);
* Adam G lr 0.0025 β1 0.5; Adam D lr 1e-5 β1 **0.9** (the chapter's values; Keras epsilon 1e-7 in the YAML).

Paper option (Wu et al. 2016, §3.1): ``d_accuracy_gate=0.8`` updates D only while its accuracy on the *previous*
batch ("the last batch") is at most 0.8 — D easily outruns G on voxels. The accuracy counts real logits > 0 and
fake logits < 0 over the batch's D evaluations; under DDP the counts are summed over ranks, so every rank takes
the same decision (a rank skipping a step the others take would desynchronise the replicas). When D skips a
batch its scores are still computed (no gradient) so the gate can reopen. The last accuracy is a buffer, saved in
checkpoints, so a resumed run decides as the uninterrupted one would. ``d_accuracy`` and ``d_updated`` (1/0) are
logged every step.

Samples are occupancy probabilities in [0, 1] (sigmoid output, the chapter's {0, 1} data), N×1×R×R×R — not the
[-1, 1] images of the 2-D models; renders and metrics threshold them at 0.5. Sampling uses BatchNorm's running
statistics (eval mode, as every model here) so a sample does not depend on its batch — the chapter calls BN with
``training=True`` even at inference, which would make the metrics depend on how samples are batched (and on the
number of DDP ranks).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from lightning_gans.compat import attached_trainer
from lightning_gans.models.base import Batch, GANModule
from lightning_gans.models.options import Schedule
from lightning_gans.networks.gan3d import VoxelDiscriminator, VoxelGenerator


def _adam_g(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=0.0025, betas=(0.5, 0.999), eps=1e-7)


def _adam_d(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-7)


class GAN3D(GANModule):
    """3D-GAN: voxel generator and discriminator on the base loop; optional D-accuracy gate (module docstring)."""

    volumetric = True  # samples are N×1×D×H×W occupancies in [0, 1] (renders, `sample`, the voxel metric)

    def __init__(
        self,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        resolution: int = 64,
        latent_dim: int = 200,
        noise_std: float = 0.33,
        schedule: Schedule = Schedule(d_steps="real_then_fake"),
        d_accuracy_gate: float | None = None,
        optimizer_g: OptimizerCallable = _adam_g,
        optimizer_d: OptimizerCallable = _adam_d,
        **kwargs: Any,
    ) -> None:
        if d_accuracy_gate is not None and not 0.0 < d_accuracy_gate <= 1.0:
            raise ValueError(f"d_accuracy_gate must be in (0, 1] (Wu et al. use 0.8) or None, got {d_accuracy_gate}")
        generator = generator or VoxelGenerator(latent_dim=latent_dim, resolution=resolution)
        discriminator = discriminator or VoxelDiscriminator(resolution=resolution)
        sizes = {getattr(generator, "resolution", resolution), getattr(discriminator, "resolution", resolution)}
        if sizes != {resolution}:
            raise ValueError(
                f"resolution={resolution} but the networks are built for {sorted(sizes)}: set the same resolution "
                "on the model, the generator, the discriminator and the datamodule"
            )
        super().__init__(
            generator=generator,
            discriminator=discriminator,
            latent_dim=latent_dim,
            noise_std=noise_std,
            schedule=schedule,
            optimizer_g=optimizer_g,
            optimizer_d=optimizer_d,
            **kwargs,
        )
        self.register_buffer("last_d_accuracy", torch.tensor(-1.0))  # < 0: no batch seen yet
        self._accuracy_counts: list[torch.Tensor] = []

    # ------------------------------------------------------------------ D accuracy gate (Wu et al. 2016)
    def _d_loss_terms(self, real_scores: torch.Tensor | None, fake_scores: torch.Tensor | None) -> dict:
        for scores, real in ((real_scores, True), (fake_scores, False)):
            if scores is not None:
                correct = ((scores.detach() > 0) if real else (scores.detach() < 0)).float()
                self._accuracy_counts.append(torch.stack([correct.sum(), torch.ones_like(correct).sum()]))
        return super()._d_loss_terms(real_scores, fake_scores)

    def _batch_accuracy(self) -> torch.Tensor:
        """D's accuracy over the D evaluations since the last call, summed over DDP ranks."""
        counts = torch.stack(self._accuracy_counts).sum(0).float()
        self._accuracy_counts = []
        if attached_trainer(self) is not None and self.trainer.world_size > 1:
            counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        return counts[0] / counts[1].clamp_min(1)

    def _discriminator_update(self, batch: Batch) -> dict:
        gate = self.hparams.get("d_accuracy_gate")
        self._accuracy_counts = []
        if gate is None:
            logs = super()._discriminator_update(batch)
            logs["d_accuracy"] = self._batch_accuracy()
            return logs
        closed = bool(self.last_d_accuracy > gate)
        if closed:  # D too good on the last batch: measure only, no update
            with torch.no_grad():
                step_logs = self.discriminator_step(batch)
            logs = {k: v.detach() for k, v in step_logs.items() if k != "loss"}
            logs["d_loss"] = step_logs["loss"].detach()
        else:
            logs = super()._discriminator_update(batch)
        accuracy = self._batch_accuracy()
        self.last_d_accuracy.fill_(float(accuracy))
        logs["d_accuracy"] = accuracy
        logs["d_updated"] = torch.tensor(0.0 if closed else 1.0, device=accuracy.device)
        return logs
