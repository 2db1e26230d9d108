"""Image-quality evaluation: feature extractors (registry), FID/IS/KID metric objects, reference-stat cache.

Public API (other modules import only these names):

* ``FeatureExtractor`` — base ``nn.Module``: ``forward(uint8 N×C×H×W) -> features (N, num_features)``,
  ``features_and_logits(images) -> (features, logits | None)``, attributes ``name``, ``num_features``,
  ``num_classes``, ``weights_id``, ``image_size``, ``resize``; ``protocol() -> dict``.
* ``register_extractor(name)`` (decorator for a factory ``(**kwargs) -> FeatureExtractor``),
  ``build_extractor(name, **kwargs)``, ``check_extractor(name, **kwargs)`` (cheap: weights present? raises
  ``ExtractorWeightsError`` with file, URL/command and where to put it), ``available_extractors()``.
* ``FrechetDistance`` / ``InceptionScoreSum`` / ``KernelDistance`` — ``torchmetrics.Metric`` subclasses whose
  states reduce exactly across DDP ranks (see ``scores.py``); ``ConditionalAccuracy`` — the classifier's
  agreement with a conditional generator's requested labels, ``ClassHistogram`` — class coverage and KL from
  uniform of the fakes' predicted labels (both in ``conditional.py``).
* ``PrecisionRecallDensityCoverage`` — PRDC (Kynkäänniemi et al. 2019, Naeem et al. 2020) on index-tagged
  features (``prdc.py``); ``ClassFrechetDistance`` — intra-class FID from per-class sums (``intra_fid.py``).
* ``ReferenceCache`` — real-feature statistics on disk keyed by the evaluation protocol.
* ``cache_dir()`` — ``$LIGHTNING_GANS_CACHE`` or ``~/.cache/lightning-gans``.
"""

from lightning_gans.errors import ExtractorWeightsError
from lightning_gans.metrics.conditional import ClassHistogram, ConditionalAccuracy
from lightning_gans.metrics.extractors import FeatureExtractor, cache_dir
from lightning_gans.metrics.intra_fid import ClassFrechetDistance
from lightning_gans.metrics.prdc import PRDC_KEYS, PrecisionRecallDensityCoverage
from lightning_gans.metrics.reference import ReferenceCache
from lightning_gans.metrics.registry import available_extractors, build_extractor, check_extractor, register_extractor
from lightning_gans.metrics.scores import FrechetDistance, InceptionScoreSum, KernelDistance

__all__ = [
    "PRDC_KEYS",
    "ClassFrechetDistance",
    "ClassHistogram",
    "ConditionalAccuracy",
    "ExtractorWeightsError",
    "FeatureExtractor",
    "FrechetDistance",
    "InceptionScoreSum",
    "KernelDistance",
    "PrecisionRecallDensityCoverage",
    "ReferenceCache",
    "available_extractors",
    "build_extractor",
    "cache_dir",
    "check_extractor",
    "register_extractor",
]
