"""Exact-N sharding and the collectives of an evaluation pass (the "exact N" rule of the design).

Rank ``r`` of ``W`` owns the global sample indices ``r, r + W, r + 2W, … < N`` — interleaved, duplicate-free and
without a ``DistributedSampler``'s padding — and both reads the real images at those indices and generates
exactly that many fakes (``N // W + (r < N % W)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from lightning_gans.strategies import broadcast_tensors

ProgressFactory = Callable[[int, str], Any]  # (total, description) -> context manager with update(k)


def shard_indices(n: int, rank: int, world_size: int) -> Tensor:
    """The global sample indices rank ``rank`` of ``world_size`` evaluates: ``rank, rank + W, … < n``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return torch.arange(rank, n, world_size, dtype=torch.long)


def shard_size(n: int, rank: int, world_size: int) -> int:
    """How many samples rank ``rank`` evaluates: ``n // W + (rank < n % W)``."""
    return n // world_size + int(rank < n % world_size)


def distributed(world_size: int) -> bool:
    return world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def broadcast_buffers(module: torch.nn.Module, world_size: int) -> None:
    """Give every DDP rank rank 0's buffers (BatchNorm running statistics) before an evaluation.

    Under ``gan_ddp`` every rank's running statistics follow its own batches, so after training the ranks'
    generators differ in their BN buffers and, in eval mode, in their samples. Without this, a 2-process evaluation
    scores a mix of generators that no checkpoint holds (the checkpoint is rank 0's state), and 1 and 2 processes
    disagree. Collective under DDP (bucketed: ``strategies.broadcast_tensors``, as the strategy does before
    validation).
    """
    if distributed(world_size):
        broadcast_tensors(list(module.buffers()))


def broadcast_flag(flag: bool, world_size: int, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if not distributed(world_size):
        return flag
    value = torch.tensor([int(flag)], device=device)
    torch.distributed.broadcast(value, src=0)
    return bool(value.item())


def gather_rows(local: Tensor, world_size: int) -> Tensor:
    """Concatenate every rank's rows (uneven sizes allowed); collective under DDP."""
    if not distributed(world_size):
        return local
    from torchmetrics.utilities.distributed import gather_all_tensors

    return torch.cat(gather_all_tensors(local.contiguous()))


def index_batches(indices: Tensor, batch_size: int) -> Iterator[Tensor]:
    if len(indices) == 0:
        yield indices  # one empty batch: every rank must add (0, d) states so the gathers line up
    for start in range(0, len(indices), batch_size):
        yield indices[start : start + batch_size]


def progress_bar(total: int, desc: str, progress: bool | ProgressFactory) -> Any:
    """A context-managed bar with ``update(k)``: ``progress(total, desc)`` if callable, else tqdm (off if False)."""
    if callable(progress):
        return progress(total, desc)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True)
