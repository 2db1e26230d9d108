"""Exact-N super-resolution scoring (PSNR/SSIM of the model and of bicubic) on held-out ``(lr, hr)`` pairs.

Rank ``r`` of ``W`` scores the pairs ``r, r + W, … < N``; the metric states are sums, so every rank computes
the single-process value.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from lightning_gans.evaluation.sampler import full_precision
from lightning_gans.evaluation.sharding import shard_indices
from lightning_gans.metrics.super_resolution import SuperResolutionScores, Upscaler, bicubic_upscale


def evaluate_super_resolution(
    upscale: Upscaler,
    pairs: Dataset,
    n: int,
    scale: int,
    space: str = "y",
    crop_border: int = 0,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
) -> dict[str, float]:
    """Scores of ``upscale`` and of bicubic on the first ``n`` ``(lr, hr)`` pairs (collective under DDP)."""
    if not 1 <= n <= len(pairs):
        raise ValueError(f"n must be in [1, {len(pairs)}] (the held-out pairs), got {n}")
    scores = SuperResolutionScores(space, crop_border).to(device)
    mine = shard_indices(n, rank, world_size).tolist()
    with torch.no_grad(), full_precision(device):
        for start in range(0, len(mine), batch_size):
            lr, hr = (
                torch.stack(part).to(device) for part in zip(*(pairs[i] for i in mine[start : start + batch_size]))
            )
            scores.update(upscale(lr), bicubic_upscale(lr, scale), hr)
    return scores.compute()
