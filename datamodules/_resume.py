"""Training loaders that resume mid-epoch exactly: the epoch's shuffle is drawn from a seed the loader records,
and a resumed loader replays that order from the first batch not yet trained on.

:class:`ResumableRandomSampler` draws its epoch seed from torch's global RNG exactly as ``RandomSampler`` does
(one int64, at the first batch), so an uninterrupted run's data order is unchanged. :class:`ResumableLoader` is a
``DataLoader`` with ``state_dict``/``load_state_dict`` (Lightning saves them in every checkpoint and restores them
before the first batch: no "dataloader is not resumable" warning). On resume it

* reuses the recorded seed and skips, by index, the batches the trainer already processed in this epoch (read from
  the trainer's batch progress when the loader starts; a checkpoint written at an epoch's end starts the next
  epoch with a fresh seed, as an uninterrupted run does);
* leaves torch's global RNG as the checkpoint restored it: the uninterrupted run drew the iterator's seeds before
  the checkpoint was written, so the resumed iterator's own draws are undone.

Scope (decision): one process with ``num_workers: 0`` (the in-memory MNIST and toy data, and ``cache: true``
image data under ``auto``) is bit-exact. With workers, the order is exact but the workers' random crops/flips
restart from a new seed. Under DDP Lightning replaces the sampler by a ``DistributedSampler``; the epoch then
restarts from its first batch, as before.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler


class ResumableRandomSampler(RandomSampler):
    """``RandomSampler`` that records each epoch's seed (``epoch_seed``) and can replay an epoch from an offset."""

    def __init__(self, data_source: Any) -> None:
        super().__init__(data_source)
        self.epoch_seed: int | None = None
        self.resume_from: tuple[int, int] | None = None  # (seed, indices to skip), consumed by the next epoch

    def __iter__(self) -> Iterator[int]:
        if self.resume_from is not None:
            seed, skip = self.resume_from
            self.resume_from = None
        else:
            seed, skip = int(torch.empty((), dtype=torch.int64).random_().item()), 0
        self.epoch_seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        return itertools.islice(super().__iter__(), skip, None)


def trainer_batches_done(datamodule: Any) -> Callable[[], int]:
    """A callable giving the batches the datamodule's trainer processed in its current epoch (0 without one).
    Reads Lightning's batch progress (``fit_loop.epoch_loop.batch_progress.current.processed``)."""

    def done() -> int:
        trainer = getattr(datamodule, "trainer", None)
        try:
            return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        except AttributeError:
            return 0

    return done


class ResumableLoader(DataLoader):
    """A shuffling training ``DataLoader`` that resumes mid-epoch exactly (see the module docstring)."""

    def __init__(self, *args: Any, batches_done: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches_done = batches_done
        self._pending_seed: int | None = None

    def state_dict(self) -> dict[str, Any]:
        sampler = self.sampler
        seed = sampler.epoch_seed if isinstance(sampler, ResumableRandomSampler) else None
        return {} if seed is None else {"epoch_seed": seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_seed = state_dict.get("epoch_seed")

    def __iter__(self) -> Any:
        seed, self._pending_seed = self._pending_seed, None
        done = self.batches_done() if self.batches_done is not None and seed is not None else 0
        if seed is None or not isinstance(self.sampler, ResumableRandomSampler) or not 0 < done < len(self):
            return super().__iter__()
        self.sampler.resume_from = (seed, done * int(self.batch_size or 1))
        rng = torch.get_rng_state()
        iterator = super().__iter__()
        torch.set_rng_state(rng)  # these draws happened before the checkpoint in the uninterrupted run
        return iterator


def make_loader(
    dataset: Any, batch_size: int, shuffle: bool, drop_last: bool, options: dict, datamodule: Any = None
) -> DataLoader:
    """A shuffling :class:`ResumableLoader` (``shuffle``) or a plain ``DataLoader`` in order, with ``options``
    (``LoaderOptions.loader_kwargs()``); ``datamodule``: whose trainer's progress a resume reads."""
    if not shuffle:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=drop_last, **options)
    done = trainer_batches_done(datamodule) if datamodule is not None else None
    sampler = ResumableRandomSampler(dataset)
    return ResumableLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, batches_done=done,
                           **options)  # fmt: skip
