"""Adversarial losses in minimisation form, selected by name, and the critic regularisers.

Each loss maps discriminator outputs to three scalars: the D loss on real samples, the D loss on fake samples,
and the G loss. The D loss that is minimised is ``discriminator_real + discriminator_fake``. Outputs are
logits for the BCE losses (so every term is numerically stable: ``softplus`` instead of ``log(sigmoid)``)
and raw, unbounded scores for LSGAN, hinge and Wasserstein, where D(·) below *is* the network's output.

* ``minimax`` / ``non_saturating`` — Goodfellow et al. 2014: D maximises log D(x) + log(1 − D(G(z))).
  G minimises log(1 − D(G(z))) (``minimax``, saturates when D rejects fakes confidently) or, in practice,
  maximises log D(G(z)) (``non_saturating``, §3 of the paper).
* ``lsgan`` — Mao et al. 2017, with a = 0, b = 1, c = 1:
  D ½E(D(x) − 1)² + ½E D(G(z))², G ½E(D(G(z)) − 1)².
* ``hinge`` — Lim & Ye 2017; Miyato et al. 2018: D E relu(1 − D(x)) + E relu(1 + D(G(z))),
  G −E D(G(z)).
* ``wasserstein`` — Arjovsky et al. 2017 (Alg. 1): critic E D(G(z)) − E D(x), G −E D(G(z)). Needs a Lipschitz
  constraint: ``clip_weights`` (WGAN) or ``gradient_penalty`` (WGAN-GP).

Regularisers (plain functions; ``GANModule`` adds them to the D loss with their weights):

* ``gradient_penalty`` — Gulrajani et al. 2017, Alg. 1: E(‖∇x̂ D(x̂)‖₂ − 1)² at x̂ = εx + (1 − ε)x̃,
  ε ~ U[0, 1] per sample; weighted by λ (10 in the paper).
* ``r1_penalty`` — Mescheder et al. 2018: E‖∇x D(x)‖² on real data; weighted by γ/2.
* ``drift_penalty`` — Karras et al. 2018 (ProGAN): E D(x)², weighted by ε_drift (0.001 there),
  keeps the critic's output from drifting far from zero.
* ``clip_weights`` — Arjovsky et al. 2017: clamp every critic parameter to [−c, c] after each critic step.

Generator objective alternative:

* ``feature_matching_loss`` — Salimans et al. 2016, §3.1: ‖E f(x) − E f(G(z))‖₂² on intermediate
  discriminator features f; the real-feature mean is a constant target (detached).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Critic = Callable[[torch.Tensor], torch.Tensor]


def _as_target(target: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar or per-sample label target broadcast to ``like`` (same dtype/device)."""
    return torch.as_tensor(target, dtype=like.dtype, device=like.device).expand_as(like)


