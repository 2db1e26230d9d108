"""Adversarial losses in minimisation form, selected by name.

Each loss maps discriminator logits to three scalars: the D loss on real samples, the D loss on fake
samples, and the G loss. Logits (not probabilities) are used everywhere so every loss is numerically stable
(``softplus`` instead of ``log(sigmoid)``). The loss-registry issue extends this file (LSGAN, hinge,
Wasserstein, regularisers); the contract stays the same.

Goodfellow et al. 2014: D maximises log D(x) + log(1 − D(G(z))). G minimises log(1 − D(G(z))) (``minimax``,
saturates when D rejects fakes confidently) or, in practice, maximises log D(G(z)) (``non_saturating``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AdversarialLoss:
    name: str

    def discriminator_real(self, logits: torch.Tensor) -> torch.Tensor:
        """−log D(x) = BCE-with-logits(logits, 1)."""
        return F.softplus(-logits).mean()

    def discriminator_fake(self, logits: torch.Tensor) -> torch.Tensor:
        """−log(1 − D(G(z))) = BCE-with-logits(logits, 0)."""
        return F.softplus(logits).mean()

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


LOSSES: dict[str, AdversarialLoss] = {
    "non_saturating": NonSaturatingLoss("non_saturating"),
    "minimax": MinimaxLoss("minimax"),
}


def get_loss(name: str) -> AdversarialLoss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown adversarial loss {name!r}; choose one of {sorted(LOSSES)}") from None
