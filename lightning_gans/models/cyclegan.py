"""CycleGAN (Zhu et al. 2017): two generators G_AB: A → B, G_BA: B → A and two discriminators D_A, D_B, trained
on unpaired ``{"A": images, "B": images}`` batches (``datamodules.unpaired`` / ``datamodules.paired``).

Losses (reference translation-discogan-cyclegan.md §2.4; paper §3–4; *GANs in Action* ch. 9):

* G (both generators, one optimizer): adv(D_B(G_AB(a))) + adv(D_A(G_BA(b))) + λ·(cyc(G_BA(G_AB(a)), a) +
  cyc(G_AB(G_BA(b)), b)) + λ_id·λ·(|G_BA(a) − a|₁ + |G_AB(b) − b|₁), means over all elements.
  ``loss="lsgan"`` (paper, book code): adv = MSE(score, 1); ``loss="non_saturating"`` (TF2 tutorial): BCE with
  logits against 1. ``cycle_loss`` "l1" (CycleGAN) or "mse" (DiscoGAN). ``lambda_identity`` 0.5 (paper,
  tutorial), 0.9 (*GANs in Action*), 0 disables the identity term (and its two extra forward passes).
* D_A, D_B (one optimizer over both; Adam is per-parameter, so this equals two optimizers): per domain
  ½·(adv_real + adv_fake) with MSE (LSGAN) or BCE against 1 / 0. The adversarial terms come from the loss
  registry (``lightning_gans.losses``), whose LSGAN terms carry Mao et al.'s ½: they are scaled back to plain MSE.
* Fakes for D: ``d_fakes="cached"`` — the G step's fakes, detached (paper code; the tutorial's one tape);
  ``"fresh"`` — regenerated without gradients right before the D step (DiscoGAN chapter: after the G update;
  *GANs in Action* with ``order="d_then_g"``: before it, like Keras ``predict``). Then the image pool
  (``pool_size`` 50, paper; 0 = off, tutorial).
* Order per batch: ``order="g_then_d"`` (paper code, DiscoGAN) or ``"d_then_g"`` (*GANs in Action* ch. 9);
  ``d_steps="real_then_fake"`` splits the D update into a real-only and a fake-only optimizer step (the book's
  Keras ``train_on_batch`` pairs; D_A and D_B step together, which is the same as separate steps since their
  parameters are disjoint). Either way one batch is one GAN step (``global_step`` + 1).
* Adam 2e-4, β (0.5, 0.999); LR schedule via ``lr_scheduler_g``/``lr_scheduler_d`` (e.g.
  ``lightning_gans.schedules.LinearDecayLR`` 100 + 100 epochs), stepped per epoch.

The base ``GANModule`` machinery is reused: the toggled manual optimizer steps (``_generator_update``,
``_discriminator_update``), the NaN guard, the per-batch bookkeeping (``_gan_step``: one-step-per-batch counter,
step-interval schedulers, logging), per-network schedulers, gradient clipping and the per-rank RNG streams.
``generator`` / ``discriminator`` are ``ModuleDict``s {AB, BA} / {A, B};
``G_AB``, ``G_BA``, ``D_A``, ``D_B`` name their entries. ``translate(images, "AtoB" | "BtoA")`` runs a generator in
eval mode (used by the sample-grid and quality callbacks and by ``lightning-gans translate``).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lightning_gans.compat import attached_trainer, built_by_cli, drop_hparams, update_hparams
from lightning_gans.errors import ConfigError
from lightning_gans.models._keras_predict import eval_mode
from lightning_gans.models.base import Batch, GANModule, _adam
from lightning_gans.models.image_pool import ImagePool
from lightning_gans.models.options import Regularisers, Schedule, as_hparams, regroup
from lightning_gans.networks.translation import PatchGANDiscriminator, ResnetGenerator
from lightning_gans.tricks import ActivationTap, layerwise_feature_matching

DIRECTIONS = {"AtoB": ("AB", "A"), "BtoA": ("BA", "B")}  # direction → (generator key, source domain)
NETWORK_ARGS = ("G_AB", "G_BA", "D_A", "D_B")
ADVERSARIAL_LOSSES = ("lsgan", "non_saturating")


def _batch_error(batch: Batch) -> Exception:
    got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
    return ConfigError(
        f"translation models train on {{'A': images, 'B': images}} batches, got {got}: use "
        "datamodules.unpaired or datamodules.paired (data.class_path in the experiment YAML)"
    )


def reconstruction_loss(kind: str, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute ("l1") or squared ("mse") error over all elements."""
    return F.l1_loss(x, target) if kind == "l1" else F.mse_loss(x, target)


