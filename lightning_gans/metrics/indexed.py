"""Metric states that are samples tagged with their global index (KID, PRDC): exact for any DDP rank layout.

Each rank appends its features with their global sample indices; ``compute()`` gathers every rank's rows, sorts
them by index and drops duplicates (a padded ``DistributedSampler`` repeats samples: the duplicates must carry
identical features), so the samples a metric sees do not depend on how they were split across ranks.
"""

from __future__ import annotations

from copy import deepcopy

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def sorted_unique(features: Tensor, indices: Tensor, what: str) -> Tensor:
    """Rows of ``features`` ordered by ``indices``; duplicated indices are kept once, after checking the duplicates
    carry identical features."""
    order = torch.argsort(indices, stable=True)
    features, indices = features[order], indices[order]
    keep = torch.ones_like(indices, dtype=torch.bool)
    keep[1:] = indices[1:] != indices[:-1]
    if not keep.all():
        first = torch.cumsum(keep, 0) - 1  # row of the first occurrence of each index
        if not torch.equal(features, features[keep][first]):
            raise ValueError(f"{what} sample indices repeat with different features")
        features = features[keep]
    return features


class IndexedFeatures(Metric):
    """Base class: ``real_features``/``real_indices`` and ``fake_features``/``fake_indices`` list states (gathered
    by concatenation); :meth:`side` returns one side sorted by index, duplicate-free, in float64.

    ``reset_real_features=False`` keeps the real samples through ``reset()`` (compute them once per run).
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, reset_real_features: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reset_real_features = reset_real_features
        for side in ("real", "fake"):
            self.add_state(f"{side}_features", [], dist_reduce_fx="cat")
            self.add_state(f"{side}_indices", [], dist_reduce_fx="cat")

    def update(self, features: Tensor, real: bool, indices: Tensor) -> None:
        """Add features (N, d) with their global sample indices (N,) (unique within the real / the fake set)."""
        if features.dim() != 2 or indices.shape != (features.shape[0],):
            shapes = f"{tuple(features.shape)} and {tuple(indices.shape)}"
            raise ValueError(f"expected features (N, d) and indices (N,), got {shapes}")
        side = "real" if real else "fake"
        getattr(self, f"{side}_features").append(features.detach().to(self.device))
        getattr(self, f"{side}_indices").append(indices.detach().to(self.device, torch.long))

    def set_real_features(self, features: Tensor, indices: Tensor) -> None:
        """Replace the real samples (e.g. from reference statistics). Under DDP give them to rank 0 only and empty
        (0, d) / (0,) tensors to the other ranks, as the gather concatenates every rank's list."""
        self.real_features, self.real_indices = [], []
        self.update(features, True, indices)

    def side(self, side: str) -> Tensor:
        """The ``"real"`` or ``"fake"`` samples of all ranks (float64), sorted by global index."""
        features, indices = getattr(self, f"{side}_features"), getattr(self, f"{side}_indices")
        if not (isinstance(features, list) and not features):  # a gathered state is one tensor
            features, indices = dim_zero_cat(features), dim_zero_cat(indices).long()
        if isinstance(features, list) or len(indices) == 0:
            raise RuntimeError(f"{type(self).__name__}: no {side} samples")
        return sorted_unique(features.double(), indices, f"{type(self).__name__}: {side}")

    def reset(self) -> None:
        """Reset; with ``reset_real_features=False`` the real samples are kept."""
        if self.reset_real_features:
            super().reset()
            return
        kept = (deepcopy(self.real_features), deepcopy(self.real_indices))
        super().reset()
        self.real_features, self.real_indices = kept
