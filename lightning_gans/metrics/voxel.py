"""Voxel-shape quality: coverage and minimum-matching distance (MMD) by voxel IoU, exact under DDP.

Achlioptas et al. 2018 ("Learning Representations and Generative Models for 3D Point Clouds", §4) compare a
generated set G with a reference set R under a shape distance d:

* **coverage** — the fraction of reference shapes that are the nearest neighbour (in R) of at least one generated
  shape: how much of R the generator reproduces (mode coverage; higher is better);
* **MMD** (minimum matching distance) — for each reference shape the distance to its closest generated shape,
  averaged over R: how faithful the best matches are (lower is better).

Here shapes are voxel occupancies thresholded at 0.5 and d = 1 − IoU (the Jaccard distance of the occupied
sets; two empty volumes have IoU 1). Intersections are exact integer counts from a float32 matrix product.

States (:class:`VoxelCoverage`): ``matched`` — per reference shape, how many generated shapes chose it as nearest
(sum-reduced) — and ``best_iou`` — per reference shape, the best IoU seen (max-reduced). Both reductions are
order-independent, so a 2-process evaluation (each rank scoring its own fakes against every reference shape)
gives exactly the 1-process values. :func:`evaluate_voxel_quality` follows the exact-N protocol of
:mod:`lightning_gans.evaluation`: rank r generates the fakes of global indices r, r + W, … < N with the latents of
those indices (:class:`~lightning_gans.evaluation.ModuleSampler`), in a forked RNG.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

THRESHOLD = 0.5
EXTRACTOR_NAME = "voxel-iou"  # the protocol part of the logged names: coverage/voxel-iou/<N>, mmd/voxel-iou/<N>


def occupancy(volumes: Tensor, threshold: float = THRESHOLD) -> Tensor:
    """N×(any shape) occupancy probabilities → N×V float {0, 1} rows (occupied where value > threshold)."""
    return (volumes.detach().reshape(volumes.shape[0], -1) > threshold).float()


def voxel_iou(a: Tensor, b: Tensor, chunk: int = 512) -> Tensor:
    """IoU between every row of ``a`` (n×V, {0, 1}) and every row of ``b`` (m×V) → n×m; empty vs empty is 1."""
    a, b = a.float(), b.float()
    size_a = a.sum(1)
    out = []
    for start in range(0, b.shape[0], chunk):
        block = b[start : start + chunk].to(a.device)
        intersection = a @ block.T
        union = size_a[:, None] + block.sum(1)[None, :] - intersection
        out.append(torch.where(union > 0, intersection / union.clamp_min(1), torch.ones_like(union)))
    return torch.cat(out, dim=1) if out else a.new_zeros(a.shape[0], 0)


class VoxelCoverage(Metric):
    """Coverage and MMD (1 − IoU) of generated volumes against fixed ``references`` (see the module docstring).

    ``update(fakes)`` takes occupancy probabilities (N×1×D×H×W); ``compute()`` returns ``{"coverage", "mmd"}``.
    """

    higher_is_better = None  # per output, below
    output_higher_is_better = {"coverage": True, "mmd": False}
    is_differentiable = False
    full_state_update = False

    def __init__(self, references: Tensor, threshold: float = THRESHOLD, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if len(references) < 1:
            raise ValueError("VoxelCoverage needs at least one reference volume")
        self.threshold = threshold
        self.register_buffer("references", occupancy(references, threshold), persistent=False)
        n = len(references)
        self.add_state("matched", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("best_iou", torch.full((n,), -1.0, dtype=torch.float64), dist_reduce_fx="max")

    def update(self, fakes: Tensor) -> None:
        if fakes.shape[0] == 0:
            return
        iou = voxel_iou(occupancy(fakes.to(self.references.device), self.threshold), self.references)
        nearest = iou.argmax(dim=1)  # ties: the lowest reference index (torch.argmax returns the first maximum)
        self.matched += torch.bincount(nearest, minlength=len(self.references)).to(self.matched.dtype)
        self.best_iou = torch.maximum(self.best_iou, iou.max(dim=0).values.to(self.best_iou.dtype))

    def compute(self) -> dict[str, Tensor]:
        if bool((self.best_iou < 0).any()):
            raise RuntimeError("VoxelCoverage.compute() before any generated volume was added")
        return {"coverage": (self.matched > 0).double().mean(), "mmd": (1.0 - self.best_iou).mean()}
