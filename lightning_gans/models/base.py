"""``GANModule``: the manual-optimisation training schedule every GAN in the project plugs into.

A subclass supplies networks and, at most, a few small hooks; the base runs the loop. Its options are grouped by
concern into init arguments (``lightning_gans.models.options``): ``schedule`` (update, d_steps, n_critic,
d_pretrain_steps), ``regularisers`` (gradient_penalty, r1_gamma, weight_clip, drift, gradient_clip_g/_d), ``tricks``
(label_smoothing, noisy_labels, instance_noise(_anneal_steps), feature_matching, feature_layer, pack) and ``ema``
(decay, warmup); on the command line ``--model.schedule.n_critic=5``. Below, options are named by their field.

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
* **Critic regularisers** (all off by default; see ``lightning_gans.losses``), added to the D loss inside
  ``discriminator_step`` and logged unweighted as ``d_gp``/``d_r1``/``d_drift``:
  ``gradient_penalty=λ`` adds λ·E(‖∇x̂ D(x̂)‖₂ − 1)² (Gulrajani et al. 2017) in the step that sees fakes
  (part ``"both"`` or ``"fake"``; the real batch supplies the other interpolation end);
  ``r1_gamma=γ`` adds γ/2·E‖∇x D(x)‖² (Mescheder et al. 2018) and ``drift=ε`` adds ε·E D(x)² (Karras et al.
  2018) in the step that sees reals (``"both"`` or ``"real"``). The penalties interpolate/differentiate at
  *detached* samples, so their gradient reaches only the critic (G is also toggled off during D steps).
  ``weight_clip=c`` clamps every critic parameter to [−c, c] right after *every* critic optimizer step
  (Arjovsky et al. 2017) — after each of the two steps with ``d_steps="real_then_fake"``, and after the D step
  of the simultaneous update (whose G gradient was, by construction, taken at the unclipped critic).
  All of these also work with ``update="simultaneous"``. ``weight_clip`` together with ``gradient_penalty``
  is rejected: the penalty replaces clipping (Gulrajani et al. 2017, §3), and clipping would fight it.
* **Training tricks** (all off by default; ``lightning_gans.tricks`` has the sources): ``label_smoothing=s``
  (one-sided: real target 1 − s), ``noisy_labels=w`` (real ~ U(1 − w, 1], fake ~ U[0, w)), ``instance_noise=σ``
  (+ ``instance_noise_anneal_steps``), ``feature_matching="replace"|"add"`` (+ ``feature_layer``), ``pack=m``
  (PacGAN) and ``d_pretrain_steps=k`` (the first k batches train D only). Every D evaluation goes through
  ``critic(x, batch)``, which adds the instance noise and packs before calling the ``discriminate`` hook.
* **Fixed noise** (``fixed_noise`` buffer, saved in checkpoints) for comparable sample grids.
* **NaN/Inf guard.** Every loss is checked on the device before backward (no host sync); the flag reaches every
  rank with the next gradient reduction and is read on logging steps (every ``trainer.log_every_n_steps``), before
  every checkpoint save and at the end of fit. A non-finite loss stops training with ``NonFiniteLossError`` naming
  its GAN step at most ``log_every_n_steps`` steps later and never reaches a checkpoint, so the last checkpoint on
  disk stays the last good one.
* **EMA of G** (``ema.decay``): an exponential moving average of the generator's weights (Karras et al.
  2018; Yazıcı et al. 2019), used by ``sample()`` when enabled. ``ema.warmup=True`` ramps the decay as
  ``min(decay, (1 + t) / (10 + t))`` over the EMA's t-th update (the num_updates rule of TensorFlow's
  ``ExponentialMovingAverage``): a fixed 0.999 averages over ~1,000 G steps, which on a short CPU run keeps the
  sampled generator hundreds of steps behind (measured in docs/results.md); the ramp averages over roughly
  the last 10 % of the updates until that reaches 1/(1 − decay).
* **Resume.** The global torch RNG state is stored in checkpoints and restored on resume, so a resumed run
  draws the same noise and the same data order as an uninterrupted one.

Optimizer stepping, the per-batch bookkeeping of one GAN step (step counter, step-interval schedulers, EMA
update, logging: ``_gan_step``), the NaN guard and the RNG handling are in ``lightning_gans.models.mechanics``
(a mixin), so models that write their own ``training_step`` reuse them; the option checks are in
``lightning_gans.models.options``.

Several devices: ``--trainer.strategy=gan_ddp`` (``lightning_gans.strategies``; the CLI maps ``ddp`` to it). No
DDP wrapper: every optimizer step first averages its own network's gradients over the ranks (one bucketed
all-reduce, ``LoopMechanics._step_optimizer``), whether ``backward``, the simultaneous update's
``torch.autograd.grad`` or a penalty's double backward produced them.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lightning_gans.capabilities import is_conditional, standard_normal_noise
from lightning_gans.compat import built_by_cli, drop_hparams, eager_calls, update_hparams
from lightning_gans.losses import clip_weights, drift_penalty, feature_matching_loss, get_loss, r1_penalty
from lightning_gans.losses import gradient_penalty as _gradient_penalty
from lightning_gans.models.compiled import compile_options
from lightning_gans.models.mechanics import LoopMechanics, NonFiniteLossError
from lightning_gans.models.options import (
    EMA,
    Regularisers,
    Schedule,
    Tricks,
    as_hparams,
    check_ema,
    check_latent_dim,
    check_regularisers,
    check_schedule,
    check_tricks,
    regroup,
    warn_batch_norm_critic,
)
from lightning_gans.tricks import FeatureTap, instance_noise_std, label_targets, pack_samples

Batch = Any
__all__ = ["GANModule", "NonFiniteLossError"]


def _adam(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


class GANModule(LoopMechanics, pl.LightningModule):
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
        schedule: Schedule = Schedule(),
        regularisers: Regularisers = Regularisers(),
        tricks: Tricks = Tricks(),
        ema: EMA = EMA(),
        num_fixed_noise: int = 16,
        fixed_noise_seed: int = 1234,
        nan_guard: bool = True,
        compile: bool | dict[str, Any] = False,  # noqa: A002 - the option is named after torch.compile
        channels_last: bool = False,
        **legacy_options: Any,
    ) -> None:
        """``compile``: torch.compile G and D (true, or torch.compile kwargs such as ``{mode: reduce-overhead}``);
        ``channels_last``: NHWC conv weights and batches (``models.compiled``; both off by default).
        ``legacy_options``: the flat option names of checkpoints written before the options were grouped
        (``n_critic=5``, ``ema_decay=0.999``; ``options.LEGACY_OPTIONS``), folded into their groups."""
        super().__init__()
        given = {"schedule": schedule, "regularisers": regularisers, "tricks": tricks, "ema": ema}
        groups = regroup(type(self).__name__, given, legacy_options)
        self._check_groups(**groups)
        check_schedule(groups["schedule"])
        check_regularisers(groups["regularisers"])
        check_tricks(loss, groups["tricks"], conditional=is_conditional(self))
        check_ema(groups["ema"])
        compile_options(compile)  # a clear error for a malformed value, before any network is built
        # Read by the loop on every batch; attributes because ``hparams`` is a dict of config values.
        self.schedule: Schedule = groups["schedule"]
        self.regularisers: Regularisers = groups["regularisers"]
        self.tricks: Tricks = groups["tricks"]
        self.ema: EMA = groups["ema"]
        # Under LightningCLI the saved hparams are the config (networks as class_path dicts), which makes
        # checkpoints self-describing for `lightning-gans sample`; modules built in Python keep only scalars.
        cli = built_by_cli()
        self.save_hyperparameters(ignore=[] if cli else ["generator", "discriminator"])
        if not cli:  # the groups as dicts (YAML/W&B/checkpoint friendly), never the legacy flat names
            drop_hparams(self, legacy_options)
            update_hparams(self, {k: v for k, v in as_hparams(groups).items() if k in self.hparams})
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.adversarial_loss = get_loss(loss)
        # Callables are kept as attributes: under LightningCLI ``hparams`` holds their config dicts.
        self.optimizer_factories = (optimizer_g, optimizer_d)
        self.scheduler_factories = (lr_scheduler_g, lr_scheduler_d)
        check_latent_dim(generator, latent_dim)
        self._init_ema(generator, self.ema)  # generator_ema (None when off)
        warn_batch_norm_critic(discriminator, self.regularisers.gradient_penalty)
        seeded = torch.Generator().manual_seed(fixed_noise_seed)
        self.register_buffer("fixed_noise", torch.randn(num_fixed_noise, latent_dim, generator=seeded) * noise_std)

    def _check_groups(self, schedule: Schedule, regularisers: Regularisers, tricks: Tricks, ema: EMA) -> None:
        """A subclass's own checks of the option groups, run before the base's (no-op here)."""

    # ------------------------------------------------------------------ hooks for subclasses
    @standard_normal_noise
    def sample_noise(self, n: int) -> torch.Tensor:
        """Latent vectors z ~ N(0, noise_std²), shape (n, latent_dim)."""
        return torch.randn(n, self.hparams.latent_dim, device=self.device, dtype=self.dtype) * self.hparams.noise_std

    def real_samples(self, batch: Batch) -> torch.Tensor:
        """The real images/points in a batch (``(x, y)`` tuples by default)."""
        return batch[0] if isinstance(batch, (tuple, list)) else batch

    def generate(self, batch: Batch) -> torch.Tensor:
        """Fakes for a training batch (same size; conditional models read their labels from ``batch``)."""
        return self.generator(self.sample_noise(self.real_samples(batch).shape[0]))

    def discriminate(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Discriminator logits for ``x`` (conditional models read the condition from ``batch``)."""
        return self.discriminator(x)

    def critic(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """D outputs for ``x`` as training sees them: instance noise added and samples packed when enabled.

        Every D evaluation of the loop (D and G steps, penalties) goes through here; subclasses override the
        ``discriminate`` hook, not this.
        """
        sigma = instance_noise_std(self.tricks.instance_noise, self.global_step, self._anneal_steps())
        if sigma > 0:
            x = x + sigma * torch.randn_like(x)
        return self.discriminate(pack_samples(x, self.tricks.pack), batch)

    def _anneal_steps(self) -> int | None:
        return self.tricks.instance_noise_anneal_steps

    def _d_loss_terms(self, real_scores: torch.Tensor | None, fake_scores: torch.Tensor | None) -> dict:
        """``d_real``/``d_fake`` with the configured label targets (label smoothing, noisy labels)."""
        terms = {}
        smoothing, noisy = self.tricks.label_smoothing, self.tricks.noisy_labels
        for kind, scores in (("real", real_scores), ("fake", fake_scores)):
            if scores is None:
                continue
            target = label_targets(kind, scores.shape[0], scores, smoothing, noisy)
            term = getattr(self.adversarial_loss, f"discriminator_{kind}")
            terms[f"d_{kind}"] = term(scores) if target is None else term(scores, target)
        return terms

    def discriminator_step(self, batch: Batch, part: Literal["both", "real", "fake"] = "both") -> dict:
        """D loss terms on real and/or generated samples, plus the enabled regularisers; ``loss`` is minimised."""
        real = self.real_samples(batch)
        real_scores = fake = fake_scores = None
        if part in ("both", "real"):
            real_scores = self.critic(real, batch)
        if part in ("both", "fake"):
            with torch.no_grad():
                fake = self.generate(batch)
            fake_scores = self.critic(fake, batch)
        logs = self._d_loss_terms(real_scores, fake_scores)
        loss = sum(logs.values())
        penalty, penalty_logs = self.critic_penalties(batch, real, real_scores, fake)
        logs.update(penalty_logs)
        logs["loss"] = loss + penalty
        return logs

    def critic_penalties(
        self, batch: Batch, real: torch.Tensor, real_scores: torch.Tensor | None, fake: torch.Tensor | None
    ) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
        """The weighted sum of the enabled regularisers and their unweighted values (for logging).

        ``real_scores`` is None in a fake-only D step (no R1/drift there), ``fake`` None in a real-only step
        (no gradient penalty there).
        """
        hp = self.regularisers
        logs: dict[str, torch.Tensor] = {}
        total: torch.Tensor | float = 0.0

        def critic(x: torch.Tensor) -> torch.Tensor:
            with eager_calls(self.discriminator):  # a compiled graph has no double backward (models.compiled)
                return self.critic(x, batch)

        scale = self._critic_loss_scale() if hp.gradient_penalty is not None or hp.r1_gamma is not None else None
        if hp.gradient_penalty is not None and fake is not None:
            logs["d_gp"] = _gradient_penalty(critic, real, fake, loss_scale=scale)
            total = total + hp.gradient_penalty * logs["d_gp"]
        if hp.r1_gamma is not None and real_scores is not None:
            logs["d_r1"] = r1_penalty(critic, real, loss_scale=scale)
            total = total + 0.5 * hp.r1_gamma * logs["d_r1"]
        if hp.drift is not None and real_scores is not None:
            logs["d_drift"] = drift_penalty(real_scores)
            total = total + hp.drift * logs["d_drift"]
        return total, logs

    def generator_step(self, batch: Batch) -> dict:
        """G loss on a fresh batch of fakes (fresh z, as the books' seeds do); feature matching when enabled."""
        fake = self.generate(batch)
        if self.tricks.feature_matching == "off":
            return {"loss": self.adversarial_loss.generator(self.critic(fake, batch))}
        with FeatureTap(self.discriminator, self.tricks.feature_layer) as tap:
            with torch.no_grad():
                self.critic(self.real_samples(batch), batch)
            fake_scores = self.critic(fake, batch)
        return self._generator_loss(fake_scores, tap.features)

    def _generator_loss(self, fake_scores: torch.Tensor, features: list[torch.Tensor] | None = None) -> dict:
        """Adversarial G loss, replaced by or added to feature matching on (real, fake) ``features``."""
        mode = self.tricks.feature_matching
        adversarial = self.adversarial_loss.generator(fake_scores)
        if mode == "off":
            return {"loss": adversarial}
        fm = feature_matching_loss(features[0], features[1])
        return {"loss": fm if mode == "replace" else adversarial + fm, "g_adv": adversarial.detach(), "g_fm": fm}

    def simultaneous_losses(self, batch: Batch) -> tuple[dict, dict]:
        """One forward pass shared by both losses (TF2 GradientTape style): returns (d_logs, g_logs)."""
        fake = self.generate(batch)
        real = self.real_samples(batch)
        with FeatureTap(self.discriminator, self.tricks.feature_layer) as tap:
            real_logits = self.critic(real, batch)
            fake_logits = self.critic(fake, batch)
        terms = self._d_loss_terms(real_logits, fake_logits)
        penalty, penalty_logs = self.critic_penalties(batch, real, real_logits, fake)
        d_logs = {"loss": terms["d_real"] + terms["d_fake"] + penalty, **terms, **penalty_logs}
        return d_logs, self._generator_loss(fake_logits, tap.features)

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
            z = self.sample_noise(n) if noise is None else noise.to(self.device, self.dtype)
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

    # ------------------------------------------------------------------ training loop
    @property
    def gan_step(self) -> int:
        """Batches trained so far (== ``global_step`` thanks to the step-count correction)."""
        return self.global_step

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        simultaneous = self.schedule.update == "simultaneous"
        self._gan_step(batch, self._simultaneous_update if simultaneous else self._alternating_update)

    def _alternating_update(self, batch: Batch) -> dict:
        """One D update every batch; a G update on every ``n_critic``-th batch after ``d_pretrain_steps``."""
        # Decided before the D update: its optimizer step advances ``global_step`` until ``_gan_step`` resets it,
        # so reading ``gan_step`` afterwards would put the first G step one batch early.
        trained = self.gan_step - self.schedule.d_pretrain_steps  # D-only pre-training first
        generator_turn = trained >= 0 and (trained + 1) % self.schedule.n_critic == 0
        logs = self._discriminator_update(batch)
        if generator_turn:
            logs.update(self._generator_update(batch))
        return logs

    def _batch_size(self, batch: Batch) -> int:
        return self.real_samples(batch).shape[0]

    def _discriminator_update(self, batch: Batch) -> dict:
        opt_d = self.optimizers()[1]
        parts = ("real", "fake") if self.schedule.d_steps == "real_then_fake" else ("both",)
        logs: dict[str, torch.Tensor] = {}
        d_loss = 0.0
        self.toggle_optimizer(opt_d)
        try:
            for part in parts:
                step_logs = self.discriminator_step(batch, part)
                self._optimize(opt_d, step_logs["loss"], self.regularisers.gradient_clip_d, "d_loss")
                self._clip_critic_weights()
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
            self._optimize(opt_g, step_logs["loss"], self.regularisers.gradient_clip_g, "g_loss")
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
        # Each loss scaled for its own optimizer (16-mixed); _step_optimizer unscales each once.
        g_grads = torch.autograd.grad(self._scaled(g_logs["loss"], opt_g), g_params, retain_graph=True)
        d_grads = torch.autograd.grad(self._scaled(d_logs["loss"], opt_d), d_params)
        for params, grads in ((g_params, g_grads), (d_params, d_grads)):
            for p, g in zip(params, grads):
                p.grad = g
        self._step_optimizer(opt_g, self.regularisers.gradient_clip_g)
        self._step_optimizer(opt_d, self.regularisers.gradient_clip_d)
        self._clip_critic_weights()
        logs = {k: v.detach() for k, v in d_logs.items() if k != "loss"}
        return {"d_loss": d_logs["loss"].detach(), "g_loss": g_logs["loss"].detach(), **logs}

    def _clip_critic_weights(self) -> None:
        """WGAN weight clipping, right after a critic optimizer step (a no-op unless ``weight_clip`` is set)."""
        if self.regularisers.weight_clip is not None:
            clip_weights(self.discriminator, self.regularisers.weight_clip)
