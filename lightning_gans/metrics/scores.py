"""FID, IS and KID on pre-computed features/logits, as ``torchmetrics.Metric`` objects that are exact under DDP.

Every state is either a float64 sum (reduced by summation across ranks, so the result equals a single-process
run up to float64 round-off whatever the order of updates) or a list of samples tagged with their global index
(gathered and sorted by that index before use, so the result is identical for every rank layout). The caller
extracts features once per evaluation and feeds all three metrics.

* FID — Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium".
* IS — Salimans et al. 2016, "Improved Techniques for Training GANs".
* KID — Bińkowski et al. 2018, "Demystifying MMD GANs".
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance

from lightning_gans.metrics.indexed import IndexedFeatures


class _PrecomputedFeatures(nn.Module):
    """Stands in for the network inside torchmetrics' FID: the "images" are already features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"expected features (N, {self.num_features}), got {tuple(features.shape)}")
        return features.detach().double()


class FrechetDistance(FrechetInceptionDistance):
    """FID between real and fake features: ‖μ_r − μ_f‖² + Tr(Σ_r + Σ_f − 2 (Σ_r Σ_f)^{1/2}).

    torchmetrics' ``FrechetInceptionDistance`` fed with features: its states are float64 Σx, Σxxᵀ and counts
    reduced by sum across ranks. ``compute()`` returns a float64 scalar. With ``reset_real_features=False``
    the real statistics survive ``reset()`` (compute them once, evaluate many epochs).
    """

    higher_is_better = False
    full_state_update = False

    def __init__(self, num_features: int, reset_real_features: bool = True, **kwargs) -> None:
        super().__init__(feature=_PrecomputedFeatures(num_features), reset_real_features=reset_real_features, **kwargs)
        self.num_features = num_features

    def update(self, features: Tensor, real: bool) -> None:  # type: ignore[override]
        """Add features (N, num_features) of real or generated samples."""
        super().update(features.to(self.device), real)

    def set_real_statistics(self, sum: Tensor, outer: Tensor, n: Tensor | int) -> None:  # noqa: A002
        """Replace the real-side states by cached totals (Σx, Σxxᵀ, N). Under DDP put the totals on rank 0 and
        zeros on the other ranks: the sum-reduction then yields the totals."""
        self.set_statistics("real", sum, outer, n)

    def set_statistics(self, side: str, sum: Tensor, outer: Tensor, n: Tensor | int) -> None:  # noqa: A002
        """Replace the ``"real"`` or ``"fake"`` states by totals (Σx, Σxxᵀ, N) (intra-FID scores classes so)."""
        d = self.num_features
        if sum.shape != (d,) or outer.shape != (d, d):
            raise ValueError(f"expected sum ({d},) and outer ({d}, {d}), got {tuple(sum.shape)}, {tuple(outer.shape)}")
        device = self.real_features_sum.device
        setattr(self, f"{side}_features_sum", sum.detach().to(device=device, dtype=torch.float64).clone())
        setattr(self, f"{side}_features_cov_sum", outer.detach().to(device=device, dtype=torch.float64).clone())
        setattr(self, f"{side}_features_num_samples", torch.as_tensor(n, dtype=torch.long, device=device).clone())
        if side == "fake":
            self.orig_dtype, self._update_count = torch.float64, max(self._update_count, 1)

    def real_statistics(self) -> tuple[Tensor, Tensor, Tensor]:
        """(Σx, Σxxᵀ, N) of the real features over all ranks (a collective call under DDP: call it on every rank)."""
        with self.sync_context(should_sync=not self._is_synced, should_unsync=True):
            return (
                self.real_features_sum.clone(),
                self.real_features_cov_sum.clone(),
                self.real_features_num_samples.clone(),
            )


