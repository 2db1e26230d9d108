"""``GANModule``'s option groups and their checks, run by its ``__init__`` before anything is built.

The options of the training loop are grouped by concern (the module docstring of ``lightning_gans.models.base``):
``Schedule``, ``Regularisers``, ``Tricks`` and ``EMA``, frozen dataclasses that are init arguments of the module, so
LightningCLI shows them nested (``--model.schedule.n_critic=5``, ``model.init_args.schedule`` in a YAML). A model
that changes a default declares the group with its own default instance (``Schedule(d_steps="real_then_fake")``).

Each check raises ``ValueError`` naming the option, the value and what to set instead. Pure functions of the
option values, so a model with its own options can call the ones it shares.

Checkpoints written before the grouping store the options flat (``n_critic=…``, ``ema_decay=…``); ``LEGACY_OPTIONS``
maps each old name to its (group, field) and ``regroup`` folds such keyword arguments into the groups.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lightning_gans.compat import has_batch_norm
from lightning_gans.losses import get_loss

Group = TypeVar("Group")


@dataclass(frozen=True)
class Schedule:
    """Which network updates when, per batch (one batch is one GAN step).

    Args:
        update: alternating: a D update every batch, a G update every n_critic-th; simultaneous: one forward, both
            gradients taken before either optimizer steps (the TF2 GradientTape style).
        d_steps: joint: one D step on real and fake; real_then_fake: a real-only then a fake-only D step (Keras
            train_on_batch order).
        n_critic: D updates per G update (each on a fresh real batch), >= 1.
        d_pretrain_steps: The first k batches train D only, >= 0.
    """

    update: Literal["alternating", "simultaneous"] = "alternating"
    d_steps: Literal["joint", "real_then_fake"] = "joint"
    n_critic: int = 1
    d_pretrain_steps: int = 0


@dataclass(frozen=True)
class Regularisers:
    """Critic regularisers and per-network gradient clipping (None: off).

    Args:
        gradient_penalty: WGAN-GP weight λ of E(‖∇D(x̂)‖₂ − 1)² (Gulrajani et al. 2017), > 0.
        r1_gamma: R1 weight γ of γ/2·E‖∇D(x)‖² on reals (Mescheder et al. 2018), > 0.
        weight_clip: Clamp every critic parameter to [−c, c] after each critic step (WGAN), > 0; not with
            gradient_penalty.
        drift: Drift weight ε of ε·E D(x)² on reals (Karras et al. 2018), > 0.
        gradient_clip_g: Clip G's gradient norm to this value before each G step.
        gradient_clip_d: Clip D's gradient norm to this value before each D step.
    """

    gradient_penalty: float | None = None
    r1_gamma: float | None = None
    weight_clip: float | None = None
    drift: float | None = None
    gradient_clip_g: float | None = None
    gradient_clip_d: float | None = None


@dataclass(frozen=True)
class Tricks:
    """Training tricks (lightning_gans.tricks has the sources; None / off / 1: disabled).

    Args:
        label_smoothing: One-sided label smoothing s: real target 1 − s, in (0, 1).
        noisy_labels: Noisy labels w: real ~ U(1 − w, 1], fake ~ U[0, w), in (0, 1); not with label_smoothing.
        instance_noise: σ of Gaussian noise added to every D input, > 0.
        instance_noise_anneal_steps: Anneal the instance noise linearly to 0 over this many steps (None: constant).
        feature_matching: G loss: the adversarial one (off), feature matching instead (replace) or both (add).
        feature_layer: The discriminator submodule whose output feature matching compares (None: the last one with
            parameters).
        pack: PacGAN: D sees m samples concatenated, >= 1.
    """

    label_smoothing: float | None = None
    noisy_labels: float | None = None
    instance_noise: float | None = None
    instance_noise_anneal_steps: int | None = None
    feature_matching: Literal["off", "replace", "add"] = "off"
    feature_layer: str | None = None
    pack: int = 1


@dataclass(frozen=True)
class EMA:
    """Exponential moving average of G's weights, used for sampling when on.

    Args:
        decay: EMA decay in (0, 1), e.g. 0.999 (None: no EMA).
        warmup: Ramp the decay as min(decay, (1 + t) / (10 + t)) over the t-th update (needs decay).
    """

    decay: float | None = None
    warmup: bool = False


GROUPS: dict[str, type] = {"schedule": Schedule, "regularisers": Regularisers, "tricks": Tricks, "ema": EMA}
# Flat option names of checkpoints written before the grouping: old name → (group, field).
LEGACY_OPTIONS: dict[str, tuple[str, str]] = {
    **{name: ("schedule", name) for name in ("update", "d_steps", "n_critic", "d_pretrain_steps")},
    **{f.name: ("regularisers", f.name) for f in dataclasses.fields(Regularisers)},
    **{f.name: ("tricks", f.name) for f in dataclasses.fields(Tricks)},
    "ema_decay": ("ema", "decay"),
    "ema_warmup": ("ema", "warmup"),
}


def as_group(kind: type[Group], value: Group | Mapping[str, Any] | None) -> Group:
    """``value`` as a ``kind`` instance: itself, built from a mapping (a checkpoint's or a config's dict), or the
    defaults for None."""
    if value is None:
        return kind()
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        return kind(**value)
    raise TypeError(f"expected a {kind.__name__} (or a mapping of its fields), got {type(value).__name__}")


def regroup(
    owner: str, groups: dict[str, Any], legacy: Mapping[str, Any], kinds: Mapping[str, type] = GROUPS
) -> dict[str, Any]:
    """``groups`` (name → group instance or mapping) as instances of ``kinds``, with the old flat options in
    ``legacy`` folded in.

    ``TypeError`` for a name that is neither a parameter nor a field of one of the groups (``LEGACY_OPTIONS``), as
    Python would raise it.
    """
    out = {name: as_group(kinds[name], value) for name, value in groups.items()}
    for name, value in legacy.items():
        group, field = LEGACY_OPTIONS.get(name, (None, None))
        if group not in out or field not in {f.name for f in dataclasses.fields(out[group])}:
            raise TypeError(f"{owner}.__init__() got an unexpected keyword argument {name!r}")
        if field == "feature_matching" and value is False:
            # A LightningCLI checkpoint is loaded through jsonargparse, which reads the values of names that are no
            # parameter as YAML 1.1: the old flat ``feature_matching: 'off'`` arrives as False.
            value = "off"
        out[group] = dataclasses.replace(out[group], **{field: value})
    return out


def as_hparams(groups: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The groups as plain dicts, the form stored in ``hparams`` and checkpoints (and given by LightningCLI)."""
    return {name: dataclasses.asdict(group) for name, group in groups.items()}


