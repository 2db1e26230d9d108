"""Callbacks: sample grids, checkpoints in the run dir, metrics.jsonl, DDP sync check, toy metrics."""

from lightning_gans.callbacks.budget import TrainingBudget
from lightning_gans.callbacks.checkpoint import RunCheckpoint
from lightning_gans.callbacks.ddp_check import ParameterSyncCheck
from lightning_gans.callbacks.metrics_log import MetricsJsonl
from lightning_gans.callbacks.preemption import Preemption
from lightning_gans.callbacks.samples import SampleGridCallback
from lightning_gans.callbacks.summary import FitSummary

__all__ = [
    "FitSummary",
    "MetricsJsonl",
    "ParameterSyncCheck",
    "Preemption",
    "RunCheckpoint",
    "SampleGridCallback",
    "TrainingBudget",
]
from lightning_gans.callbacks.toy import ToyMetricsCallback  # noqa: E402

__all__ += ["ToyMetricsCallback"]
from lightning_gans.callbacks.image_quality import ImageQualityCallback  # noqa: E402

__all__ += ["ImageQualityCallback"]
from lightning_gans.callbacks.progressive import ProgressiveGrowing  # noqa: E402

__all__ += ["ProgressiveGrowing"]
from lightning_gans.callbacks.super_resolution import SuperResolutionCallback  # noqa: E402

__all__ += ["SuperResolutionCallback"]
from lightning_gans.callbacks.translation import TranslationGridCallback, TranslationQualityCallback  # noqa: E402

__all__ += ["TranslationGridCallback", "TranslationQualityCallback"]
from lightning_gans.callbacks.voxels import VoxelQualityCallback, VoxelRenderCallback  # noqa: E402

__all__ += ["VoxelQualityCallback", "VoxelRenderCallback"]
from lightning_gans.callbacks.classifier_test import ClassifierTestReport  # noqa: E402

__all__ += ["ClassifierTestReport"]
