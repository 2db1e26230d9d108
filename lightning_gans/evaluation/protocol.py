"""The evaluation protocol: everything a score depends on besides the generator, as one frozen object.

An :class:`EvalProtocol` (dataset, split, N, extractor name, weights id, image size, resize) is at once

* the reference-statistics cache key (:class:`~lightning_gans.metrics.ReferenceCache` hashes ``dict(protocol)``),
* the metadata of every ``metrics.jsonl`` line (``protocol.as_dict()``), which ``lightning-gans compare`` groups by,
* the source of the logged metric names (``fid/<extractor>/<N>``: :meth:`EvalProtocol.metric_names`).

Two scores are comparable only when their protocols are equal (the idea of stylegan2-ada's ``MetricOptions``
and metric names such as ``fid50k_full``: Karras et al. 2020).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from lightning_gans.metrics import (
    PRDC_KEYS,
    ClassFrechetDistance,
    ClassHistogram,
    ConditionalAccuracy,
    FrechetDistance,
    InceptionScoreSum,
    KernelDistance,
    PrecisionRecallDensityCoverage,
)
from lightning_gans.metrics.extractors import FeatureExtractor
from lightning_gans.outputs import higher_is_better

METRICS = ("fid", "is", "kid", "prdc", "intra_fid", "cond_acc", "coverage", "class_kl", "class_min")
NEEDS_LOGITS = ("is", "cond_acc", "coverage", "class_kl", "class_min")
CONDITIONAL_ONLY = ("cond_acc", "intra_fid")
# The values a metric yields (default: its own name). PRDC's coverage is "prdc_coverage": "coverage" is class coverage.
OUTPUTS: dict[str, tuple[str, ...]] = {"kid": ("kid", "kid_std"), "prdc": tuple(f"prdc_{k}" for k in PRDC_KEYS)}
# The metric object behind each score key (its higher_is_better sets W&B summaries and compare's ranking).
METRIC_OBJECTS: dict[str, type] = {
    "fid": FrechetDistance,
    "kid": KernelDistance,
    "is": InceptionScoreSum,
    "intra_fid": ClassFrechetDistance,
    **{f"prdc_{k}": PrecisionRecallDensityCoverage for k in PRDC_KEYS},
    "cond_acc": ConditionalAccuracy,
    "coverage": ClassHistogram,
    "class_kl": ClassHistogram,
    "class_min": ClassHistogram,
}
# The metrics read off one class histogram of the fakes (one ClassHistogram serves them all; its threshold is a
# protocol setting).
HISTOGRAM_METRICS = tuple(key for key, cls in METRIC_OBJECTS.items() if cls is ClassHistogram)
# FID's bias falls like 1/N (Chong & Forsyth 2020) and the covariance of N <= d samples is singular: below this
# many samples per feature dimension a warning says what N to use.
SAMPLES_PER_DIMENSION = 5
HIGHER_IS_BETTER: dict[str, bool | None] = {key: higher_is_better(cls, key) for key, cls in METRIC_OBJECTS.items()}


def count_label(n: int) -> str:
    """N as it appears in metric names: ``10000 → "10k"``, ``50000 → "50k"``, ``1001 → "1001"``."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def output_keys(metrics: list[str] | tuple[str, ...], repeats: int = 1) -> list[str]:
    """The value keys the metrics yield (``kid`` → kid, kid_std; ``prdc`` → prdc_precision, …); with
    ``repeats > 1`` each value also gets ``<key>_std``, the spread over the repeats (KID's std is pooled)."""
    keys = [key for m in metrics for key in OUTPUTS.get(m, (m,))]
    if repeats > 1:
        keys += [f"{key}_std" for key in keys if key != "kid_std" and f"{key}_std" not in keys]
    return keys


def metric_names(metrics: list[str] | tuple[str, ...], extractor: str, n: int, repeats: int = 1) -> dict[str, str]:
    """Logged names carrying the protocol: ``fid/<extractor>/<N>`` etc. (KID adds ``kid_std/…``, PRDC
    ``prdc_precision/…`` … ``prdc_coverage/…``, repeats ``fid_std/…``)."""
    suffix = f"{extractor}/{count_label(n)}"
    return {key: f"{key}/{suffix}" for key in output_keys(metrics, repeats)}


def sample_size_warning(
    metrics: list[str] | tuple[str, ...], n: int, num_features: int, classes: int = 1
) -> str | None:
    """A warning when N (N/K per class for intra-FID) is too small for FID on ``num_features``-d features."""
    need = SAMPLES_PER_DIMENSION * num_features
    per_class = n // max(classes, 1)
    checks = [("fid", n, "N"), ("intra_fid", per_class, f"N/K (K={classes})")]
    for metric, count, what in checks:
        if metric in metrics and count < need:
            return (
                f"{metric} with {what}={count} samples of {num_features}-d features is strongly biased upward (FID's "
                f"bias falls like 1/N, Chong & Forsyth 2020; the covariance of N <= d samples is singular): use "
                f"{what} >= {need} (50k for Inception) and compare runs only at equal N"
            )
    return None


@dataclass(frozen=True)
class EvalProtocol(Mapping):
    """What a score depends on besides the generator (see module docstring). A read-only mapping, so
    ``dict(protocol)`` is the JSON metadata and cache key (the same keys as the plain dicts written before)."""

    dataset: str
    split: str
    n: int
    extractor: str
    weights: str
    image_size: int
    resize: str
    extra: tuple[tuple[str, Any], ...] = ()  # further keys a caller adds (e.g. a translation FID's ``resize_to``)

    @classmethod
    def of(cls, dataset: str, split: str, n: int, extractor: FeatureExtractor) -> EvalProtocol:
        """The protocol of scoring ``n`` samples of ``dataset``'s ``split`` with ``extractor``."""
        return cls(dataset, split, n, extractor.name, extractor.weights_id, extractor.image_size, extractor.resize)

    def with_extra(self, **items: Any) -> EvalProtocol:
        """This protocol with further keys (they join the cache key and the metadata)."""
        return replace(self, extra=(*self.extra, *((k, v) for k, v in items.items() if k not in dict(self.extra))))

    def as_dict(self) -> dict[str, Any]:
        """The plain JSON-able dict: the metadata of ``metrics.jsonl`` lines."""
        out = {name: getattr(self, name) for name in self._keys()}
        out.update(self.extra)
        return out

    def metric_names(self, metrics: list[str] | tuple[str, ...]) -> dict[str, str]:
        return metric_names(metrics, self.extractor, self.n)

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name != "extra")


def make_protocol(dataset: str, split: str, n: int, extractor: FeatureExtractor) -> EvalProtocol:
    """Shorthand for :meth:`EvalProtocol.of`."""
    return EvalProtocol.of(dataset, split, n, extractor)


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
    """The reference-statistics entries the metrics need (IS and the classifier metrics need none): FID
    ``fid_sum/fid_outer/fid_n``; KID and PRDC the real ``features`` and their ``indices``; intra-FID
    ``class_sum/class_outer/class_n``."""
    keys: set[str] = set()
    if "fid" in metrics:
        keys |= {"fid_sum", "fid_outer", "fid_n"}
    if {"kid", "prdc"} & set(metrics):
        keys |= {"features", "indices"}
    if "intra_fid" in metrics:
        keys |= {"class_sum", "class_outer", "class_n"}
    return keys
