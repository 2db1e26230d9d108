"""``GANModule``: the manual-optimisation training schedule every GAN in the project plugs into.

A subclass supplies networks and, at most, a few small hooks; the base runs the loop:

* **Schedule.** ``update="alternating"`` (default): every batch one discriminator update, then a generator
  update on every ``n_critic``-th batch (each critic iteration sees a fresh real batch, as in Arjovsky et al.
  2017, Alg. 1). ``d_steps="real_then_fake"`` splits the D update into two optimizer steps, one on a
  real-only batch and one on a fake-only batch — the Keras ``train_on_batch`` order of the books' seeds,
  which changes BatchNorm statistics and Adam state compared with one joint step.
  ``update="simultaneous"``: the TF2 ``GradientTape`` style of the DCGAN seed — one forward pass, both
  gradients taken before either optimizer steps.
* **Toggled optimizers.** While one network updates, the other's parameters have ``requires_grad=False``
  (``toggle_optimizer``), so no graph is built for it.
* **One honest step counter.** Lightning's ``global_step`` counts every ``optimizer.step()``; with two or
  three optimizer steps per batch ``max_steps`` and checkpoint intervals would silently mean something else.
  The base makes ``global_step`` advance by exactly one per batch ("GAN step"), whatever the number of
  optimizer steps, so ``max_steps``, ``every_n_train_steps`` and the logger's x-axis all count batches.
* **Per-network LR schedulers** (``lr_scheduler_g``/``lr_scheduler_d``), stepped per epoch or per step.
* **Gradient clipping** per network (``gradient_clip_g``/``gradient_clip_d``, by norm).
* **Fixed noise** (``fixed_noise`` buffer, saved in checkpoints) for comparable sample grids.
* **NaN/Inf guard.** Losses are checked before backward (the decision is synchronised across DDP ranks);
  a non-finite loss stops training with ``NonFiniteLossError`` before the bad update, so the last
  checkpoint on disk stays the last good one.
* **EMA of G** (``ema_decay``): an exponential moving average of the generator's weights (Karras et al.
  2018; Yazıcı et al. 2019), used by ``sample()`` when enabled.
* **Resume.** The global torch RNG state is stored in checkpoints and restored on resume, so a resumed run
  draws the same noise and the same data order as an uninterrupted one.

DDP: manual optimisation with toggled optimizers leaves the other network's parameters unused in each
backward; ``find_unused_parameters=True`` is required. The CLI upgrades ``strategy=ddp`` accordingly
(see ``lightning_gans.cli``). The simultaneous update takes gradients with ``torch.autograd.grad`` and
averages them across ranks itself (``_all_reduce_grads``), which is exactly what DDP's reducer would do.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lightning_gans.losses import get_loss

Batch = Any


class NonFiniteLossError(RuntimeError):
    """A loss became NaN/Inf; training stopped before applying the bad update."""


def _built_by_cli() -> bool:
    """True while LightningCLI instantiates the module (it supplies the config as hyperparameters)."""
    try:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
    except ImportError:  # pragma: no cover - Lightning internals moved
        return False
    return _given_hyperparameters.get() is not None


def _adam(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


class GANModule(pl.LightningModule):
    """Base LightningModule for one-generator/one-discriminator GANs (see module docstring)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        latent_dim: int = 100,
        noise_std: float = 1.0,
        loss: str = "non_saturating",
        optimizer_g: OptimizerCallable = _adam,
        optimizer_d: OptimizerCallable = _adam,
        lr_scheduler_g: LRSchedulerCallable | None = None,
        lr_scheduler_d: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["epoch", "step"] = "epoch",
        update: Literal["alternating", "simultaneous"] = "alternating",
        d_steps: Literal["joint", "real_then_fake"] = "joint",
        n_critic: int = 1,
        gradient_clip_g: float | None = None,
        gradient_clip_d: float | None = None,
        ema_decay: float | None = None,
        num_fixed_noise: int = 16,
        fixed_noise_seed: int = 1234,
        nan_guard: bool = True,
    ) -> None:
        super().__init__()
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        if update == "simultaneous" and (n_critic != 1 or d_steps != "joint"):
            raise ValueError("update='simultaneous' takes one joint step per batch: use n_critic=1, d_steps='joint'")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
        # Read by the loop on every batch; kept as attributes because ``hparams`` is a dict (``hparams.update``
        # would be ``dict.update``) and, under LightningCLI, holds config values rather than objects.
        self.update_mode = update
        self.d_steps_mode = d_steps
        # Under LightningCLI the saved hparams are the config (networks as class_path dicts), which makes
        # checkpoints self-describing for `lightning-gans sample`; modules built in Python keep only scalars.
        self.save_hyperparameters(ignore=[] if _built_by_cli() else ["generator", "discriminator"])
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.adversarial_loss = get_loss(loss)
        # Callables are kept as attributes: under LightningCLI ``hparams`` holds their config dicts.
        self.optimizer_factories = (optimizer_g, optimizer_d)
        self.scheduler_factories = (lr_scheduler_g, lr_scheduler_d)
        gen_latent = getattr(generator, "latent_dim", latent_dim)
        if gen_latent != latent_dim:
            raise ValueError(
                f"latent_dim={latent_dim} but the generator expects latent_dim={gen_latent}: set both to the same value"
            )
        self.generator_ema: nn.Module | None = None
        if ema_decay is not None:
            self.generator_ema = copy.deepcopy(generator).requires_grad_(False).eval()
        seeded = torch.Generator().manual_seed(fixed_noise_seed)
        self.register_buffer("fixed_noise", torch.randn(num_fixed_noise, latent_dim, generator=seeded) * noise_std)

    # ------------------------------------------------------------------ hooks for subclasses
    def sample_noise(self, n: int) -> torch.Tensor:
        """Latent vectors z ~ N(0, noise_std²), shape (n, latent_dim)."""
        return torch.randn(n, self.hparams.latent_dim, device=self.device) * self.hparams.noise_std

    def real_samples(self, batch: Batch) -> torch.Tensor:
        """The real images/points in a batch (``(x, y)`` tuples by default)."""
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def generate(self, batch: Batch) -> torch.Tensor:
        """Fakes for a training batch (same size; conditional models read their labels from ``batch``)."""
        return self.generator(self.sample_noise(self.real_samples(batch).shape[0]))

    def discriminate(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Discriminator logits for ``x`` (conditional models read the condition from ``batch``)."""
        return self.discriminator(x)

    def discriminator_step(self, batch: Batch, part: Literal["both", "real", "fake"] = "both") -> dict:
        """D loss terms on real and/or generated samples; ``loss`` is what is minimised."""
        logs: dict[str, torch.Tensor] = {}
        loss = 0.0
        if part in ("both", "real"):
            logs["d_real"] = self.adversarial_loss.discriminator_real(
                self.discriminate(self.real_samples(batch), batch)
            )
            loss = loss + logs["d_real"]
        if part in ("both", "fake"):
            with torch.no_grad():
                fake = self.generate(batch)
            logs["d_fake"] = self.adversarial_loss.discriminator_fake(self.discriminate(fake, batch))
            loss = loss + logs["d_fake"]
        logs["loss"] = loss
        return logs

    def generator_step(self, batch: Batch) -> dict:
        """G loss on a fresh batch of fakes (fresh z, as the books' seeds do)."""
        fake = self.generate(batch)
        return {"loss": self.adversarial_loss.generator(self.discriminate(fake, batch))}

    def simultaneous_losses(self, batch: Batch) -> tuple[dict, dict]:
        """One forward pass shared by both losses (TF2 GradientTape style): returns (d_logs, g_logs)."""
        fake = self.generate(batch)
        real_logits = self.discriminate(self.real_samples(batch), batch)
        fake_logits = self.discriminate(fake, batch)
        d_real = self.adversarial_loss.discriminator_real(real_logits)
        d_fake = self.adversarial_loss.discriminator_fake(fake_logits)
        d_logs = {"loss": d_real + d_fake, "d_real": d_real, "d_fake": d_fake}
        return d_logs, {"loss": self.adversarial_loss.generator(fake_logits)}

    @property
    def sampling_generator(self) -> nn.Module:
        """The network used for sampling: the EMA copy when enabled, else the generator."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def sample(self, n: int, noise: torch.Tensor | None = None, **condition: Any) -> torch.Tensor:
        """``n`` samples in [-1, 1] (eval mode: BatchNorm uses running statistics, dropout off)."""
        net = self.sampling_generator
        was_training = net.training
        net.eval()
        try:
            z = self.sample_noise(n) if noise is None else noise.to(self.device)
            return net(z)
        finally:
            net.train(was_training)

    def sample_fixed(self) -> torch.Tensor:
        """Samples from the fixed noise buffer (the per-epoch grid)."""
        return self.sample(self.fixed_noise.shape[0], noise=self.fixed_noise)

    # ------------------------------------------------------------------ optimisers
    def configure_optimizers(self) -> Any:
        opt_g = self.optimizer_factories[0](self.generator.parameters())
        opt_d = self.optimizer_factories[1](self.discriminator.parameters())
        schedulers = []
        for opt, factory in zip((opt_g, opt_d), self.scheduler_factories):
            if factory is not None:
                schedulers.append({"scheduler": factory(opt), "interval": self.hparams.lr_scheduler_interval})
        return [opt_g, opt_d], schedulers

    def _step_schedulers(self, interval: str) -> None:
        if self.hparams.lr_scheduler_interval != interval:
            return
        for config in self.trainer.lr_scheduler_configs:
            config.scheduler.step()

    # ------------------------------------------------------------------ training loop
    @property
    def gan_step(self) -> int:
        """Batches trained so far (== ``global_step`` thanks to the step-count correction)."""
        return self.global_step

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        progress = self._optim_progress()
        before = (progress.total.completed, progress.current.completed) if progress is not None else None
        if self.update_mode == "simultaneous":
            logs = self._simultaneous_update(batch)
        else:
            logs = self._discriminator_update(batch)
            if (self.gan_step + 1) % self.hparams.n_critic == 0:
                logs.update(self._generator_update(batch))
        if progress is not None:
            self._count_one_step(progress, before)
        self._step_schedulers("step")
        if self.generator_ema is not None and "g_loss" in logs:
            self._update_ema()
        bar = {k: v for k, v in logs.items() if k in ("d_loss", "g_loss")}
        rest = {k: v for k, v in logs.items() if k not in bar}
        size = self._batch_size(batch)
        # sync_dist: epoch means over all ranks (a no-op without DDP).
        self.log_dict(bar, prog_bar=True, on_step=True, on_epoch=True, batch_size=size, sync_dist=True)
        self.log_dict(rest, on_step=True, on_epoch=True, batch_size=size, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self._step_schedulers("epoch")

    def _batch_size(self, batch: Batch) -> int:
        return self.real_samples(batch).shape[0]

    def _discriminator_update(self, batch: Batch) -> dict:
        opt_d = self.optimizers()[1]
        parts = ("real", "fake") if self.d_steps_mode == "real_then_fake" else ("both",)
        logs: dict[str, torch.Tensor] = {}
        d_loss = 0.0
        self.toggle_optimizer(opt_d)
        try:
            for part in parts:
                step_logs = self.discriminator_step(batch, part)
                self._guard({"d_loss": step_logs["loss"]})
                self.manual_backward(step_logs["loss"])
                self._clip_and_step(opt_d, self.hparams.gradient_clip_d)
                logs.update({k: v.detach() for k, v in step_logs.items() if k != "loss"})
                d_loss = d_loss + step_logs["loss"].detach()
            logs["d_loss"] = d_loss
        finally:
            self.untoggle_optimizer(opt_d)
        return logs

    def _generator_update(self, batch: Batch) -> dict:
        opt_g = self.optimizers()[0]
        self.toggle_optimizer(opt_g)
        try:
            step_logs = self.generator_step(batch)
            self._guard({"g_loss": step_logs["loss"]})
            self.manual_backward(step_logs["loss"])
            self._clip_and_step(opt_g, self.hparams.gradient_clip_g)
        finally:
            self.untoggle_optimizer(opt_g)
        extra = {k: v.detach() for k, v in step_logs.items() if k != "loss"}
        return {"g_loss": step_logs["loss"].detach(), **extra}

    def _simultaneous_update(self, batch: Batch) -> dict:
        opt_g, opt_d = self.optimizers()
        d_logs, g_logs = self.simultaneous_losses(batch)
        self._guard({"d_loss": d_logs["loss"], "g_loss": g_logs["loss"]})
        g_params = [p for p in self.generator.parameters() if p.requires_grad]
        d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        g_grads = torch.autograd.grad(g_logs["loss"], g_params, retain_graph=True)
        d_grads = torch.autograd.grad(d_logs["loss"], d_params)
        for params, grads in ((g_params, g_grads), (d_params, d_grads)):
            for p, g in zip(params, grads):
                p.grad = g
        self._all_reduce_grads(g_params + d_params)
        self._clip_and_step(opt_g, self.hparams.gradient_clip_g)
        self._clip_and_step(opt_d, self.hparams.gradient_clip_d)
        logs = {k: v.detach() for k, v in d_logs.items() if k != "loss"}
        return {"d_loss": d_logs["loss"].detach(), "g_loss": g_logs["loss"].detach(), **logs}

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
