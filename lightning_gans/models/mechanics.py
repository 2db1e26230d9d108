"""The mechanics under ``GANModule``'s training loop: optimizer stepping, the per-batch bookkeeping of one GAN
step (the one-step-per-batch counter, step-interval LR schedulers, the EMA update, logging), the NaN/Inf guard,
the EMA itself, per-rank RNG streams and RNG state in checkpoints.

A mixin for ``LightningModule`` subclasses (``GANModule`` and models that write their own ``training_step``,
e.g. CycleGAN with its own update order, call ``_gan_step``; SGAN with its extra optimizer reuses the steps). It
reads ``self.hparams`` (``nan_guard``, ``lr_scheduler_interval``), the ``self.ema`` option group (``options.EMA``),
``self.generator``/``self.generator_ema``, the ``_batch_size(batch)`` hook and the trainer. Lightning internals
are reached only through ``lightning_gans.compat``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lightning_gans.compat import attached_trainer, optimizer_step_progress, optimizer_steps, set_optimizer_steps
from lightning_gans.errors import NonFiniteLossError  # noqa: F401 - re-exported (old import path)
from lightning_gans.models.options import EMA


class LoopMechanics:
    """Optimizer stepping, step counting, guards, EMA and RNG handling for ``GANModule`` (see module docstring)."""

    def _all_reduce_grads(self, params: list[nn.Parameter]) -> None:
        """Average gradients over DDP ranks (what DDP's reducer does for ``backward()``)."""
        if self.trainer.world_size <= 1 or not torch.distributed.is_initialized():
            return
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.trainer.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def _clip_and_step(self, optimizer: Any, clip: float | None) -> None:
        if clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ one batch = one GAN step
    def _gan_step(self, batch: Any, update: Callable[[Any], dict]) -> dict:
        """Run ``update(batch)`` (all optimizer steps of one batch, returning the detached losses) as one GAN step.

        Then the per-batch bookkeeping every loop shares: the batch counts as exactly one step however many
        optimizer steps it took (``global_step`` + 1), step-interval LR schedulers step, the EMA of G follows a
        G update, and the losses are logged. Returns the logs.
        """
        trainer = attached_trainer(self)
        progress = optimizer_step_progress(trainer) if trainer is not None else None
        before = optimizer_steps(progress) if progress is not None else None
        logs = update(batch)
        if progress is not None:
            set_optimizer_steps(progress, before[0] + 1, before[1] + 1)
        self._step_schedulers("step")
        if self.generator_ema is not None and "g_loss" in logs:
            self._update_ema()
        self._log_losses(logs, self._batch_size(batch))
        return logs

    def _log_losses(self, logs: dict[str, torch.Tensor], batch_size: int) -> None:
        """``d_loss``/``g_loss`` on the progress bar, the other terms beside them; sync_dist: epoch means over all
        ranks (a no-op without DDP)."""
        bar = {k: logs[k] for k in ("d_loss", "g_loss") if k in logs}
        rest = {k: v for k, v in logs.items() if k not in bar}
        self.log_dict(bar, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=True)
        self.log_dict(rest, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=True)

    def _step_schedulers(self, interval: str) -> None:
        if self.hparams.lr_scheduler_interval != interval:
            return
        for config in self.trainer.lr_scheduler_configs:
            config.scheduler.step()

    def on_train_epoch_end(self) -> None:
        self._step_schedulers("epoch")

    # ------------------------------------------------------------------ guards, EMA
    def _guard(self, losses: dict[str, torch.Tensor]) -> None:
        """Raise ``NonFiniteLossError`` (on every rank at once) when a loss is NaN/Inf."""
        if not self.hparams.nan_guard:
            return
        finite = bool(torch.stack([v.detach().float() for v in losses.values()]).isfinite().all())
        if attached_trainer(self) is not None and self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if finite:
            return
        values = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
        where = ""
        if attached_trainer(self) is not None:
            where = f" at GAN step {self.global_step} (epoch {self.current_epoch})"
        raise NonFiniteLossError(
            f"Non-finite loss{where}: {values}. Training stopped before applying this update; the last "
            "checkpoint in the run's checkpoints/ folder is the last good state. Try a lower learning rate, "
            "--model.regularisers.gradient_clip_d / --model.regularisers.gradient_clip_g, or a different --model.loss."
        )

    def _init_ema(self, generator: nn.Module, ema: EMA) -> None:
        """``generator_ema`` (a frozen copy of ``generator``, or None) and, with the warm-up, its update count."""
        self.generator_ema: nn.Module | None = None
        if ema.decay is not None:
            self.generator_ema = copy.deepcopy(generator).requires_grad_(False).eval()
        if ema.warmup:  # the update count the ramp reads; a buffer, so a resumed run continues the ramp
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.ema.decay
        if self.ema.warmup:
            t = int(self.ema_updates)
            decay = min(decay, (1.0 + t) / (10.0 + t))
            self.ema_updates += 1
        for ema_p, p in zip(self.generator_ema.parameters(), self.generator.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            ema_b.copy_(b)

    # ------------------------------------------------------------------ RNG: per-rank streams, checkpoints
    def on_train_start(self) -> None:
        self._decorrelate_ranks()

    def _decorrelate_ranks(self) -> None:
        """Give every DDP rank its own noise/dropout stream.

        ``seed_everything`` seeds every rank identically (and a resumed run restores rank 0's saved state on
        all ranks), so without this each rank would draw the *same* z: the global fake batch would be
        ``world_size`` copies of one per-rank batch. Every rank draws one seed from the shared stream and adds
        its rank, which stays deterministic for a given seed and world size.
        """
        if attached_trainer(self) is None or self.trainer.world_size <= 1:
            return
        seed = int(torch.randint(0, 2**62, (1,)))
        torch.manual_seed(seed + self.global_rank)

    # ------------------------------------------------------------------ checkpoint RNG state
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["lightning_gans_rng"] = rng

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("lightning_gans_rng")
        if rng is None or attached_trainer(self) is None:
            return  # plain weight loading (e.g. `sample`) must not touch the global RNG
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
