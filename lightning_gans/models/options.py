"""Checks of ``GANModule``'s options, run by its ``__init__`` before anything is built.

Each check raises ``ValueError`` naming the option, the value and what to set instead; they are grouped by the
concern of the module docstring of ``lightning_gans.models.base`` (schedule, critic regularisers, training tricks,
EMA). Pure functions of the option values, so a model with its own options can call the ones it shares.
"""

from __future__ import annotations

from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lightning_gans.compat import has_batch_norm
from lightning_gans.losses import get_loss


def check_schedule(update: str, d_steps: str, n_critic: int) -> None:
    """``n_critic`` ≥ 1; the simultaneous update takes one joint step per batch."""
    if n_critic < 1:
        raise ValueError(f"n_critic must be >= 1, got {n_critic}")
    if update == "simultaneous" and (n_critic != 1 or d_steps != "joint"):
        raise ValueError("update='simultaneous' takes one joint step per batch: use n_critic=1, d_steps='joint'")


def check_regularisers(
    gradient_penalty: float | None, r1_gamma: float | None, weight_clip: float | None, drift: float | None
) -> None:
    """Every enabled regulariser > 0; weight clipping and the gradient penalty exclude each other."""
    regularisers = {"gradient_penalty": gradient_penalty, "r1_gamma": r1_gamma}
    regularisers.update(weight_clip=weight_clip, drift=drift)
    for name, value in regularisers.items():
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0 (or None to disable it), got {value}")
    if weight_clip is not None and gradient_penalty is not None:
        raise ValueError(
            "weight_clip and gradient_penalty are alternative Lipschitz constraints (WGAN vs WGAN-GP); "
            "Gulrajani et al. 2017 replace clipping by the penalty because clipping biases the critic: "
            "set only one of them"
        )


def check_tricks(
    loss: str,
    label_smoothing: float | None,
    noisy_labels: float | None,
    instance_noise: float | None,
    feature_matching: str,
    pack: int,
    d_pretrain_steps: int,
    conditional: bool = False,
) -> None:
    """The training tricks' ranges and combinations (``conditional``: the model has one condition per sample)."""
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
    if instance_noise is not None and not instance_noise > 0:
        raise ValueError(f"instance_noise must be > 0 (or None to disable it), got {instance_noise}")
    if feature_matching not in ("off", "replace", "add"):
        raise ValueError(f"feature_matching must be 'off', 'replace' or 'add', got {feature_matching!r}")
    if pack < 1 or d_pretrain_steps < 0:
        raise ValueError(f"pack must be >= 1 and d_pretrain_steps >= 0, got {pack} and {d_pretrain_steps}")
    if pack > 1 and conditional:
        raise ValueError("pack > 1 is not supported by conditional models (one condition per sample)")


def check_ema(ema_decay: float | None, ema_warmup: bool) -> None:
    """``ema_decay`` in (0, 1); the warm-up ramps a decay, so it needs one."""
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
    if ema_warmup and ema_decay is None:
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
