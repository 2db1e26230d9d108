"""Precision, recall, density and coverage of generated samples in feature space (fidelity and diversity apart).

* Precision / recall — Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
  Models": the share of fakes inside the real manifold (the union of balls around each real reaching its k-th
  nearest real neighbour), and of reals inside the fake manifold.
* Density / coverage — Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models":
  density counts how many real balls contain each fake (÷ k, so ≈ 1 when fakes follow the reals; robust to
  real outliers), coverage is the share of reals whose ball contains at least one fake (k = 5 in the paper).

With X the N reals, Y the M fakes, r_i the distance from X_i to its k-th nearest other real and s_j the same
for Y_j among the fakes::

    precision = 1/M Σ_j 1[∃i: d(Y_j, X_i) < r_i]        recall   = 1/N Σ_i 1[∃j: d(X_i, Y_j) < s_j]
    density   = 1/(kM) Σ_j Σ_i 1[d(Y_j, X_i) < r_i]     coverage = 1/N Σ_i 1[min_j d(X_i, Y_j) < r_i]

Ties: a point exactly at a ball's radius is outside it (strict ``<``, as in the authors' released code), and the
k-th neighbour distance counts coincident points (a duplicate real is a neighbour at distance 0).

Cost: three distance blocks (real–real, fake–fake, real–fake), O((N + M)² d) multiply-adds in float64, computed
in row chunks of at most ``chunk_elements`` distances, so memory stays at the features (float64 copies) plus one
chunk: N = M = 50k with 2048-d Inception features is 1.6 GB of features + 256 MiB of distances and ≈ 3·10¹³ FLOPs
(minutes on one GPU in float64, hours on a CPU core). The states are index-tagged samples (:mod:`.indexed`), so
the values are identical for any DDP rank layout.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_gans.metrics.indexed import IndexedFeatures

PRDC_KEYS = ("precision", "recall", "density", "coverage")
CHUNK_ELEMENTS = 1 << 25  # distances per chunk: 256 MiB of float64


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """‖a_i − b_j‖² (float64 matmul expansion, clamped at 0): exact for integer-valued features."""
    out = (a * a).sum(1, keepdim=True) + (b * b).sum(1) - 2.0 * (a @ b.T)
    return out.clamp_min_(0.0)


def _rows_per_chunk(cols: int, chunk_elements: int) -> int:
    return max(1, chunk_elements // max(cols, 1))


def kth_neighbour_radii(x: Tensor, k: int, chunk_elements: int = CHUNK_ELEMENTS) -> Tensor:
    """Squared distance of each row of ``x`` to its k-th nearest other row (the point itself is the 0-th)."""
    if len(x) <= k:
        raise ValueError(f"PRDC with k={k} needs more than {k} samples per side, got {len(x)}")
    step = _rows_per_chunk(len(x), chunk_elements)
    radii = [
        squared_distances(x[i : i + step], x).topk(k + 1, dim=1, largest=False).values[:, k]
        for i in range(0, len(x), step)
    ]
    return torch.cat(radii)


def prdc(real: Tensor, fake: Tensor, k: int = 5, chunk_elements: int = CHUNK_ELEMENTS) -> dict[str, Tensor]:
    """Precision, recall, density and coverage (float64 scalars) of ``fake`` (M, d) against ``real`` (N, d)."""
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected real (N, d) and fake (M, d) features, got {tuple(real.shape)}, {tuple(fake.shape)}")
    real, fake = real.double(), fake.double()
    real_radii = kth_neighbour_radii(real, k, chunk_elements)
    fake_radii = kth_neighbour_radii(fake, k, chunk_elements)
    inside_real = torch.zeros((), dtype=torch.float64, device=real.device)  # fakes inside some real ball
    real_balls_hit = torch.zeros((), dtype=torch.float64, device=real.device)  # Σ_j Σ_i 1[Y_j in ball(X_i)]
    recalled = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    nearest_fake = torch.full((len(real),), float("inf"), dtype=torch.float64, device=real.device)
    step = _rows_per_chunk(len(real), chunk_elements)
    for j in range(0, len(fake), step):
        rows = slice(j, j + step)
        distances = squared_distances(fake[rows], real)  # (chunk of fakes, N)
        within = distances < real_radii
        inside_real += within.any(1).sum()
        real_balls_hit += within.sum()
        recalled |= (distances < fake_radii[rows, None]).any(0)
        nearest_fake = torch.minimum(nearest_fake, distances.min(0).values)
    return {
        "precision": inside_real / len(fake),
        "recall": recalled.double().mean(),
        "density": real_balls_hit / (k * len(fake)),
        "coverage": (nearest_fake < real_radii).double().mean(),
    }


class PrecisionRecallDensityCoverage(IndexedFeatures):
    """PRDC of the gathered real and fake features (see the module docstring); ``compute()`` returns a dict of
    float64 scalars ``precision``, ``recall``, ``density``, ``coverage``. All four: higher is better (density can
    exceed 1 when fakes crowd dense real regions)."""

    higher_is_better = True

    def __init__(
        self, k: int = 5, chunk_elements: int = CHUNK_ELEMENTS, reset_real_features: bool = True, **kwargs
    ) -> None:
        super().__init__(reset_real_features=reset_real_features, **kwargs)
        if k < 1 or chunk_elements < 1:
            raise ValueError(f"need k >= 1 and chunk_elements >= 1, got k={k}, chunk_elements={chunk_elements}")
        self.k, self.chunk_elements = k, chunk_elements

    def compute(self) -> dict[str, Tensor]:
        return prdc(self.side("real"), self.side("fake"), self.k, self.chunk_elements)
