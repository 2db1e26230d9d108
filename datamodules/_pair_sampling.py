"""Which images pair up in an epoch of a translation datamodule (``_translation.py``): :class:`PairSampler`, the
epoch length rule :func:`images_per_epoch` and :func:`pair_loader`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from datamodules._resume import ResumableOrder, resumable_loader

EPOCH_LENGTHS = ("longer", "shorter")


class PairSampler(ResumableOrder, Sampler[tuple[int, int]]):
    """``length`` index pairs per epoch (see the module docstring). ``paired``: B index = A index (requires
    |A| = |B|). Shuffled: each domain's order is a fresh permutation, repeated (each time re-drawn) when the epoch is
    longer than the domain — so an epoch over the longer domain visits every image of it once and cycles the other.
    The epoch's seed is ``seed · 1,000,003 + epoch`` (recorded as ``epoch_seed``; a resumed run replays the epoch).
    """

    def __init__(self, n_a: int, n_b: int, length: int, paired: bool, shuffle: bool = True, seed: int = 0) -> None:
        if paired and n_a != n_b:
            raise ValueError(f"paired sampling needs as many A as B images, got {n_a} and {n_b}")
        if min(n_a, n_b, length) < 1:
            raise ValueError(f"no images to sample (|A| = {n_a}, |B| = {n_b}, epoch length {length})")
        self.n_a, self.n_b, self.length, self.paired, self.shuffle, self.seed = n_a, n_b, length, paired, shuffle, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before every training epoch (the order depends on ``seed`` and the epoch only)."""
        self.epoch = epoch

    def _order(self, n: int, generator: torch.Generator) -> Tensor:
        rounds = -(-self.length // n)
        return torch.cat([torch.randperm(n, generator=generator) for _ in range(rounds)])[: self.length]

    def next_seed(self) -> int:
        self.epoch += 1  # a new order next time even when nobody calls set_epoch
        return self.seed * 1_000_003 + self.epoch - 1

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if not self.shuffle:
            return iter([(i % self.n_a, i % self.n_b) for i in range(self.length)])
        seed, skip = self.start_epoch()
        generator = torch.Generator().manual_seed(seed)
        order_a = self._order(self.n_a, generator)
        order_b = order_a if self.paired else self._order(self.n_b, generator)
        return iter(list(zip(order_a.tolist(), order_b.tolist(), strict=True))[skip:])


def images_per_epoch(n_a: int, n_b: int, which: str, cap: int | None) -> int:
    """Images per epoch: the longer or the shorter domain, at most ``cap`` (None: no cap)."""
    if which not in EPOCH_LENGTHS:
        raise ValueError(f"epoch_length must be 'longer' or 'shorter', got {which!r}")
    if cap is not None and cap < 1:
        raise ValueError(f"max_images_per_epoch must be >= 1 (or None for no cap), got {cap}")
    length = max(n_a, n_b) if which == "longer" else min(n_a, n_b)
    return min(length, cap) if cap is not None else length


def pair_loader(
    dataset: Any, sampler: PairSampler, batch_size: int, drop_last: bool, options: dict, datamodule: Any = None
) -> DataLoader:
    """Training (``sampler.shuffle``): a mid-epoch-resumable loader with seeded augmentations (``_resume``)."""
    if sampler.shuffle:
        return resumable_loader(dataset, sampler, batch_size, drop_last, options, datamodule)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **options)
