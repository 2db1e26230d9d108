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
can still reach a moderate FID); ``class_min``: the smallest class share (0.1 for balanced digits).

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
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lightning_gans.evaluation.protocol import (
    HISTOGRAM_METRICS,
    EvalProtocol,
    check_metrics,
    reference_keys,
    sample_size_warning,
)
from lightning_gans.evaluation.sampler import SampleFn, checked_fakes, full_precision
from lightning_gans.evaluation.scores import MetricSet
from lightning_gans.evaluation.sharding import (
    ProgressFactory,
    broadcast_flag,
    index_batches,
    progress_bar,
    shard_indices,
)
from lightning_gans.metrics import ReferenceCache
from lightning_gans.metrics.extractors import FeatureExtractor
from lightning_gans.outputs import to_uint8


@dataclass
class QualityResult:
    """``values`` (``fid``, ``is``, ``kid``, ``kid_std``, ``prdc_*``, … as floats, identical on every rank; with
    repeats the means and ``<key>_std``); ``reference``: the global real statistics on rank 0 (None elsewhere);
    ``real_source``: "memory", "cache" or "computed" (other ranks say "reused" for the first two); ``counts``: the
    real and fake images this rank put through the extractor; ``details``: ``intra_fid_per_class`` (the K
    per-class FIDs) and, with repeats, ``repeats`` and ``per_repeat`` (each value of every repeat)."""

    values: dict[str, float]
    reference: dict[str, Tensor] | None
    real_source: str
    wall_time_s: float
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def _features(extractor: FeatureExtractor, images: Tensor | None) -> tuple[Tensor, Tensor | None]:
    if images is None:  # empty batch
        logits = None if not extractor.num_classes else torch.zeros(0, extractor.num_classes)
        return torch.zeros(0, extractor.num_features, device=extractor.device), logits
    return extractor.features_and_logits(to_uint8(images))


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
    for metric in ("cond_acc", "intra_fid"):
        if metric in metrics and not conditional:
            raise ValueError(f"{metric} applies to conditional models only: drop it from metrics")
    return metrics


def _real_pass(
    scores: MetricSet,
    extractor: FeatureExtractor,
    real_images: Tensor,
    real_labels: Tensor | None,
    mine: Tensor,
    batch_size: int,
    bar: _Progress,
) -> list[Tensor]:
    """Feed this rank's real images to ``scores``; returns their features (the KID/PRDC reference rows)."""
    local_real: list[Tensor] = []
    with bar("real") as update:
        for idx in index_batches(mine, batch_size):
            features, _ = _features(extractor, real_images[idx] if len(idx) else None)
            labels = real_labels[idx] if real_labels is not None else None
            scores.add(features, None, idx, real=True, labels=labels)
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
    latents (and the forked RNG, ``seed + rank``, of samplers drawing from the global RNG); ``prdc_k``: the
    neighbour of PRDC's balls (Naeem et al. 2020: 5); ``repeats``: disjoint fake sets of N (repeat r draws the
    latents of global indices r·N … r·N + N − 1) against the same N reals, for error bars. Repeats change the
    spread reported, not the expected score, so they are recorded beside the protocol, not in it."""

    batch_size: int = 500
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    coverage_threshold: float = 0.05
    seed: int = 0
    prdc_k: int = 5
    repeats: int = 1

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.prdc_k < 1 or self.repeats < 1:
            raise ValueError(
                f"need batch_size, prdc_k and repeats >= 1, got {self.batch_size}, {self.prdc_k}, {self.repeats}"
            )


def _num_classes(
    metrics: list[str], real_labels: Tensor | None, warn: bool = False, n: int = 0, num_features: int = 0
) -> int | None:
    """The conditioning classes for intra-FID: labels 0 … max label of the whole split (the same on every rank);
    ``warn``: also warn when N is too small for FID on these features (:func:`sample_size_warning`)."""
    classes = None
    if "intra_fid" in metrics:
        if real_labels is None or len(real_labels) == 0:
            raise ValueError("intra_fid needs the real images' labels: the datamodule's real_images gave none")
        classes = int(real_labels.max()) + 1
    advice = sample_size_warning(metrics, n, num_features, classes or 1) if warn else None
    if advice:
        warnings.warn(advice, stacklevel=3)
    return classes


def _fake_pass(
    scores: MetricSet,
    sample_fn: SampleFn,
    extractor: FeatureExtractor,
    real_labels: Tensor | None,
    mine: Tensor,
    offset: int,
    batch_size: int,
    bar: _Progress,
) -> None:
    """Feed this rank's fakes (latents of global indices ``offset + mine``) to ``scores``; conditional models get
    the labels of the reals at the same indices."""
    with bar("fake") as update:
        for idx in index_batches(mine, batch_size):
            labels = real_labels[idx] if real_labels is not None else None
            fakes = checked_fakes(sample_fn, idx + offset, labels)
            scores.add(*_features(extractor, fakes), idx, real=False, labels=labels)
            update(idx)


def combine_repeats(runs: list[tuple[dict[str, float], dict[str, Any]]]) -> tuple[dict[str, float], dict[str, Any]]:
    """Mean and sample std (ddof 1) of every value over repeats (``<key>_std``); KID's std pools every repeat's
    subset estimates. One run is returned as it is."""
    if len(runs) == 1:
        return runs[0]
    values: dict[str, float] = {}
    table = {key: torch.tensor([v[key] for v, _ in runs], dtype=torch.float64) for key in runs[0][0]}
    for key, column in table.items():
        if key != "kid_std":
            values[key], values[f"{key}_std"] = float(column.mean()), float(column.std())
    if "kid_std" in table:  # pooled: E[x²] − E[x]² over all R × subsets estimates
        pooled = (table["kid_std"] ** 2 + table["kid"] ** 2).mean() - table["kid"].mean() ** 2
        values["kid_std"] = float(pooled.clamp_min(0).sqrt())
    details: dict[str, Any] = {"repeats": len(runs), "per_repeat": {k: c.tolist() for k, c in table.items()}}
    if "intra_fid_per_class" in runs[0][1]:
        per_class = torch.tensor([d["intra_fid_per_class"] for _, d in runs], dtype=torch.float64).mean(0)
        details["intra_fid_per_class"] = [round(float(v), 6) for v in per_class]
    return values, details


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
    """The ``metrics`` of ``protocol.n`` fakes from ``sample_fn`` against the first ``protocol.n`` real images
    (``settings.repeats`` disjoint fake sets: means and ``<key>_std``). Call on every rank of the default process
    group (or once, ``world_size=1``). ``reference`` (rank 0's in-memory statistics) or ``cache`` (keyed by
    ``protocol``) skip the real pass; on a miss rank 0 saves to ``cache``. The extractor must sit on ``device``.
    ``progress``: True for tqdm bars (one rank only) or a factory ``(total, description) -> bar``. Runs in a forked
    RNG seeded ``settings.seed + rank``: training's is untouched."""
    n = protocol.n
    metrics = _checked(metrics, extractor, n, real_images, real_labels, conditional)
    classes = _num_classes(metrics, real_labels, warn=rank == 0, n=n, num_features=extractor.num_features)
    device = torch.device(device) if device is not None else extractor.device
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), full_precision(device):
        torch.manual_seed(settings.seed + rank)
        start = time.perf_counter()
        needed = reference_keys(metrics)
        source, reference = _reference_source(needed, reference, cache, protocol, rank, world_size, device)
        scores = MetricSet(metrics, extractor, device, settings, classes)
        mine = shard_indices(n, rank, world_size)
        local_real: list[Tensor] = []
        bar = _Progress(n, world_size, extractor.name, progress)
        if source != "computed":
            scores.load_reference(reference)
        elif needed:
            local_real = _real_pass(scores, extractor, real_images, real_labels, mine, settings.batch_size, bar)
        runs = []
        for repeat in range(settings.repeats):
            scores.reset_fakes()
            labels = real_labels if conditional else None
            _fake_pass(scores, sample_fn, extractor, labels, mine, repeat * n, settings.batch_size, bar)
            runs.append(scores.compute())
        values, details = combine_repeats(runs)
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
            details=details,
        )


