"""The evaluation engine: exact-N sharding, deterministic sampling passes and the evaluation protocol.

It sits between ``metrics/`` (features, statistics and metric objects on tensors) and ``models/``: it takes a
``sample_fn`` or any :class:`~lightning_gans.capabilities.Sampler`, never a model class or a datamodule.

* :mod:`.protocol` — :class:`EvalProtocol` (the cache key, the ``metrics.jsonl`` metadata, the metric names).
* :mod:`.sharding` — which global indices each DDP rank owns; the collectives of a pass.
* :mod:`.sampler` — :class:`ModuleSampler`: the latent of global sample ``i`` depends only on ``(seed, i)``.
* :mod:`.image_quality` — :func:`evaluate_image_quality` (FID / IS / KID / PRDC / intra-FID / class coverage /
  conditional accuracy, with repeats for error bars) and :func:`reference_statistics` (the real pass alone).
* :mod:`.scores` — :class:`MetricSet`, the metric objects of one evaluation.
* :mod:`.super_resolution`, :mod:`.voxels` — the PSNR/SSIM and voxel coverage/MMD passes.
"""

from lightning_gans.evaluation.image_quality import (
    EvalSettings,
    QualityResult,
    combine_repeats,
    evaluate_image_quality,
    evaluation_metadata,
    reference_statistics,
)
from lightning_gans.evaluation.protocol import (
    HIGHER_IS_BETTER,
    METRIC_OBJECTS,
    METRICS,
    EvalProtocol,
    check_metrics,
    count_label,
    make_protocol,
    metric_names,
    output_keys,
    reference_keys,
    sample_size_warning,
)
from lightning_gans.evaluation.reference import load_reference
from lightning_gans.evaluation.sampler import ModuleSampler, SampleFn
from lightning_gans.evaluation.sharding import broadcast_buffers, shard_indices, shard_size

__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_OBJECTS",
    "METRICS",
    "EvalProtocol",
    "EvalSettings",
    "ModuleSampler",
    "QualityResult",
    "SampleFn",
    "broadcast_buffers",
    "check_metrics",
    "combine_repeats",
    "count_label",
    "evaluate_image_quality",
    "evaluation_metadata",
    "load_reference",
    "make_protocol",
    "metric_names",
    "output_keys",
    "reference_keys",
    "reference_statistics",
    "sample_size_warning",
    "shard_indices",
    "shard_size",
]
