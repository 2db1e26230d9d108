"""Exact-N FID / IS / KID evaluation, shared by :class:`~lightning_gans.callbacks.ImageQualityCallback` and
``lightning-gans eval``; plain functions usable without a Trainer.

Sharding (the "exact N" rule of the design): rank ``r`` of ``W`` owns the global sample indices
``r, r + W, r + 2W, … < N`` — interleaved, duplicate-free and without a ``DistributedSampler``'s padding — and
both reads the real images at those indices and generates exactly that many fakes (``N // W + (r < N % W)``).
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
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

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

METRICS = ("fid", "is", "kid", "cond_acc", "coverage", "class_kl")
NEEDS_LOGITS = ("is", "cond_acc", "coverage", "class_kl")
SampleFn = Callable[..., Tensor]  # sample_fn(count, labels=None, indices=global indices) -> [-1, 1] images
ProgressFactory = Callable[[int, str], Any]  # (total, description) -> context manager with update(k)
NOISE_BLOCK = 1024  # latents are drawn in blocks of this many consecutive global indices, one seed per block


# ---------------------------------------------------------------------------------------------- names, protocol
def shard_indices(n: int, rank: int, world_size: int) -> Tensor:
    """The global sample indices rank ``rank`` of ``world_size`` evaluates: ``rank, rank + W, … < n``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return torch.arange(rank, n, world_size, dtype=torch.long)


def shard_size(n: int, rank: int, world_size: int) -> int:
    """How many samples rank ``rank`` evaluates: ``n // W + (rank < n % W)``."""
    return n // world_size + int(rank < n % world_size)