def check_options(
    loss: str, cycle_loss: str, lambda_cycle: float, lambda_identity: float, order: str, d_fakes: str
) -> None:
    """The translation options' ranges and combinations (``ValueError`` naming the fix)."""
    if loss not in ADVERSARIAL_LOSSES:
        raise ValueError(f"loss must be one of {ADVERSARIAL_LOSSES} (LSGAN or BCE), got {loss!r}")
    if cycle_loss not in ("l1", "mse"):
        raise ValueError(f"cycle_loss must be 'l1' or 'mse', got {cycle_loss!r}")
    if lambda_cycle < 0 or lambda_identity < 0:
        raise ValueError(f"lambda_cycle and lambda_identity must be >= 0, got {lambda_cycle}, {lambda_identity}")
    if order == "d_then_g" and d_fakes == "cached":
        raise ValueError("order='d_then_g' has no G-step fakes to reuse for D: use d_fakes='fresh'")


@dataclass(frozen=True)
class CycleSchedule:
    """The part of ``options.Schedule`` a translation model uses (its G/D ``order`` is its own option).

    Args:
        d_steps: joint: one D step on real and fake; real_then_fake: a real-only then a fake-only D step (the book's
            Keras train_on_batch pairs).
    """

    d_steps: Literal["joint", "real_then_fake"] = "joint"


@dataclass(frozen=True)
class CycleRegularisers:
    """The part of ``options.Regularisers`` a translation model uses: per-network gradient clipping.

    Args:
        gradient_clip_g: Clip the generators' gradient norm to this value before each G step.
        gradient_clip_d: Clip the discriminators' gradient norm to this value before each D step.
    """

    gradient_clip_g: float | None = None
    gradient_clip_d: float | None = None


# The two groups are narrower than ``GANModule``'s, and CycleGAN's arguments are typed ``… | None`` (None: the
# defaults): jsonargparse carries a subclass-mode config's base-class defaults over to the named class for every init
# argument whose value its check accepts, and only the optional type makes that check reject the wider groups.
CYCLE_GROUPS = {"schedule": CycleSchedule, "regularisers": CycleRegularisers}


