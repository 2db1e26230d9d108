"""Conditional accuracy: how often a classifier recognises the class a conditional generator was asked for.

For a conditional GAN (e.g. the CGAN of *GANs in Action* ch. 8) the domain classifier that serves as the FID
feature extractor (``lenet-mnist``) labels every fake; the score is the fraction whose argmax equals the label
the fake was generated for. States are counts reduced by sum, so the value is exact across DDP ranks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric


class ConditionalAccuracy(Metric):
    """Fraction of generated samples whose classifier argmax equals their requested label."""

    higher_is_better = True
    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, labels: Tensor) -> None:
        """Add classifier logits (N, K) of fakes generated for ``labels`` (N,); N may be 0."""
        if logits.dim() != 2 or labels.shape != (logits.shape[0],):
            shapes = f"{tuple(logits.shape)}, {tuple(labels.shape)}"
            raise ValueError(f"expected logits (N, K) and labels (N,), got {shapes}")
        self.correct += (logits.argmax(dim=1).to(self.device) == labels.to(self.device)).sum()
        self.total += labels.shape[0]

    def compute(self) -> Tensor:
        """The accuracy (float64 scalar)."""
        if self.total < 1:
            raise RuntimeError("ConditionalAccuracy: no samples")
        return self.correct.double() / self.total