def count_label(n: int) -> str:
    """N as it appears in metric names: ``10000 → "10k"``, ``50000 → "50k"``, ``1001 → "1001"``."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def metric_names(metrics: list[str] | tuple[str, ...], extractor: str, n: int) -> dict[str, str]:
    """Logged names carrying the protocol: ``fid/<extractor>/<N>`` etc. (KID adds ``kid_std/…``)."""
    suffix = f"{extractor}/{count_label(n)}"
    names = {m: f"{m}/{suffix}" for m in metrics}
    if "kid" in metrics:
        names["kid_std"] = f"kid_std/{suffix}"
    return names


def make_protocol(dataset: str, split: str, n: int, extractor: FeatureExtractor) -> dict[str, Any]:
    """What a score depends on besides the generator: the reference-cache key and the metadata of every line."""
    return {
        "dataset": dataset,
        "split": split,
        "n": n,
        "extractor": extractor.name,
        "weights": extractor.weights_id,
        "image_size": extractor.image_size,
        "resize": extractor.resize,
    }


def check_metrics(metrics: list[str] | tuple[str, ...], extractor: FeatureExtractor | None = None) -> list[str]:
    """Validate metric names (and, given the extractor, that IS has logits); returns them lower-cased."""
    chosen = [m.strip().lower() for m in metrics if m.strip()]
    unknown = sorted(set(chosen) - set(METRICS))
    if unknown or not chosen:
        raise ValueError(f"metrics must be a non-empty subset of {list(METRICS)}, got {list(metrics)}")
    for metric in NEEDS_LOGITS:
        if extractor is not None and metric in chosen and not extractor.num_classes:
            raise ValueError(
                f"{metric} needs class logits, but extractor {extractor.name!r} has none: drop it from metrics"
            )
    return list(dict.fromkeys(chosen))


def reference_keys(metrics: list[str] | tuple[str, ...]) -> set[str]:
    """The reference-statistics entries the metrics need (IS needs none)."""
    keys: set[str] = set()
    if "fid" in metrics:
        keys |= {"fid_sum", "fid_outer", "fid_n"}
    if "kid" in metrics:
        keys |= {"kid_features", "kid_indices"}
    return keys


# ---------------------------------------------------------------------------------------------- sampling
class ModuleSampler:
    """``sample_fn`` for a GAN module: the latent of global sample ``i`` depends only on ``(seed, i)``.

    Modules with the base ``GANModule.sample_noise`` (z ~ N(0, noise_std²)) get latents drawn on CPU from a
    ``torch.Generator`` seeded per block of :data:`NOISE_BLOCK` indices and passed as ``noise=``; modules with
    their own ``sample_noise`` sample from the (forked, per-rank seeded) global RNG instead. Conditional models
    receive ``labels=``; a ``(images, labels)`` return value is reduced to the images.
    """

    def __init__(self, module: Any, seed: int = 0) -> None:
        from lightning_gans.models.base import GANModule

        self.module = module
        self.seed = seed
        self.indexed_noise = getattr(type(module), "sample_noise", None) is GANModule.sample_noise
        self._blocks: dict[int, Tensor] = {}

    def _block(self, k: int) -> Tensor:
        """The latents of global indices ``[k·B, (k+1)·B)``; the last block drawn is kept (indices ascend)."""
        if k not in self._blocks:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + k)
            hp = self.module.hparams
            self._blocks = {k: torch.randn(NOISE_BLOCK, hp.latent_dim, generator=generator) * hp.noise_std}
        return self._blocks[k]

    def noise(self, indices: Tensor) -> Tensor:
        """Latents (CPU) of the given global indices."""
        indices = indices.cpu().long()
        blocks, rows = indices // NOISE_BLOCK, indices % NOISE_BLOCK
        out = torch.empty(len(indices), self.module.hparams.latent_dim)
        for k in blocks.unique().tolist():
            chosen = blocks == k
            out[chosen] = self._block(k)[rows[chosen]]
        return out

    def __call__(self, count: int, labels: Tensor | None = None, indices: Tensor | None = None) -> Tensor:
        condition = {} if labels is None else {"labels": labels.to(self.module.device)}
        if self.indexed_noise and indices is not None:
            out = self.module.sample(count, noise=self.noise(indices).to(self.module.device), **condition)
        else:
            out = self.module.sample(count, **condition)
        return out[0] if isinstance(out, (tuple, list)) else out


# ---------------------------------------------------------------------------------------------- distributed
def _distributed(world_size: int) -> bool:
    return world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def broadcast_buffers(module: torch.nn.Module, world_size: int) -> None:
    """Give every DDP rank rank 0's buffers (BatchNorm running statistics) before an evaluation.

    DDP broadcasts buffers at the *start* of each forward; the last training forward then updates every rank's
    running statistics with its own data, so after training the ranks' generators differ in their BN buffers and,
    in eval mode, in their samples. Without this, a 2-process evaluation scores a mix of generators that no
    checkpoint holds (the checkpoint is rank 0's state), and 1 and 2 processes disagree. Collective under DDP.
    """
    if not _distributed(world_size):
        return
    for buffer in module.buffers():
        torch.distributed.broadcast(buffer.data, src=0)


def _broadcast_flag(flag: bool, world_size: int, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if not _distributed(world_size):
        return flag
    value = torch.tensor([int(flag)], device=device)
    torch.distributed.broadcast(value, src=0)
    return bool(value.item())


def _gather_rows(local: Tensor, world_size: int) -> Tensor:
    """Concatenate every rank's rows (uneven sizes allowed); collective under DDP."""
    if not _distributed(world_size):
        return local
    from torchmetrics.utilities.distributed import gather_all_tensors

    return torch.cat(gather_all_tensors(local.contiguous()))


# ---------------------------------------------------------------------------------------------- the evaluation
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


def _batches(indices: Tensor, batch_size: int) -> Iterator[Tensor]:
    if len(indices) == 0:
        yield indices  # one empty batch: every rank must add (0, d) states so the gathers line up
    for start in range(0, len(indices), batch_size):
        yield indices[start : start + batch_size]


def _features(extractor: FeatureExtractor, images: Tensor | None) -> tuple[Tensor, Tensor | None]:
    if images is None:  # empty batch
        logits = None if not extractor.num_classes else torch.zeros(0, extractor.num_classes)
        return torch.zeros(0, extractor.num_features, device=extractor.device), logits
    return extractor.features_and_logits(to_uint8(images))


def _fakes(sample_fn: SampleFn, indices: Tensor, labels: Tensor | None) -> Tensor | None:
    """``len(indices)`` fakes (None for an empty batch), checked for their count."""
    if len(indices) == 0:
        return None
    images = sample_fn(len(indices), labels=labels, indices=indices)
    if images.shape[0] != len(indices):
        raise RuntimeError(f"sample_fn returned {images.shape[0]} images, {len(indices)} were asked for")
    return images


def _bar(total: int, desc: str, progress: bool | ProgressFactory) -> Any:
    """A context-managed bar with ``update(k)``: ``progress(total, desc)`` if callable, else tqdm (off if False)."""
    if callable(progress):
        return progress(total, desc)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True)


