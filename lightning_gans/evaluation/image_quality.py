"""Exact-N FID / IS / KID evaluation, shared by :class:`~lightning_gans.callbacks.ImageQualityCallback` and
``lightning-gans eval``; plain functions usable without a Trainer.

Sharding (the "exact N" rule of the design, :mod:`~lightning_gans.evaluation.sharding`): rank ``r`` of ``W``
reads the real images at its interleaved global indices and generates exactly that many fakes.
Conditional models get the labels of the real images at the same global indices, so the fakes follow the real
label distribution. Every image goes through ``to_uint8`` and the extractor once; the metric states are sums
(FID, IS, conditional accuracy) or index-tagged samples (KID), so ``compute()`` on every rank gives the
single-process value.

Conditional accuracy (``cond_acc``, conditional models only): the fraction of the N fakes that the extractor's
classifier assigns to the label they were generated for (e.g. ``lenet-mnist`` on CGAN digits).

Class coverage (``coverage``) and ``class_kl`` (any model, extractors with a classifier head): how many of the K
classes receive at least ``coverage_threshold`` (5 %) of the N fakes' predicted labels, and the KL divergence of
that histogram from uniform — the mode-collapse signal FID alone hides (a generator drawing five digits well
can still reach a moderate FID).

Fakes: the latent of global sample ``i`` is a deterministic function of ``(seed, i)`` (see
:class:`ModuleSampler`), so a 1-process and a W-process evaluation of the same weights see the same fakes.
The whole evaluation runs inside ``torch.random.fork_rng``: it never perturbs the training RNG stream.

Reference statistics (Σx, Σxxᵀ, N of the real features for FID; the real features with their indices for KID)
come from memory, the on-disk :class:`~lightning_gans.metrics.ReferenceCache`, or a real pass. Rank 0 decides
and broadcasts which; with reused totals rank 0 holds them and the other ranks zeros, so the sum-reduction
yields the totals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lightning_gans.evaluation.protocol import EvalProtocol, check_metrics, reference_keys
from lightning_gans.evaluation.sampler import SampleFn, checked_fakes, full_precision
from lightning_gans.evaluation.sharding import (
    ProgressFactory,
    broadcast_flag,
    gather_rows,
    index_batches,
    progress_bar,
    shard_indices,
)
from lightning_gans.metrics import (
    ClassHistogram,
    ConditionalAccuracy,
    FrechetDistance,
    InceptionScoreSum,
    KernelDistance,
    ReferenceCache,
)
from lightning_gans.metrics.extractors import FeatureExtractor
from lightning_gans.outputs import to_uint8


@dataclass
class QualityResult:
    """``values`` (``fid``, ``is``, ``kid``, ``kid_std`` as floats, identical on every rank); ``reference``: the
    global real statistics on rank 0 (None elsewhere); ``real_source``: "memory", "cache" or "computed" (other
    ranks say "reused" for the first two); ``counts``: the real and fake images this rank put through the extractor."""

    values: dict[str, float]
    reference: dict[str, Tensor] | None
    real_source: str
    wall_time_s: float
    counts: dict[str, int] = field(default_factory=dict)


def _features(extractor: FeatureExtractor, images: Tensor | None) -> tuple[Tensor, Tensor | None]:
    if images is None:  # empty batch
        logits = None if not extractor.num_classes else torch.zeros(0, extractor.num_classes)
        return torch.zeros(0, extractor.num_features, device=extractor.device), logits
    return extractor.features_and_logits(to_uint8(images))


class _Scores:
    """The requested metric objects on ``device``, fed one batch of features (and logits) at a time."""

    def __init__(
        self, metrics: list[str], extractor: FeatureExtractor, device: torch.device, settings: EvalSettings
    ) -> None:
        self.num_features, self.device, self.metrics = extractor.num_features, device, metrics
        self.fid = FrechetDistance(extractor.num_features).to(device) if "fid" in metrics else None
        self.inception = InceptionScoreSum(extractor.num_classes).to(device) if "is" in metrics else None
        kid = {"subsets": settings.kid_subsets, "subset_size": settings.kid_subset_size}
        self.kid = KernelDistance(**kid).to(device) if "kid" in metrics else None
        self.cond_acc = ConditionalAccuracy().to(device) if "cond_acc" in metrics else None
        wants_histogram = {"coverage", "class_kl"} & set(metrics)
        threshold = settings.coverage_threshold
        self.classes = ClassHistogram(extractor.num_classes, threshold).to(device) if wants_histogram else None

    def add(
        self, features: Tensor, logits: Tensor | None, indices: Tensor, real: bool, labels: Tensor | None = None
    ) -> None:
        """One batch of features/logits; ``labels``: the labels fakes were generated for (conditional accuracy)."""
        if self.fid is not None:
            self.fid.update(features, real=real)
        if self.inception is not None and not real:
            self.inception.update(logits.to(self.device))
        if self.cond_acc is not None and not real:
            self.cond_acc.update(logits, labels if labels is not None else torch.zeros(0, dtype=torch.long))
        if self.classes is not None and not real:
            self.classes.update(logits)
        if self.kid is not None:
            self.kid.update(features, real, indices.to(features.device))

    def load_reference(self, reference: dict[str, Tensor] | None) -> None:
        """Reused totals where ``reference`` is given (rank 0), zeros / empty KID lists elsewhere: the
        sum / cat reductions then yield the totals."""
        d, device = self.num_features, self.device
        if self.fid is not None:
            if reference is not None:
                self.fid.set_real_statistics(reference["fid_sum"], reference["fid_outer"], reference["fid_n"])
            else:
                self.fid.set_real_statistics(torch.zeros(d), torch.zeros(d, d), 0)
        if self.kid is not None:
            if reference is not None:
                self.kid.set_real_features(reference["kid_features"].to(device), reference["kid_indices"].to(device))
            else:
                self.kid.set_real_features(torch.zeros(0, d, device=device), torch.zeros(0, dtype=torch.long))

    def compute(self) -> dict[str, float]:
        """Every value, identical on all ranks (collective under DDP)."""
        values: dict[str, float] = {}
        if self.fid is not None:
            values["fid"] = float(self.fid.compute())
        if self.inception is not None:
            values["is"] = float(self.inception.compute())
        if self.kid is not None:
            mean, std = self.kid.compute()
            values["kid"], values["kid_std"] = float(mean), float(std)
        if self.cond_acc is not None:
            values["cond_acc"] = float(self.cond_acc.compute())
        if self.classes is not None:
            values.update({k: float(v) for k, v in self.classes.compute().items() if k in self.metrics})
        return values

    def gathered_reference(self, local_real: list[Tensor], mine: Tensor, n: int, world_size: int) -> dict:
        """Global real statistics after a real pass (collective: call on every rank)."""
        out: dict[str, Tensor] = {}
        if self.fid is not None:
            total, outer, count = self.fid.real_statistics()
            out.update(fid_sum=total.cpu(), fid_outer=outer.cpu(), fid_n=count.cpu())
        if self.kid is not None:
            features = gather_rows(torch.cat(local_real), world_size).cpu()
            indices = gather_rows(mine.to(local_real[0].device), world_size).cpu()
            order = torch.argsort(indices)
            out.update(kid_features=features[order], kid_indices=indices[order])
            if not torch.equal(out["kid_indices"], torch.arange(n)):
                raise RuntimeError("the gathered real indices are not range(n): sharding bug")
        return out


def _reference_source(
    needed: set[str],
    reference: dict[str, Tensor] | None,
    cache: ReferenceCache | None,
    protocol: EvalProtocol | None,
    rank: int,
    world_size: int,
    device: torch.device,
) -> tuple[str, dict[str, Tensor] | None]:
    """("memory" | "cache" | "computed", rank 0's statistics to reuse): rank 0 decides, every rank learns it."""
    source = "computed"
    if rank == 0 and needed:
        if reference is not None and needed <= reference.keys():
            source = "memory"
        elif cache is not None and protocol is not None:
            loaded = cache.load(protocol)
            if loaded is not None and needed <= loaded.keys():
                reference, source = loaded, "cache"
    reuse = broadcast_flag(source != "computed", world_size, device) if needed else False
    if not reuse:
        return "computed", None
    return ("reused", None) if rank != 0 else (source, reference)


def _checked(
    metrics: list[str] | tuple[str, ...],
    extractor: FeatureExtractor,
    n: int,
    real_images: Tensor,
    real_labels: Tensor | None,
    conditional: bool,
) -> list[str]:
    metrics = check_metrics(metrics, extractor)
    if n > len(real_images):
        raise ValueError(f"n={n} but only {len(real_images)} real images")
    if conditional and real_labels is None:
        raise ValueError("a conditional model needs the real labels (the fakes follow their distribution)")
    if "cond_acc" in metrics and not conditional:
        raise ValueError("cond_acc (conditional accuracy) applies to conditional models only: drop it from metrics")
    return metrics


def _real_pass(
    scores: _Scores, extractor: FeatureExtractor, real_images: Tensor, mine: Tensor, batch_size: int, bar: _Progress
) -> list[Tensor]:
    """Feed this rank's real images to ``scores``; returns their features (the KID reference rows)."""
    local_real: list[Tensor] = []
    with bar("real") as update:
        for idx in index_batches(mine, batch_size):
            features, _ = _features(extractor, real_images[idx] if len(idx) else None)
            scores.add(features, None, idx, real=True)
            local_real.append(features)
            update(idx)
    return local_real


class _Progress:
    """One bar per pass (``bar("real")`` / ``bar("fake")``) counting this rank's images and the global total."""

    def __init__(self, n: int, world_size: int, name: str, progress: bool | ProgressFactory) -> None:
        self.n, self.world_size, self.name, self.progress = n, world_size, name, progress
        self.counts = {"real": 0, "fake": 0}

    @contextmanager
    def __call__(self, kind: str) -> Iterator[Callable[[Tensor], None]]:
        with progress_bar(self.n, f"{self.name} {kind}", self.progress) as bar:

            def update(indices: Tensor) -> None:
                self.counts[kind] += len(indices)
                bar.update(len(indices) * self.world_size)

            yield update


@dataclass(frozen=True)
class EvalSettings:
    """How an evaluation pass runs (not part of the protocol: they do not change the expected score).

    ``batch_size`` images per extractor call; ``kid_subsets`` × ``kid_subset_size`` for KID (Bińkowski et al.
    2018); ``coverage_threshold``: the share of the fakes a class needs to count as covered; ``seed``: the fakes'
    latents (and the forked RNG, ``seed + rank``, of samplers drawing from the global RNG)."""

    batch_size: int = 500
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    coverage_threshold: float = 0.05
    seed: int = 0


def evaluate_image_quality(
    sample_fn: SampleFn,
    real_images: Tensor,
    real_labels: Tensor | None,
    extractor: FeatureExtractor,
    protocol: EvalProtocol,
    metrics: list[str] | tuple[str, ...] = ("fid", "is"),
    settings: EvalSettings = EvalSettings(),
    *,
    conditional: bool = False,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str | None = None,
    reference: dict[str, Tensor] | None = None,
    cache: ReferenceCache | None = None,
    progress: bool | ProgressFactory = False,
) -> QualityResult:
    """The ``metrics`` of ``protocol.n`` fakes from ``sample_fn`` against the first ``protocol.n`` real images.

    Call on every rank of the default process group (or once, ``world_size=1``). ``reference`` (rank 0's
    in-memory statistics) or ``cache`` (keyed by ``protocol``) skip the real pass; on a miss rank 0 saves to
    ``cache``. The extractor must sit on ``device``. ``progress``: True for tqdm bars (one rank only) or a factory
    ``(total, description) -> bar``. Runs in a forked RNG seeded ``settings.seed + rank``: training's is untouched.
    """
    n = protocol.n
    metrics = _checked(metrics, extractor, n, real_images, real_labels, conditional)
    device = torch.device(device) if device is not None else extractor.device
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), full_precision(device):
        torch.manual_seed(settings.seed + rank)
        start = time.perf_counter()
        needed = reference_keys(metrics)
        source, reference = _reference_source(needed, reference, cache, protocol, rank, world_size, device)
        scores = _Scores(metrics, extractor, device, settings)
        mine = shard_indices(n, rank, world_size)
        local_real: list[Tensor] = []
        bar = _Progress(n, world_size, extractor.name, progress)
        if source != "computed":
            scores.load_reference(reference)
        elif needed:
            local_real = _real_pass(scores, extractor, real_images, mine, settings.batch_size, bar)
        with bar("fake") as update:
            for idx in index_batches(mine, settings.batch_size):
                labels = real_labels[idx] if conditional else None
                fakes = checked_fakes(sample_fn, idx, labels)
                scores.add(*_features(extractor, fakes), idx, real=False, labels=labels)
                update(idx)

        values = scores.compute()
        if source == "computed" and needed:
            reference = scores.gathered_reference(local_real, mine, n, world_size)
            if rank == 0 and cache is not None:
                cache.save(protocol, {**(cache.load(protocol) or {}), **reference})
        return QualityResult(
            values=values,
            reference=reference if rank == 0 else None,
            real_source=source,
            wall_time_s=time.perf_counter() - start,
            counts=bar.counts,
        )