def check_schedule(schedule: Schedule) -> None:
    """``n_critic`` ≥ 1, ``d_pretrain_steps`` ≥ 0; the simultaneous update takes one joint step per batch."""
    update, d_steps, n_critic = schedule.update, schedule.d_steps, schedule.n_critic
    if n_critic < 1:
        raise ValueError(f"n_critic must be >= 1, got {n_critic}")
    if update == "simultaneous" and (n_critic != 1 or d_steps != "joint"):
        raise ValueError("update='simultaneous' takes one joint step per batch: use n_critic=1, d_steps='joint'")
    if schedule.d_pretrain_steps < 0:
        raise ValueError(f"d_pretrain_steps must be >= 0, got {schedule.d_pretrain_steps}")


def check_regularisers(regularisers: Regularisers) -> None:
    """Every enabled regulariser > 0; weight clipping and the gradient penalty exclude each other."""
    r = regularisers
    values = {"gradient_penalty": r.gradient_penalty, "r1_gamma": r.r1_gamma}
    values.update(weight_clip=r.weight_clip, drift=r.drift)
    for name, value in values.items():
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0 (or None to disable it), got {value}")
    if r.weight_clip is not None and r.gradient_penalty is not None:
        raise ValueError(
            "weight_clip and gradient_penalty are alternative Lipschitz constraints (WGAN vs WGAN-GP); "
            "Gulrajani et al. 2017 replace clipping by the penalty because clipping biases the critic: "
            "set only one of them"
        )


def check_tricks(loss: str, tricks: Tricks, conditional: bool = False) -> None:
    """The training tricks' ranges and combinations (``conditional``: the model has one condition per sample)."""
    label_smoothing, noisy_labels = tricks.label_smoothing, tricks.noisy_labels
    for name, value in (("label_smoothing", label_smoothing), ("noisy_labels", noisy_labels)):
        if value is not None and not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1) (or None to disable it), got {value}")
    if label_smoothing is not None and noisy_labels is not None:
        raise ValueError("label_smoothing and noisy_labels both set D's targets: choose one of them")
    if (label_smoothing is not None or noisy_labels is not None) and not get_loss(loss).supports_targets:
        raise ValueError(
            f"label_smoothing / noisy_labels change the D labels, but loss {loss!r} has none: use them with "
            "non_saturating, minimax or lsgan"
        )
    if tricks.instance_noise is not None and not tricks.instance_noise > 0:
        raise ValueError(f"instance_noise must be > 0 (or None to disable it), got {tricks.instance_noise}")
    if tricks.feature_matching not in ("off", "replace", "add"):
        raise ValueError(f"feature_matching must be 'off', 'replace' or 'add', got {tricks.feature_matching!r}")
    if tricks.pack < 1:
        raise ValueError(f"pack must be >= 1, got {tricks.pack}")
    if tricks.pack > 1 and conditional:
        raise ValueError("pack > 1 is not supported by conditional models (one condition per sample)")


def check_ema(ema: EMA) -> None:
    """``decay`` in (0, 1); the warm-up ramps a decay, so it needs one."""
    if ema.decay is not None and not 0.0 < ema.decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1), got {ema.decay}")
    if ema.warmup and ema.decay is None:
        raise ValueError("ema_warmup ramps the EMA decay: set ema_decay too (e.g. 0.999)")


def check_latent_dim(generator: nn.Module, latent_dim: int) -> None:
    """``latent_dim`` matches the generator's own ``latent_dim`` attribute, when it has one."""
    gen_latent = getattr(generator, "latent_dim", latent_dim)
    if gen_latent != latent_dim:
        raise ValueError(
            f"latent_dim={latent_dim} but the generator expects latent_dim={gen_latent}: set both to the same value"
        )


def warn_batch_norm_critic(discriminator: nn.Module, gradient_penalty: float | None) -> None:
    """Warn when the gradient penalty meets BatchNorm in the critic (a per-sample penalty on mixed samples)."""
    if gradient_penalty is not None and has_batch_norm(discriminator):
        rank_zero_warn(
            "gradient_penalty with BatchNorm in the critic: the penalty is per-sample, batch norm mixes "
            "samples (Gulrajani et al. 2017, §4 use no BatchNorm in the critic; layer norm is the usual swap)"
        )
