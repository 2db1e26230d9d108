"""Exact-N voxel scoring: coverage and MMD (IoU) of N generated volumes against N reference volumes.

Every rank needs all references; rank ``r`` of ``W`` generates the fakes ``r, r + W, … < N``.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from lightning_gans.evaluation.sampler import SampleFn, checked_fakes, full_precision
from lightning_gans.evaluation.sharding import ProgressFactory, index_batches, progress_bar, shard_indices
from lightning_gans.metrics.voxel import VoxelCoverage


def evaluate_voxel_quality(
    sample_fn: SampleFn,
    references: Tensor,
    n: int,
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    batch_size: int = 50,
    progress: bool | ProgressFactory = False,
    seed: int = 0,
) -> tuple[dict[str, float], float]:
    """(``{"coverage", "mmd"}``, wall seconds) of ``n`` fakes from ``sample_fn`` against ``references`` (n volumes).

    Call on every rank of the default process group (or once, ``world_size=1``); every rank needs all references.
    """
    if n < 1 or len(references) != n:
        raise ValueError(f"need n >= 1 reference volumes and n fakes; got n={n} and {len(references)} references")
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), full_precision(device):
        torch.manual_seed(seed + rank)
        start = time.perf_counter()
        metric = VoxelCoverage(references).to(device)
        with progress_bar(n, "voxel IoU fake", progress) as bar:
            for idx in index_batches(shard_indices(n, rank, world_size), batch_size):
                fakes = checked_fakes(sample_fn, idx, None)
                if fakes is not None:
                    metric.update(fakes)
                bar.update(len(idx) * world_size)
        values = {k: float(v) for k, v in metric.compute().items()}
    return values, time.perf_counter() - start