class InceptionScoreSum(Metric):
    """IS = exp(E_x KL(p(y|x) ‖ p(y))) over all N samples as one split, from sum states.

    E_x KL = (1/N) Σ_x Σ_y p log p − Σ_y p̄_y log p̄_y with p̄ = (1/N) Σ_x p(y|x), so the states are Σ_x p(y|x)
    (K, float64), Σ_x Σ_y p log p (float64) and N, reduced by sum: order-independent and exact across ranks.
    torchmetrics' ``InceptionScore`` is not used because it shuffles samples into 10 splits and averages the
    per-split scores; the split contents depend on sample order, so 1-rank and 2-rank runs give different values.
    One split over all samples has no such dependence (and less small-sample bias than 10 splits of N/10).
    """

    higher_is_better = True
    is_differentiable = False
    full_state_update = False

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("prob_sum", torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("plogp_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor) -> None:
        """Add classifier logits (N, num_classes) of generated samples."""
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"expected logits (N, {self.num_classes}), got {tuple(logits.shape)}")
        log_p = logits.detach().to(self.device, torch.float64).log_softmax(dim=1)
        p = log_p.exp()
        self.prob_sum += p.sum(dim=0)
        self.plogp_sum += (p * log_p).sum()
        self.count += logits.shape[0]

    def compute(self) -> Tensor:
        """The Inception Score (float64 scalar)."""
        if self.count < 1:
            raise RuntimeError("InceptionScoreSum: no samples")
        marginal = self.prob_sum / self.count
        kl = self.plogp_sum / self.count - torch.special.xlogy(marginal, marginal).sum()
        return kl.exp()


class KernelDistance(IndexedFeatures):
    """KID: unbiased MMD² with the kernel k(x, y) = (xᵀy/d + 1)^degree, averaged over ``subsets`` random subsets
    of ``subset_size`` real and fake samples (Bińkowski et al. 2018); ``compute()`` returns (mean, std).

    States are the features and their global sample indices; ``compute()`` gathers them, sorts by index and
    draws the subsets with a seeded ``torch.Generator``, so the value does not depend on the rank layout.
    ``subset_size`` is clamped to min(n_real, n_fake). Arithmetic is float64.
    """

    higher_is_better = False
    is_differentiable = False
    full_state_update = False

    def __init__(
        self,
        subsets: int = 100,
        subset_size: int = 1000,
        degree: int = 3,
        seed: int = 0,
        reset_real_features: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(reset_real_features=reset_real_features, **kwargs)
        if subsets < 1 or subset_size < 2:
            raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets}, {subset_size}")
        self.subsets, self.subset_size, self.degree, self.seed = subsets, subset_size, degree, seed

    @staticmethod
    def mmd2_unbiased(x: Tensor, y: Tensor, degree: int = 3) -> Tensor:
        """Unbiased MMD² of equal-size samples x, y (m, d) under the polynomial kernel (xᵀy/d + 1)^degree."""
        m, d = x.shape

        def kernel(a: Tensor, b: Tensor) -> Tensor:
            return (a @ b.T / d + 1.0) ** degree

        k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
        within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        return within - 2.0 * k_xy.sum() / (m * m)

    def subset_indices(self, n_real: int, n_fake: int) -> list[tuple[Tensor, Tensor]]:
        """The (real rows, fake rows) of every subset, drawn without replacement from the seeded generator."""
        m = min(self.subset_size, n_real, n_fake)
        if m < 2:
            raise RuntimeError(f"KernelDistance needs >= 2 real and fake samples, got {n_real} and {n_fake}")
        generator = torch.Generator().manual_seed(self.seed)
        return [
            (torch.randperm(n_real, generator=generator)[:m], torch.randperm(n_fake, generator=generator)[:m])
            for _ in range(self.subsets)
        ]

    def compute(self) -> tuple[Tensor, Tensor]:
        """(mean, std) of the subset MMD² estimates (float64; std over subsets, ddof 0 like torch-fidelity)."""
        real, fake = self.side("real"), self.side("fake")
        if real.shape[1] != fake.shape[1]:
            raise ValueError(f"real and fake features differ in size: {real.shape[1]} vs {fake.shape[1]}")
        scores = torch.stack(
            [
                self.mmd2_unbiased(real[r.to(real.device)], fake[f.to(fake.device)], self.degree)
                for r, f in self.subset_indices(len(real), len(fake))
            ]
        )
        return scores.mean(), scores.std(unbiased=False)
