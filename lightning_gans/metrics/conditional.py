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


class ClassHistogram(Metric):
    """How the classifier's argmax labels of generated samples spread over the K classes: **class coverage** (how
    many classes receive at least ``threshold`` of the samples; 10/10 for a generator that draws every digit,
    ~5/10 for the collapsed DCGAN of the digits seed) and the **KL divergence of the histogram from uniform**,
    KL(p ‖ U) = Σ_k p_k log(K p_k) (0 log 0 = 0; 0 for a perfectly balanced generator, log K when every sample
    lands in one class). Coverage at 5 % follows the mode-coverage counts of Srivastava et al. 2017 (VEEGAN)
    and Lin et al. 2018 (PacGAN) for stacked MNIST, with a frequency instead of a count floor so the number does
    not depend on N. The state is an integer count per class reduced by sum: exact across DDP ranks.
    """

    higher_is_better = None  # per output, below
    output_higher_is_better = {"coverage": True, "class_kl": False, "class_min": True}
    is_differentiable = False
    full_state_update = False

    def __init__(self, num_classes: int, threshold: float = 0.05, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_classes < 2 or not 0.0 < threshold <= 1.0 / num_classes:
            raise ValueError(
                f"need num_classes >= 2 and 0 < threshold <= 1/num_classes, got {num_classes}, {threshold}"
            )
        self.num_classes, self.threshold = num_classes, threshold
        self.add_state("counts", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor) -> None:
        """Add classifier logits (N, K) of generated samples; N may be 0."""
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"expected logits (N, {self.num_classes}), got {tuple(logits.shape)}")
        self.counts += torch.bincount(logits.argmax(dim=1).to(self.device), minlength=self.num_classes)

    def compute(self) -> dict[str, Tensor]:
        """``{"coverage": classes with share >= threshold (float64), "class_kl": KL(p ‖ uniform) in nats,
        "class_min": the smallest class share (1/K when balanced; what "every class above x %" is judged by)}``."""
        total = self.counts.sum()
        if total < 1:
            raise RuntimeError("ClassHistogram: no samples")
        p = self.counts.double() / total
        kl = torch.where(p > 0, p * torch.log(p * self.num_classes), torch.zeros_like(p)).sum()
        return {"coverage": (p >= self.threshold).sum().double(), "class_kl": kl, "class_min": p.min()}