@dataclass(frozen=True)
class AdversarialLoss:
    """A named adversarial loss; the base class holds the BCE D terms shared by ``minimax``/``non_saturating``.

    ``target`` (D terms only) replaces the label 1 (real) or 0 (fake) by a soft one — a scalar or one value per
    sample — for one-sided label smoothing (Salimans et al. 2016, §3.4) and noisy labels. Losses whose D terms
    have no label (hinge, Wasserstein) set ``supports_targets = False``.
    """

    name: str
    supports_targets = True

    def discriminator_real(self, logits: torch.Tensor, target: float | torch.Tensor | None = None) -> torch.Tensor:
        """−log D(x) = BCE-with-logits(logits, 1); with ``target`` t: BCE-with-logits(logits, t)."""
        if target is None:
            return F.softplus(-logits).mean()
        return F.binary_cross_entropy_with_logits(logits, _as_target(target, logits))

    def discriminator_fake(self, logits: torch.Tensor, target: float | torch.Tensor | None = None) -> torch.Tensor:
        """−log(1 − D(G(z))) = BCE-with-logits(logits, 0); with ``target`` t: BCE-with-logits(logits, t)."""
        if target is None:
            return F.softplus(logits).mean()
        return F.binary_cross_entropy_with_logits(logits, _as_target(target, logits))

    def generator(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class NonSaturatingLoss(AdversarialLoss):
    def generator(self, logits: torch.Tensor) -> torch.Tensor:
        """−log D(G(z)) = BCE-with-logits(logits, 1) (Goodfellow et al. 2014, §3)."""
        return F.softplus(-logits).mean()


class MinimaxLoss(AdversarialLoss):
    def generator(self, logits: torch.Tensor) -> torch.Tensor:
        """log(1 − D(G(z))) = −softplus(logits): the saturating form of the original objective."""
        return -F.softplus(logits).mean()


class LSGANLoss(AdversarialLoss):
    """Least squares (Mao et al. 2017, a = 0, b = 1, c = 1) on raw D outputs; ``target`` replaces b or a."""

    def discriminator_real(self, scores: torch.Tensor, target: float | torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * (scores - (1.0 if target is None else _as_target(target, scores))).pow(2).mean()

    def discriminator_fake(self, scores: torch.Tensor, target: float | torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * (scores - (0.0 if target is None else _as_target(target, scores))).pow(2).mean()

    def generator(self, scores: torch.Tensor) -> torch.Tensor:
        return 0.5 * (scores - 1.0).pow(2).mean()


class _UnlabelledLoss(AdversarialLoss):
    """D terms without a label target (hinge margin, Wasserstein estimate): soft labels do not apply."""

    supports_targets = False

    @staticmethod
    def _no_target(target: float | torch.Tensor | None) -> None:
        if target is not None:
            raise ValueError("label targets (label smoothing / noisy labels) apply to BCE and LSGAN losses only")


class HingeLoss(_UnlabelledLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018) on raw D outputs."""

    def discriminator_real(self, scores: torch.Tensor, target: float | torch.Tensor | None = None) -> torch.Tensor:
        self._no_target(target)
        return F.relu(1.0 - scores).mean()

    def discriminator_fake(self, scores: torch.Tensor, target: float | torch.Tensor | None = None) -> torch.Tensor:
        self._no_target(target)
        return F.relu(1.0 + scores).mean()

    def generator(self, scores: torch.Tensor) -> torch.Tensor:
        return -scores.mean()


class WassersteinLoss(_UnlabelledLoss):
    """Wasserstein critic loss (Arjovsky et al. 2017): critic minimises E D(G(z)) − E D(x)."""

    def discriminator_real(self, scores: torch.Tensor, target: float | torch.Tensor | None = None) -> torch.Tensor:
        self._no_target(target)
        return -scores.mean()

    def discriminator_fake(self, scores: torch.Tensor, target: float | torch.Tensor | None = None) -> torch.Tensor:
        self._no_target(target)
        return scores.mean()

    def generator(self, scores: torch.Tensor) -> torch.Tensor:
        return -scores.mean()


LOSSES: dict[str, AdversarialLoss] = {
    "non_saturating": NonSaturatingLoss("non_saturating"),
    "minimax": MinimaxLoss("minimax"),
    "lsgan": LSGANLoss("lsgan"),
    "hinge": HingeLoss("hinge"),
    "wasserstein": WassersteinLoss("wasserstein"),
}


def get_loss(name: str) -> AdversarialLoss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown adversarial loss {name!r}; choose one of {sorted(LOSSES)}") from None


# ---------------------------------------------------------------------------------------------- regularisers
def _input_gradient(critic_fn: Critic, x: torch.Tensor, loss_scale: torch.Tensor | None = None) -> torch.Tensor:
    """∇x Σ_i D(x_i) per sample, flattened to (N, -1), with a graph so the penalty can be backpropagated.

    ``x`` is detached first: the penalty's gradient reaches only the critic's parameters, never whatever
    produced ``x`` (e.g. the generator). With a mixed-precision ``loss_scale`` (D's GradScaler scale, a tensor),
    the gradient is taken of ``loss_scale · ΣD`` — so fp16 intermediate gradients do not underflow — and divided
    by it again (the gradient-penalty recipe of PyTorch's AMP notes): the value is the unscaled gradient.
    """
    x = x.detach().requires_grad_(True)
    total = critic_fn(x).sum()
    if loss_scale is not None:
        total = total * loss_scale
    (grad,) = torch.autograd.grad(total, x, create_graph=True)
    if loss_scale is not None:
        grad = grad / loss_scale
    return grad.flatten(1)


def gradient_penalty(
    critic_fn: Critic,
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
    epsilon: torch.Tensor | None = None,
    loss_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty E(‖∇x̂ D(x̂)‖₂ − 1)² (Gulrajani et al. 2017, Alg. 1), without the λ factor.

    x̂ = εx + (1 − ε)x̃ with ε ~ U[0, 1] drawn once per sample (from ``generator`` if given), or the given
    ``epsilon`` (shape (N,)) for a fixed interpolation. ``loss_scale``: under 16-mixed, D's loss scale
    (``_input_gradient``).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches must have the same shape, got {real.shape} and {fake.shape}")
    n = real.shape[0]
    if epsilon is None:
        epsilon = torch.rand(n, generator=generator, device=generator.device if generator else None)
    epsilon = epsilon.to(device=real.device, dtype=real.dtype).reshape(n, *([1] * (real.dim() - 1)))
    interpolated = epsilon * real.detach() + (1.0 - epsilon) * fake.detach()
    norms = torch.linalg.vector_norm(_input_gradient(critic_fn, interpolated, loss_scale), dim=1)
    return (norms - 1.0).pow(2).mean()


def r1_penalty(critic_fn: Critic, real: torch.Tensor, loss_scale: torch.Tensor | None = None) -> torch.Tensor:
    """R1 penalty E‖∇x D(x)‖² on real samples (Mescheder et al. 2018), without the γ/2 factor (``loss_scale``:
    under 16-mixed, D's loss scale; ``_input_gradient``)."""
    return _input_gradient(critic_fn, real, loss_scale).pow(2).sum(dim=1).mean()


def drift_penalty(real_scores: torch.Tensor) -> torch.Tensor:
    """E D(x)² on real samples (Karras et al. 2018), without the ε_drift factor (0.001 there)."""
    return real_scores.pow(2).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, c: float = 0.01) -> None:
    """Clamp every parameter of ``module`` to [−c, c] in place (Arjovsky et al. 2017, Alg. 1, c = 0.01)."""
    if c <= 0:
        raise ValueError(f"weight clip c must be > 0, got {c}")
    for p in module.parameters():
        p.clamp_(-c, c)


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """‖E f(x) − E f(G(z))‖₂² (Salimans et al. 2016, §3.1): squared L2 distance of the batch-mean features.

    Features are flattened per sample; the real mean is detached (a target, so only G receives gradient).
    """
    real_mean = real_features.detach().flatten(1).mean(dim=0)
    fake_mean = fake_features.flatten(1).mean(dim=0)
    return (real_mean - fake_mean).pow(2).sum()