class _Scores:
    """The requested metric objects on ``device``, fed one batch of features (and logits) at a time."""

    def __init__(
        self,
        metrics: list[str],
        extractor: FeatureExtractor,
        device: torch.device,
        coverage_threshold: float = 0.05,
        **kid: int,
    ) -> None:
        self.num_features, self.device, self.metrics = extractor.num_features, device, metrics
        self.fid = FrechetDistance(extractor.num_features).to(device) if "fid" in metrics else None
        self.inception = InceptionScoreSum(extractor.num_classes).to(device) if "is" in metrics else None
        self.kid = KernelDistance(**kid).to(device) if "kid" in metrics else None
        self.cond_acc = ConditionalAccuracy().to(device) if "cond_acc" in metrics else None
        wants_histogram = {"coverage", "class_kl"} & set(metrics)
        self.classes = ClassHistogram(extractor.num_classes, coverage_threshold).to(device) if wants_histogram else None

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
            features = _gather_rows(torch.cat(local_real), world_size).cpu()
            indices = _gather_rows(mine.to(local_real[0].device), world_size).cpu()
            order = torch.argsort(indices)
            out.update(kid_features=features[order], kid_indices=indices[order])
            if not torch.equal(out["kid_indices"], torch.arange(n)):
                raise RuntimeError("the gathered real indices are not range(n): sharding bug")
        return out


def _reference_source(
    needed: set[str],
    reference: dict[str, Tensor] | None,
    cache: ReferenceCache | None,
    protocol: dict[str, Any] | None,
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
    reuse = _broadcast_flag(source != "computed", world_size, device) if needed else False
    if not reuse:
        return "computed", None
    return ("reused", None) if rank != 0 else (source, reference)


def evaluate_image_quality(
    sample_fn: SampleFn,
    real_images: Tensor,
    real_labels: Tensor | None,
    n: int,
    extractor: FeatureExtractor,
    metrics: list[str] | tuple[str, ...] = ("fid", "is"),
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str | None = None,
    batch_size: int = 500,
    conditional: bool = False,
    reference: dict[str, Tensor] | None = None,
    cache: ReferenceCache | None = None,
    protocol: dict[str, Any] | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    coverage_threshold: float = 0.05,
    progress: bool | ProgressFactory = False,
    seed: int = 0,
) -> QualityResult:
    """FID / IS / KID of ``n`` fakes from ``sample_fn`` against the first ``n`` of ``real_images`` ([-1, 1]).

    Call on every rank of the default process group (or once, ``world_size=1``). ``reference`` (rank 0's
    in-memory statistics) or ``cache`` + ``protocol`` let the real pass be skipped; on a miss rank 0 saves to
    ``cache``. The extractor must already sit on ``device``. ``progress``: True for tqdm bars (pass it on one
    rank only) or a factory ``(total, description) -> bar`` (e.g. a task in Lightning's rich display).
    ``coverage_threshold``: the share of the fakes a class needs to count as covered (``coverage``).
    Runs in a forked RNG seeded with ``seed + rank`` (only samplers drawing from the global RNG use it), so
    training's RNG stream is untouched.
    """
    metrics = check_metrics(metrics, extractor)
    if n > len(real_images):
        raise ValueError(f"n={n} but only {len(real_images)} real images")
    if conditional and real_labels is None:
        raise ValueError("a conditional model needs the real labels (the fakes follow their distribution)")
    if "cond_acc" in metrics and not conditional:
        raise ValueError("cond_acc (conditional accuracy) applies to conditional models only: drop it from metrics")
    device = torch.device(device) if device is not None else extractor.device
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed + rank)
        start = time.perf_counter()
        needed = reference_keys(metrics)
        source, reference = _reference_source(needed, reference, cache, protocol, rank, world_size, device)
        scores = _Scores(
            metrics, extractor, device, coverage_threshold, subsets=kid_subsets, subset_size=kid_subset_size
        )
        mine = shard_indices(n, rank, world_size)
        counts = {"real": 0, "fake": 0}
        local_real: list[Tensor] = []
        if source != "computed":
            scores.load_reference(reference)
        elif needed:
            with _bar(n, f"{extractor.name} real", progress) as bar:
                for idx in _batches(mine, batch_size):
                    features, _ = _features(extractor, real_images[idx] if len(idx) else None)
                    scores.add(features, None, idx, real=True)
                    local_real.append(features)
                    counts["real"] += len(idx)
                    bar.update(len(idx) * world_size)
        with _bar(n, f"{extractor.name} fake", progress) as bar:
            for idx in _batches(mine, batch_size):
                labels = real_labels[idx] if conditional else None
                scores.add(*_features(extractor, _fakes(sample_fn, idx, labels)), idx, real=False, labels=labels)
                counts["fake"] += len(idx)
                bar.update(len(idx) * world_size)

        values = scores.compute()
        if source == "computed" and needed:
            reference = scores.gathered_reference(local_real, mine, n, world_size)
            if rank == 0 and cache is not None and protocol is not None:
                cache.save(protocol, {**(cache.load(protocol) or {}), **reference})
        return QualityResult(
            values=values,
            reference=reference if rank == 0 else None,
            real_source=source,
            wall_time_s=time.perf_counter() - start,
            counts=counts,
        )
