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

from lightning_gans.compat import (
    attached_trainer,
    dynamo_graph_breaks,
    is_logging_step,
    optimizer_step_progress,
    optimizer_steps,
    retainable_compiled_graphs,
    set_optimizer_steps,
)
from lightning_gans.errors import ConfigError, NonFiniteLossError
from lightning_gans.models.compiled import (
    batch_to_channels_last,
    compile_networks,
    compile_options,
    networks_of,
    report_graph_breaks,
    to_channels_last,
)
from lightning_gans.models.options import EMA
from lightning_gans.models.precision import LossScaling, inner_optimizer
from lightning_gans.strategies import GANDDPStrategy

PROGRESS_BAR_LOSSES = ("d_loss", "g_loss", "e_loss", "fr_loss")
CONTROL_NONFINITE, CONTROL_STOP, CONTROL_SIZE = 0, 1, 2  # the control vector's slots


class LoopMechanics(LossScaling):
    """Optimizer stepping, step counting, guards, EMA and RNG handling for ``GANModule`` (see module docstring)."""

    # ------------------------------------------------------------------ one update: guard, backward, reduce, step
    def _optimize(self, optimizer: Any, loss: torch.Tensor, clip: float | None, name: str) -> None:
        """Guard ``loss`` (logged as ``name``), backpropagate it scaled for ``optimizer`` and step ``optimizer``:
        the whole optimizer update of every network whose gradients come from one ``backward``."""
        self._guard({name: loss})
        self._backward(loss, optimizer)
        self._step_optimizer(optimizer, clip)

    def _step_optimizer(self, optimizer: Any, clip: float | None) -> None:
        """Average the gradients of ``optimizer``'s parameters over the ranks (``gan_ddp``: exactly one bucketed
        all-reduce per optimizer step, carrying the control flags), unscale them (16-mixed), clip them, step (a
        16-mixed step with non-finite gradients is skipped), zero them.

        Every optimizer step of every model goes through here, whatever produced the gradients (``backward``,
        ``autograd.grad`` of the simultaneous update, the double backward of a gradient penalty), so no network
        is reduced twice or missed (``lightning_gans.strategies``) and every one is unscaled once
        (``lightning_gans.models.precision``).
        """
        inner = inner_optimizer(optimizer)
        params = [p for group in inner.param_groups for p in group["params"]]
        control = self._control_pending()
        trainer = attached_trainer(self)
        if trainer is not None and isinstance(trainer.strategy, GANDDPStrategy):
            control = trainer.strategy.reduce_gradients(params, control)
        self._note_control(control)
        self._scaler_step(optimizer, clip)
        optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ one batch = one GAN step
    def _gan_step(self, batch: Any, update: Callable[[Any], dict]) -> dict:
        """Run ``update(batch)`` (all optimizer steps of one batch, returning the detached losses) as one GAN step.

        Then the per-batch bookkeeping every loop shares: the batch counts as exactly one step however many
        optimizer steps it took (``global_step`` + 1), step-interval LR schedulers step, the EMA of G follows a
        G update, the losses are logged, and on logging steps the control flags are read (``_check_control``).
        Returns the logs.
        """
        trainer = attached_trainer(self)
        progress = optimizer_step_progress(trainer) if trainer is not None else None
        before = optimizer_steps(progress) if progress is not None else None
        self._step_started = int(before[0]) if before is not None else 0
        if self.hparams.get("channels_last"):
            batch = batch_to_channels_last(batch)  # here, not in on_after_batch_transfer: a datamodule may own that
        logs = update(batch)
        if getattr(self, "_graph_breaks_before", None) is not None:
            report_graph_breaks(self._graph_breaks_before)
            self._graph_breaks_before = None
        if progress is not None:
            set_optimizer_steps(progress, before[0] + 1, before[1] + 1)
        self._step_schedulers("step")
        if self.generator_ema is not None and "g_loss" in logs:
            self._update_ema()
        self._log_losses(logs, self._batch_size(batch))
        if trainer is None:
            self._check_control()
        elif is_logging_step(trainer) and self._check_control():
            trainer.should_stop = True  # every rank agreed to stop (a preemption request): end after this step
        return logs

    def _log_losses(self, logs: dict[str, torch.Tensor], batch_size: int) -> None:
        """Epoch means of every loss term under its own name (``d_loss``; accumulated on the device, reduced over
        the ranks once, at the epoch end) and, on logging steps only, the step values as ``<name>_step`` (reduced
        over the ranks then: the only collective of logging).

        The progress bar shows ``d``/``g`` (``e``/``fr`` in Age-cGAN's later stages): this rank's step losses, copied
        to the host on logging steps. Lightning re-reads progress-bar values after every batch; host copies keep
        that re-read off the device (a GPU tensor read back is a device sync, every step).

        Under a 16-mixed loss scaler a step whose gradients overflowed is skipped, and the terms computed from
        them (a gradient penalty's) are not finite there: they count as 0 in the epoch means (biased low by the
        fraction of skipped steps, typically < 0.1 %), and as they are in the step values."""
        epoch = logs
        if self._scaler_guard_active():
            epoch = {k: torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0) for k, v in logs.items()}
        self.log_dict(epoch, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)
        trainer = attached_trainer(self)
        if trainer is not None and not is_logging_step(trainer):
            return
        self.log_dict({f"{k}_step": v for k, v in logs.items()}, on_step=True, on_epoch=False, batch_size=batch_size,
                      sync_dist=True)  # fmt: skip
        bar = {k.removesuffix("_loss"): v.detach().cpu() for k, v in logs.items() if k in PROGRESS_BAR_LOSSES}
        self.log_dict(bar, prog_bar=True, logger=False, on_step=True, on_epoch=False, batch_size=batch_size)

    def _step_schedulers(self, interval: str) -> None:
        if self.hparams.lr_scheduler_interval != interval:
            return
        for config in self.trainer.lr_scheduler_configs:
            config.scheduler.step()

    def on_train_epoch_end(self) -> None:
        self._step_schedulers("epoch")

    # ------------------------------------------------------------------ the NaN guard and the control flags
    def _guard(self, losses: dict[str, torch.Tensor]) -> None:
        """Flag a NaN/Inf among ``losses`` on the device (no host sync); the flag reaches every rank with the
        next gradient reduction and is read on logging steps and before every checkpoint (``_check_control``).
        Under a 16-mixed loss scaler non-finite values are the scaler's (``models.precision``): no flag here."""
        if not self.hparams.nan_guard or self._scaler_guard_active():
            return
        bad = ~torch.stack([v.detach().float().reshape(()) for v in losses.values()]).isfinite().all()
        control = self._control_pending()
        control[CONTROL_NONFINITE] += bad.to(control.dtype)

    def request_stop(self) -> None:
        """Ask every rank to stop at the same GAN step (a preemption signal handler calls this): the request
        travels with the next gradient reduction and is acted on at the next check (``stop_agreed``)."""
        self._stop_requested = True

    def _control_pending(self) -> torch.Tensor:
        """This rank's control vector since the last reduction: [non-finite losses seen, stop requested]."""
        pending = getattr(self, "_pending", None)
        if pending is None or pending.device != self.device:
            pending = self._pending = torch.zeros(CONTROL_SIZE, device=self.device)
            self._first_nonfinite = torch.full((), -1, dtype=torch.long, device=self.device)
            self._stop_flag = torch.zeros((), dtype=torch.bool, device=self.device)
        if getattr(self, "_stop_requested", False):
            pending[CONTROL_STOP] = 1.0
        return pending

    def _note_control(self, control: torch.Tensor) -> None:
        """Fold one reduction's control vector (summed over ranks) into the run's device-side state."""
        step = getattr(self, "_step_started", int(self.global_step))
        bad = (control[CONTROL_NONFINITE] > 0) & (self._first_nonfinite < 0)
        self._first_nonfinite.masked_fill_(bad, step)
        self._stop_flag |= control[CONTROL_STOP] > 0
        self._pending.zero_()

    def _check_control(self) -> bool:
        """Read the control state on the host (one sync): raise ``NonFiniteLossError`` naming the first GAN step
        whose loss was NaN/Inf on any rank; return whether every rank agreed to stop (a preemption request).

        Called on logging steps (every ``trainer.log_every_n_steps`` GAN steps), before every checkpoint save and
        at the end of fit, so a non-finite update never reaches a checkpoint and the run stops at most
        ``log_every_n_steps`` steps after it. Every rank holds the same reduced values, so every rank raises.
        """
        if getattr(self, "_pending", None) is None:
            return False
        state = torch.stack([self._first_nonfinite.double(), self._stop_flag.double(), *self._loss_scales()])
        first, stop, *scales = state.tolist()
        first, stop = int(first), int(stop)
        self.stop_agreed = bool(stop)
        collapsed = self._collapsed_scale(scales) if self.hparams.nan_guard else None
        if collapsed:
            raise NonFiniteLossError(
                f"Non-finite gradients at almost every step: {collapsed}. Training stopped; the last checkpoint in the "
                "run's checkpoints/ folder is the last good state. Try --trainer.precision=bf16-mixed or 32, a lower "
                "learning rate, or --model.regularisers.gradient_clip_d / gradient_clip_g."
            )
        if first >= 0:
            raise NonFiniteLossError(
                f"Non-finite loss at GAN step {first} (on at least one rank; checked every "
                f"{self._check_interval()} steps and before every checkpoint): training stopped, and no checkpoint "
                "was written after that step: the last checkpoint in the run's checkpoints/ folder is the last "
                "good state. Try a lower learning rate, --model.regularisers.gradient_clip_d / "
                "--model.regularisers.gradient_clip_g, or a different --model.loss."
            )
        return bool(stop)

    def _check_interval(self) -> int:
        trainer = attached_trainer(self)
        return trainer.log_every_n_steps if trainer is not None else 1

    def on_train_end(self) -> None:
        self._check_control()

    def _check_strategy(self) -> None:
        """Several ranks need ``gan_ddp`` (the one place gradients are reduced); refuse anything else."""
        trainer = attached_trainer(self)
        if trainer is None or trainer.world_size <= 1 or isinstance(trainer.strategy, GANDDPStrategy):
            return
        raise ConfigError(
            f"GAN modules train on several devices with --trainer.strategy=gan_ddp (one gradient reduction per "
            f"optimizer step); got {type(trainer.strategy).__name__}. In Python: Trainer(strategy='gan_ddp')."
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

    # ------------------------------------------------------------------ fit start: precision, compile, memory format
    def configure_model(self) -> None:
        """Before a resumed checkpoint is restored: take over 16-mixed loss scaling (``models.precision``), store
        the networks channels-last and compile them when asked (``models.compiled``)."""
        self._take_loss_scaling()
        networks = networks_of(*self._compiled_networks())
        if self.hparams.get("channels_last"):
            to_channels_last(networks)
        options = compile_options(self.hparams.get("compile"))
        if options is not None:
            if self._retains_graphs():
                retainable_compiled_graphs()
            before = dynamo_graph_breaks()
            if compile_networks(networks, options):
                self._graph_breaks_before = before

    def _compiled_networks(self) -> tuple[nn.Module | None, ...]:
        """The networks ``compile``/``channels_last`` apply to: G and D (a subclass may add its own)."""
        return (self.generator, self.discriminator)

    def _retains_graphs(self) -> bool:
        """Whether an update differentiates one forward pass twice (``retain_graph=True``; the simultaneous one)."""
        return getattr(getattr(self, "schedule", None), "update", None) == "simultaneous"

    # ------------------------------------------------------------------ RNG: per-rank streams, checkpoints
    def on_train_start(self) -> None:
        self._check_strategy()
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
        if attached_trainer(self) is not None:
            self._check_control()  # a non-finite update never reaches a checkpoint
        self._save_scalers(checkpoint)
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["lightning_gans_rng"] = rng

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._load_scalers(checkpoint)
        rng = checkpoint.get("lightning_gans_rng")
        if rng is None or attached_trainer(self) is None:
            return  # plain weight loading (e.g. `sample`) must not touch the global RNG
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
