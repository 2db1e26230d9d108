"""The metric objects of one evaluation (:class:`MetricSet`): fed features batch by batch, computed on every rank.

Reference statistics (real side) keys, as :func:`~lightning_gans.evaluation.protocol.reference_keys` lists them:
``fid_sum``/``fid_outer``/``fid_n`` (FID), ``features``/``indices`` (the N real features with their global
indices: KID and PRDC), ``class_sum``/``class_outer``/``class_n`` (per-class sums: intra-FID).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_gans.evaluation.protocol import HISTOGRAM_METRICS
from lightning_gans.evaluation.sharding import gather_rows
from lightning_gans.metrics import (
    ClassFrechetDistance,
    ClassHistogram,
    ConditionalAccuracy,
    FrechetDistance,
    InceptionScoreSum,
    KernelDistance,
    PrecisionRecallDensityCoverage,
)
from lightning_gans.metrics.extractors import FeatureExtractor


class MetricSet:
    """The requested metric objects on ``device`` (real statistics survive :meth:`reset_fakes`: repeats reuse
    them). ``num_classes``: the conditioning classes (intra-FID only)."""

    def __init__(
        self,
        metrics: list[str],
        extractor: FeatureExtractor,
        device: torch.device,
        settings: Any,
        num_classes: int | None = None,
    ) -> None:
        d = extractor.num_features
        self.num_features, self.device, self.metrics = d, device, metrics
        keep = {"reset_real_features": False}
        self.fid = FrechetDistance(d, **keep).to(device) if "fid" in metrics else None
        self.inception = InceptionScoreSum(extractor.num_classes).to(device) if "is" in metrics else None
        kid = {"subsets": settings.kid_subsets, "subset_size": settings.kid_subset_size, **keep}
        self.kid = KernelDistance(**kid).to(device) if "kid" in metrics else None
        self.prdc = PrecisionRecallDensityCoverage(settings.prdc_k, **keep).to(device) if "prdc" in metrics else None
        self.intra = ClassFrechetDistance(d, num_classes or 1, **keep).to(device) if "intra_fid" in metrics else None
        self.cond_acc = ConditionalAccuracy().to(device) if "cond_acc" in metrics else None
        wants_histogram = set(HISTOGRAM_METRICS) & set(metrics)
        threshold = settings.coverage_threshold
        self.classes = ClassHistogram(extractor.num_classes, threshold).to(device) if wants_histogram else None

    def _indexed(self) -> list[KernelDistance | PrecisionRecallDensityCoverage]:
        return [m for m in (self.kid, self.prdc) if m is not None]

    def add(
        self, features: Tensor, logits: Tensor | None, indices: Tensor, real: bool, labels: Tensor | None = None
    ) -> None:
        """One batch of features/logits; ``labels``: the reals' labels, or the labels fakes were generated for."""
        if self.fid is not None:
            self.fid.update(features, real=real)
        if self.intra is not None:
            self.intra.update(features, labels if labels is not None else torch.zeros(0, dtype=torch.long), real)
        for metric in self._indexed():
            metric.update(features, real, indices.to(features.device))
        if real:
            return
        if self.inception is not None:
            self.inception.update(logits.to(self.device))
        if self.cond_acc is not None:
            self.cond_acc.update(logits, labels if labels is not None else torch.zeros(0, dtype=torch.long))
        if self.classes is not None:
            self.classes.update(logits)

    def load_reference(self, reference: dict[str, Tensor] | None) -> None:
        """Reused totals where ``reference`` is given (rank 0), zeros / empty lists elsewhere: the sum / cat
        reductions then yield the totals."""
        d, device = self.num_features, self.device
        if self.fid is not None:
            if reference is not None:
                self.fid.set_real_statistics(reference["fid_sum"], reference["fid_outer"], reference["fid_n"])
            else:
                self.fid.set_real_statistics(torch.zeros(d), torch.zeros(d, d), 0)
        for metric in self._indexed():
            if reference is not None:
                metric.set_real_features(reference["features"].to(device), reference["indices"].to(device))
            else:
                metric.set_real_features(torch.zeros(0, d, device=device), torch.zeros(0, dtype=torch.long))
        if self.intra is not None:
            k = self.intra.num_classes
            if reference is not None:
                self._check_classes(reference["class_n"])
                self.intra.set_real_statistics(reference["class_sum"], reference["class_outer"], reference["class_n"])
            else:
                self.intra.set_real_statistics(torch.zeros(k, d), torch.zeros(k, d, d), torch.zeros(k))

    def _check_classes(self, counts: Tensor) -> None:
        if counts.shape != (self.intra.num_classes,):
            raise ValueError(
                f"the reference statistics hold {len(counts)} classes, this model has {self.intra.num_classes}"
            )

    def compute(self) -> tuple[dict[str, float], dict[str, Any]]:
        """(every value, details such as the per-class intra-FIDs), identical on all ranks (collective)."""
        values: dict[str, float] = {}
        details: dict[str, Any] = {}
        if self.fid is not None:
            values["fid"] = float(self.fid.compute())
        if self.inception is not None:
            values["is"] = float(self.inception.compute())
        if self.kid is not None:
            mean, std = self.kid.compute()
            values["kid"], values["kid_std"] = float(mean), float(std)
        if self.prdc is not None:
            values.update({f"prdc_{k}": float(v) for k, v in self.prdc.compute().items()})
        if self.intra is not None:
            mean, per_class = self.intra.compute()
            values["intra_fid"] = float(mean)
            details["intra_fid_per_class"] = [round(float(v), 6) for v in per_class]
        if self.cond_acc is not None:
            values["cond_acc"] = float(self.cond_acc.compute())
        if self.classes is not None:
            values.update({k: float(v) for k, v in self.classes.compute().items() if k in self.metrics})
        return values, details

    def reset_fakes(self) -> None:
        """Drop the fake side of every metric (the real statistics stay): the next repeat starts clean."""
        for metric in (self.fid, self.inception, self.kid, self.prdc, self.intra, self.cond_acc, self.classes):
            if metric is not None:
                metric.reset()

    def gathered_reference(self, local_real: list[Tensor], mine: Tensor, n: int, world_size: int) -> dict:
        """Global real statistics after a real pass (collective: call on every rank)."""
        out: dict[str, Tensor] = {}
        if self.fid is not None:
            total, outer, count = self.fid.real_statistics()
            out.update(fid_sum=total.cpu(), fid_outer=outer.cpu(), fid_n=count.cpu())
        if self._indexed():
            features = gather_rows(torch.cat(local_real), world_size).cpu()
            indices = gather_rows(mine.to(local_real[0].device), world_size).cpu()
            order = torch.argsort(indices)
            out.update(features=features[order], indices=indices[order])
            if not torch.equal(out["indices"], torch.arange(n)):
                raise RuntimeError("the gathered real indices are not range(n): sharding bug")
        if self.intra is not None:
            sums, outers, counts = self.intra.real_statistics()
            out.update(class_sum=sums.cpu(), class_outer=outers.cpu(), class_n=counts.cpu())
        return out
