"""Intra-class FID (Miyato & Koyama 2018, "cGANs with Projection Discriminator"): the mean over classes of the FID
between the fakes generated for class c and the reals of class c.

A conditional generator that draws good digits under the wrong labels, or one class badly, keeps a good plain FID
(the pooled distributions still match) but not a good intra-FID. States are per-class float64 sums Σx (K, d),
Σxxᵀ (K, d, d) and counts (K,) for reals and fakes, reduced by sum across ranks (exact under DDP); each class's
FID is the existing :class:`~lightning_gans.metrics.FrechetDistance` computed from that class's sums, so intra-FID
is by construction the mean of class-by-class FIDs. Memory: 2·K·d²·8 bytes (10 classes of 2048-d Inception
features: 671 MB; 1000 ImageNet classes would need 67 GB, refused above ``MAX_STATE_BYTES``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_gans.metrics.scores import FrechetDistance

MAX_STATE_BYTES = 8 << 30


class ClassFrechetDistance(Metric):
    """Per-class FID of ``num_classes`` classes; ``compute()`` → (mean over classes, per-class FIDs (K,))."""

    higher_is_better = False
    is_differentiable = False
    full_state_update = False

    def __init__(self, num_features: int, num_classes: int, reset_real_features: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        k, d = num_classes, num_features
        if k < 1 or d < 1:
            raise ValueError(f"need num_classes >= 1 and num_features >= 1, got {k}, {d}")
        if 2 * k * d * d * 8 > MAX_STATE_BYTES:
            raise ValueError(
                f"intra_fid with {k} classes of {d}-d features needs {2 * k * d * d * 8 / 2**30:.0f} GiB of "
                "statistics: use a lower-dimensional extractor or fewer classes"
            )
        self.num_features, self.num_classes, self.reset_real_features = d, k, reset_real_features
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(k, d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(k, d, d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.zeros(k, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, features: Tensor, labels: Tensor, real: bool) -> None:
        """Add features (N, d) of samples of the given classes (N,) (reals: their labels; fakes: the requested)."""
        if features.dim() != 2 or features.shape[1] != self.num_features or labels.shape != (features.shape[0],):
            got = f"{tuple(features.shape)} and {tuple(labels.shape)}"
            raise ValueError(f"expected features (N, {self.num_features}) and labels (N,), got {got}")
        labels = labels.to(self.device, torch.long)
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"intra_fid: labels must lie in [0, {self.num_classes}), got {labels.unique().tolist()}")
        x = features.detach().to(self.device, torch.float64)
        side = "real" if real else "fake"
        getattr(self, f"{side}_sum").index_add_(0, labels, x)
        getattr(self, f"{side}_outer").index_add_(0, labels, x[:, :, None] * x[:, None, :])
        getattr(self, f"{side}_n").index_add_(0, labels, torch.ones_like(labels))

    def set_real_statistics(self, sums: Tensor, outers: Tensor, counts: Tensor) -> None:
        """Replace the real states by totals (rank 0) or zeros (other ranks), as :class:`FrechetDistance`'s."""
        k, d = self.num_classes, self.num_features
        if sums.shape != (k, d) or outers.shape != (k, d, d) or counts.shape != (k,):
            shapes = f"{tuple(sums.shape)}, {tuple(outers.shape)}, {tuple(counts.shape)}"
            raise ValueError(f"expected class statistics ({k}, {d}), ({k}, {d}, {d}), ({k},); got {shapes}")
        self.real_sum = sums.detach().to(self.device, torch.float64).clone()
        self.real_outer = outers.detach().to(self.device, torch.float64).clone()
        self.real_n = counts.detach().to(self.device, torch.long).clone()

    def real_statistics(self) -> tuple[Tensor, Tensor, Tensor]:
        """(Σx, Σxxᵀ, N) per class over all ranks (collective under DDP: call on every rank)."""
        with self.sync_context(should_sync=not self._is_synced, should_unsync=True):
            return self.real_sum.clone(), self.real_outer.clone(), self.real_n.clone()

    def compute(self) -> tuple[Tensor, Tensor]:
        few = [c for c in range(self.num_classes) if min(self.real_n[c], self.fake_n[c]) < 2]
        if few:
            counts = ", ".join(f"{c}: {int(self.real_n[c])} real/{int(self.fake_n[c])} fake" for c in few[:5])
            raise RuntimeError(f"intra_fid needs >= 2 real and fake samples of every class; got {counts}: raise N")
        per_class = torch.stack([self._class_fid(c) for c in range(self.num_classes)])
        return per_class.mean(), per_class

    def _class_fid(self, c: int) -> Tensor:
        fid = FrechetDistance(self.num_features, sync_on_compute=False).to(self.device)  # states are global already
        fid.set_real_statistics(self.real_sum[c], self.real_outer[c], self.real_n[c])
        fid.set_statistics("fake", self.fake_sum[c], self.fake_outer[c], self.fake_n[c])
        return fid.compute().double()

    def reset(self) -> None:
        """Reset; with ``reset_real_features=False`` the real statistics are kept."""
        kept = (self.real_sum.clone(), self.real_outer.clone(), self.real_n.clone())
        super().reset()
        if not self.reset_real_features:
            self.real_sum, self.real_outer, self.real_n = kept
