"""The mechanics under ``GANModule``'s training loop: optimizer stepping, the one-step-per-batch counter, the
NaN/Inf guard, the EMA update, per-rank RNG streams and RNG state in checkpoints.

A mixin for ``LightningModule`` subclasses (``GANModule`` and models that write their own ``training_step``,
e.g. SGAN with its extra optimizer, reuse these methods). It reads ``self.hparams.nan_guard``,
``self.hparams.ema_decay``, ``self.generator``/``self.generator_ema`` and the trainer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class NonFiniteLossError(RuntimeError):
    """A loss became NaN/Inf; training stopped before applying the bad update."""


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

    # ------------------------------------------------------------------ step counting, guards, EMA
    def _optim_progress(self) -> Any:
        if self._trainer is None:
            return None
        return self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress

    @staticmethod
    def _count_one_step(progress: Any, before: tuple[int, int]) -> None:
        """Make this batch count as exactly one step, however many optimizer steps it took."""
        total, current = before
        progress.total.ready = progress.total.completed = total + 1
        progress.current.ready = progress.current.completed = current + 1

    def _guard(self, losses: dict[str, torch.Tensor]) -> None:
        """Raise ``NonFiniteLossError`` (on every rank at once) when a loss is NaN/Inf."""
        if not self.hparams.nan_guard:
            return
        finite = bool(torch.stack([v.detach().float() for v in losses.values()]).isfinite().all())
        if self._trainer is not None and self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if finite:
            return
        values = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
        where = ""
        if self._trainer is not None:
            where = f" at GAN step {self.global_step} (epoch {self.current_epoch})"
        raise NonFiniteLossError(
            f"Non-finite loss{where}: {values}. Training stopped before applying this update; the last "
            "checkpoint in the run's checkpoints/ folder is the last good state. Try a lower learning rate, "
            "--model.gradient_clip_d / --model.gradient_clip_g, or a different --model.loss."
        )

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.hparams.ema_decay
        if self.hparams.get("ema_warmup", False):
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
        if self._trainer is None or self.trainer.world_size <= 1:
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
        if rng is None or self._trainer is None:
            return  # plain weight loading (e.g. `sample`) must not touch the global RNG
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
