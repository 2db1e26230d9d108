"""Minibatch discrimination (Salimans et al. 2016, "Improved Techniques for Training GANs", §3.2).

For features f(x_i) ∈ R^A of the samples in a batch and a learned tensor T ∈ R^{A×B×C}: M_i = f(x_i)·T ∈ R^{B×C},
c_b(x_i, x_j) = exp(−‖M_{i,b} − M_{j,b}‖_L1), o(x_i)_b = Σ_j c_b(x_i, x_j) over the whole batch (j = i included,
as in the paper, which adds the constant 1), and the layer outputs [f(x_i), o(x_i)] ∈ R^{A+B}. Samples of a
collapsed generator are all close, so o(x) is large on fake batches and D can tell them apart; the
discriminator therefore sees real and fake batches separately (the base module's D steps do).
"""

from __future__ import annotations

import torch
from torch import nn


class MinibatchDiscrimination(nn.Module):
    """[f, o(f)]: appends B "closeness to the rest of the batch" features to A input features.

    Args:
        in_features: A.
        num_kernels: B (the paper's experiments use 100 for CIFAR-10; 5–50 are common for small models).
        kernel_dim: C (the paper: 5).
        init_std: T ~ N(0, init_std²).
    """

    def __init__(self, in_features: int, num_kernels: int = 50, kernel_dim: int = 5, init_std: float = 0.05) -> None:
        super().__init__()
        if min(in_features, num_kernels, kernel_dim) < 1:
            raise ValueError("in_features, num_kernels and kernel_dim must be >= 1")
        self.in_features, self.num_kernels, self.kernel_dim = in_features, num_kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, num_kernels * kernel_dim) * init_std)

    @property
    def out_features(self) -> int:
        return self.in_features + self.num_kernels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        f = features.flatten(1)
        m = (f @ self.T).view(-1, self.num_kernels, self.kernel_dim)  # N×B×C
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(dim=3)  # N×N×B: ‖M_i,b − M_j,b‖_L1
        o = torch.exp(-l1).sum(dim=1)  # N×B: Σ_j c_b(x_i, x_j)
        return torch.cat([f, o], dim=1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_kernels={self.num_kernels}, kernel_dim={self.kernel_dim}"