class CycleGAN(GANModule):
    """Cycle-consistent adversarial translation between domains A and B (see module docstring)."""

    def __init__(
        self,
        G_AB: nn.Module | None = None,  # noqa: N803 - the field's names for the four networks
        G_BA: nn.Module | None = None,  # noqa: N803
        D_A: nn.Module | None = None,  # noqa: N803
        D_B: nn.Module | None = None,  # noqa: N803
        image_size: int = 256,
        loss: Literal["lsgan", "non_saturating"] = "lsgan",
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        cycle_loss: Literal["l1", "mse"] = "l1",
        pool_size: int = 50,
        order: Literal["g_then_d", "d_then_g"] = "g_then_d",
        d_fakes: Literal["cached", "fresh"] = "cached",
        feature_matching_weight: float = 0.0,
        schedule: CycleSchedule | None = CycleSchedule(),
        optimizer_g: OptimizerCallable = _adam,
        optimizer_d: OptimizerCallable = _adam,
        lr_scheduler_g: LRSchedulerCallable | None = None,
        lr_scheduler_d: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["epoch", "step"] = "epoch",
        regularisers: CycleRegularisers | None = CycleRegularisers(),
        nan_guard: bool = True,
        compile: bool | dict[str, Any] = False,  # noqa: A002 - named after torch.compile (GANModule)
        channels_last: bool = False,
        **legacy_options: Any,
    ) -> None:
        """``legacy_options``: the flat ``d_steps``/``gradient_clip_g``/``gradient_clip_d`` of old checkpoints.
        Long because every option is spelled out (LightningCLI reads this signature) and handed to ``GANModule``."""
        groups = {"schedule": schedule, "regularisers": regularisers}
        groups = regroup(type(self).__name__, groups, legacy_options, kinds=CYCLE_GROUPS)
        check_options(loss, cycle_loss, lambda_cycle, lambda_identity, order, d_fakes)
        if not 0.0 <= feature_matching_weight <= 1.0:
            raise ValueError(f"feature_matching_weight must be in [0, 1], got {feature_matching_weight}")
        nets = self.default_networks(image_size)
        given = dict(zip(NETWORK_ARGS, (G_AB, G_BA, D_A, D_B)))
        nets.update({k: v for k, v in given.items() if v is not None})
        with warnings.catch_warnings():  # Lightning warns about network arguments; they are dropped from hparams below
            warnings.filterwarnings("ignore", message="Attribute '[GD]_(AB|BA|A|B)' is an instance of `nn.Module`")
            super().__init__(
                generator=nn.ModuleDict({"AB": nets["G_AB"], "BA": nets["G_BA"]}),
                discriminator=nn.ModuleDict({"A": nets["D_A"], "B": nets["D_B"]}),
                loss=loss,
                optimizer_g=optimizer_g,
                optimizer_d=optimizer_d,
                lr_scheduler_g=lr_scheduler_g,
                lr_scheduler_d=lr_scheduler_d,
                lr_scheduler_interval=lr_scheduler_interval,
                schedule=Schedule(d_steps=groups["schedule"].d_steps),
                regularisers=Regularisers(**as_hparams(groups)["regularisers"]),
                num_fixed_noise=0,  # no latent: the sample grid shows fixed test images instead
                nan_guard=nan_guard,
                compile=compile,
                channels_last=channels_last,
            )
        if not built_by_cli():
            # Networks built in Python are weights, not hyperparameters; the base's own arguments (latent_dim, …)
            # are not options of this class, so ``load_from_checkpoint`` could not pass them back.
            own = set(inspect.signature(CycleGAN.__init__).parameters) - set(NETWORK_ARGS)
            drop_hparams(self, set(self.hparams) - own)
            update_hparams(self, as_hparams(groups))
        # The registry's LSGAN terms are ½·(s − t)²; CycleGAN's are the plain MSE (paper eq. 1 with LSGAN, the book).
        self.adversarial_scale = 2.0 if loss == "lsgan" else 1.0
        self.pools = {"A": ImagePool(pool_size), "B": ImagePool(pool_size)}
        self._g_fakes: dict[str, torch.Tensor] | None = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["image_pools"] = {name: pool.state_dict() for name, pool in self.pools.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        for name, state in checkpoint.get("image_pools", {}).items():  # absent in checkpoints before the pools
            self.pools[name].load_state_dict(state)

    def default_networks(self, image_size: int) -> dict[str, nn.Module]:
        """Paper defaults: ResNet-9 generators at 256² (ResNet-6 below), 70×70 PatchGAN discriminators."""
        blocks = 9 if image_size >= 256 else 6
        return {
            "G_AB": ResnetGenerator(num_blocks=blocks),
            "G_BA": ResnetGenerator(num_blocks=blocks),
            "D_A": PatchGANDiscriminator(),
            "D_B": PatchGANDiscriminator(),
        }

    # ------------------------------------------------------------------ networks by their field names
    @property
    def G_AB(self) -> nn.Module:  # noqa: N802
        return self.generator["AB"]

    @property
    def G_BA(self) -> nn.Module:  # noqa: N802
        return self.generator["BA"]

    @property
    def D_A(self) -> nn.Module:  # noqa: N802
        return self.discriminator["A"]

    @property
    def D_B(self) -> nn.Module:  # noqa: N802
        return self.discriminator["B"]

    # ------------------------------------------------------------------ translation
    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        """``images`` ([-1, 1], N×C×H×W) of the source domain translated by G_AB ("AtoB") or G_BA ("BtoA")."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
        with eval_mode(self.generator[DIRECTIONS[direction][0]]) as net:
            return net(images.to(self.device, self.dtype))

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, domain: str) -> torch.Tensor:
        """The cycle G_BA(G_AB(a)) for domain "A", G_AB(G_BA(b)) for "B" (eval mode)."""
        there = "AtoB" if domain == "A" else "BtoA"
        back = "BtoA" if domain == "A" else "AtoB"
        return self.translate(self.translate(images, there), back)

    def sample(self, n: int, **kwargs: Any) -> torch.Tensor:
        raise ConfigError(
            f"{type(self).__name__} translates images, it does not sample from noise: use `lightning-gans "
            "translate` (and TranslationGridCallback / TranslationQualityCallback instead of the noise-based ones)"
        )

    def sample_fixed(self) -> torch.Tensor:
        return self.sample(0)

    # ------------------------------------------------------------------ batches
    @staticmethod
    def domains(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b): the domain-A and domain-B images of a batch."""
        if not isinstance(batch, dict) or {"A", "B"} - set(batch):
            raise _batch_error(batch)
        return batch["A"], batch["B"]

    def real_samples(self, batch: Batch) -> torch.Tensor:
        return self.domains(batch)[0]

    def setup(self, stage: str) -> None:
        trainer = attached_trainer(self)
        size = getattr(getattr(trainer, "datamodule", None), "image_size", None) if trainer else None
        if size is not None and size != self.hparams.image_size:
            raise ConfigError(
                f"the datamodule makes {size}² images but model.image_size is {self.hparams.image_size}: set both "
                f"to the same value (--data.image_size and --model.image_size)"
            )

    # ------------------------------------------------------------------ losses
    def _adversarial(self, kind: str, scores: torch.Tensor) -> torch.Tensor:
        loss = self.adversarial_loss
        term = {"generator": loss.generator, "real": loss.discriminator_real, "fake": loss.discriminator_fake}[kind]
        return self.adversarial_scale * term(scores)

    def generator_step(self, batch: Batch) -> dict:
        """Adversarial + λ·cycle (+ λ_id·λ·identity) for both directions; caches the fakes for D."""
        hp = self.hparams
        real = dict(zip("AB", self.domains(batch)))
        fake = {"B": self.G_AB(real["A"]), "A": self.G_BA(real["B"])}
        rec = {"A": self.G_BA(fake["B"]), "B": self.G_AB(fake["A"])}
        logs = {
            "cycle_A": reconstruction_loss(hp.cycle_loss, rec["A"], real["A"]),
            "cycle_B": reconstruction_loss(hp.cycle_loss, rec["B"], real["B"]),
        }
        total = hp.lambda_cycle * (logs["cycle_A"] + logs["cycle_B"])
        for direction, domain in (("AtoB", "B"), ("BtoA", "A")):
            total = total + self._generator_adversarial(direction, domain, real[domain], fake[domain], logs)
        if hp.lambda_identity > 0:
            logs["identity_A"] = F.l1_loss(self.G_BA(real["A"]), real["A"])
            logs["identity_B"] = F.l1_loss(self.G_AB(real["B"]), real["B"])
            total = total + hp.lambda_identity * hp.lambda_cycle * (logs["identity_A"] + logs["identity_B"])
        self._g_fakes = {k: v.detach() for k, v in fake.items()}
        return {"loss": total, **logs}

    def _generator_adversarial(
        self, direction: str, domain: str, real: torch.Tensor, fake: torch.Tensor, logs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """G's adversarial term for the fakes of one direction, judged by the D of their ``domain``; with
        ``feature_matching_weight`` w > 0: (1 − w)·adversarial + w·feature matching on D's hidden layers (DiscoGAN
        authors' code: w = 0.9), real features from the same batch's real images of that domain."""
        net = self.discriminator[domain]
        w = self.hparams.get("feature_matching_weight", 0.0)
        if w == 0:
            logs[f"g_adv_{direction}"] = self._adversarial("generator", net(fake))
            return logs[f"g_adv_{direction}"]
        with ActivationTap(net) as tap:
            with torch.no_grad():
                net(real)
            scores = net(fake)
        logs[f"g_adv_{direction}"] = self._adversarial("generator", scores)
        logs[f"g_fm_{direction}"] = layerwise_feature_matching(*tap.features)
        return (1 - w) * logs[f"g_adv_{direction}"] + w * logs[f"g_fm_{direction}"]

    @torch.no_grad()
    def _fakes_for_discriminator(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.hparams.d_fakes == "cached":
            fakes, self._g_fakes = self._g_fakes, None
            if fakes is None:
                raise RuntimeError("d_fakes='cached' needs the G step of this batch to run first")
        else:
            a, b = self.domains(batch)
            fakes = {"B": self.G_AB(a), "A": self.G_BA(b)}
        return {k: self.pools[k].query(v) for k, v in fakes.items()}

    def discriminator_step(self, batch: Batch, part: Literal["both", "real", "fake"] = "both") -> dict:
        """½·(real + fake) per domain for D_A and D_B (only the real or fake half in a split step)."""
        real = dict(zip("AB", self.domains(batch)))
        fake = self._fakes_for_discriminator(batch) if part != "real" else {}
        logs: dict[str, torch.Tensor] = {}
        total: torch.Tensor | float = 0.0
        for domain, net in (("A", self.D_A), ("B", self.D_B)):
            if part != "fake":
                logs[f"d_{domain}_real"] = self._adversarial("real", net(real[domain]))
                total = total + 0.5 * logs[f"d_{domain}_real"]
            if part != "real":
                logs[f"d_{domain}_fake"] = self._adversarial("fake", net(fake[domain]))
                total = total + 0.5 * logs[f"d_{domain}_fake"]
        return {"loss": total, **logs}

    # ------------------------------------------------------------------ the loop
    def training_step(self, batch: Batch, batch_idx: int) -> None:
        self.domains(batch)  # a clear error for a batch that is not {"A", "B"}
        self._gan_step(batch, self._ordered_update)

    def _ordered_update(self, batch: Batch) -> dict:
        """The G and the D update of one batch, in ``order``."""
        if self.hparams.order == "g_then_d":
            logs = self._generator_update(batch)
            logs.update(self._discriminator_update(batch))
        else:
            logs = self._discriminator_update(batch)
            logs.update(self._generator_update(batch))
        return logs