def reference_statistics(
    real_images: Tensor,
    real_labels: Tensor | None,
    extractor: FeatureExtractor,
    protocol: EvalProtocol,
    metrics: list[str] | tuple[str, ...] = ("fid",),
    settings: EvalSettings = EvalSettings(),
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str | None = None,
    progress: bool | ProgressFactory = False,
) -> dict[str, Tensor]:
    """The real statistics (:func:`reference_keys`) of the first ``protocol.n`` real images that ``metrics``
    need — what an evaluation's real pass computes, alone (``lightning-gans stats compute``). Collective under
    DDP; every rank gets the same dict."""
    metrics = [m for m in check_metrics(metrics, extractor) if reference_keys([m])]
    if not metrics:
        raise ValueError("none of the metrics needs reference statistics (IS and the classifier metrics use fakes)")
    _checked(metrics, extractor, protocol.n, real_images, real_labels, "intra_fid" in metrics)
    device = torch.device(device) if device is not None else extractor.device
    with full_precision(device):
        scores = MetricSet(metrics, extractor, device, settings, _num_classes(metrics, real_labels))
        mine = shard_indices(protocol.n, rank, world_size)
        bar = _Progress(protocol.n, world_size, extractor.name, progress)
        local_real = _real_pass(scores, extractor, real_images, real_labels, mine, settings.batch_size, bar)
        return scores.gathered_reference(local_real, mine, protocol.n, world_size)


def evaluation_metadata(
    protocol: EvalProtocol, result: QualityResult, metrics: list[str], settings: EvalSettings
) -> dict[str, Any]:
    """The ``metrics.jsonl`` metadata of an evaluation: protocol, where the real statistics came from, the seed and
    the settings that change a number (KID subsets, coverage threshold, PRDC's k, repeats), and the details (the
    per-class intra-FIDs, every repeat's values)."""
    meta: dict[str, Any] = {
        "protocol": protocol.as_dict(),
        "real_statistics": result.real_source,
        "seed": settings.seed,
    }
    if "kid" in metrics:
        meta["kid_settings"] = {"subsets": settings.kid_subsets, "subset_size": settings.kid_subset_size}
    if set(HISTOGRAM_METRICS) & set(metrics):
        meta["coverage_threshold"] = settings.coverage_threshold
    if "prdc" in metrics:
        meta["prdc_k"] = settings.prdc_k
    meta.update(result.details)
    return meta
