"""Training loaders that resume mid-epoch exactly: the epoch's order is drawn from a seed the loader records, the
random augmentations are drawn from a seed per batch, and a resumed loader replays the epoch from the first batch
not yet trained on.

* :class:`ResumableOrder` (a sampler mixin): the order of an epoch is a function of ``epoch_seed`` only; a sampler
  told ``resume_from = (seed, skip)`` replays that epoch from its index ``skip``. :class:`ResumableRandomSampler`
  draws its seed from torch's global RNG exactly as ``RandomSampler`` does (one int64, at the first batch), so an
  uninterrupted run's data order is unchanged; ``PairSampler`` (translation data) derives it from its seed and
  epoch.
* :class:`ResumableBatchSampler`: batches of that order, each a :class:`SeededIndices` (a list of indices with a
  ``seed`` = f(epoch seed, batch number)); a dataset that augments randomly draws its crops/flips inside
  :func:`batch_rng` (``ImageFiles``, ``PairDataset``), so augmentations neither read nor advance the global RNG —
  they are the same with 0 or 8 workers, uninterrupted or resumed, and Lightning's prefetch of the next batch
  cannot shift the training stream. It records every batch's size (``ProgressiveGrowing`` changes the size
  between batches) so a resume skips the right number of images.
* :class:`ResumableLoader`: a ``DataLoader`` with ``state_dict``/``load_state_dict`` (Lightning saves them in every
  checkpoint and restores them before the first batch: no "dataloader is not resumable" warning). The state holds
  the epoch seed, the sizes of the batches trained in this epoch (as many as the trainer's
  ``batch_progress.current.processed`` at the save) and of those already fetched but not trained on (prefetch).
  On resume the loader replays only when the trainer is at the same batch of an unfinished epoch (a checkpoint
  written at an epoch's end starts the next epoch with a fresh seed, as an uninterrupted run does), and leaves
  torch's global RNG as the checkpoint restored it: the uninterrupted run drew the iterator's seeds before the save.

Scope (decision): one process is bit-exact, with any number of workers for the order and the seeded
augmentations. Under DDP Lightning replaces the sampler by a ``DistributedSampler`` (batches are then plain lists
and augmentations use the global RNG, as before); the epoch restarts from its first batch.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler

_MASK = (1 << 63) - 1


class SeededIndices(list):
    """A batch of indices carrying the ``seed`` its random augmentations are drawn from (pickles to workers)."""

    def __init__(self, indices: Any = (), seed: int = 0) -> None:
        super().__init__(indices)
        self.seed = seed

    def __reduce__(self) -> Any:
        return SeededIndices, (list(self), self.seed)


def batch_seed(epoch_seed: int, number: int) -> int:
    """The augmentation seed of batch ``number`` of the epoch drawn from ``epoch_seed`` (an LCG-style mix)."""
    return (epoch_seed * 6364136223846793005 + (number + 1) * 1442695040888963407) & _MASK


@contextlib.contextmanager
def batch_rng(indices: Any) -> Iterator[None]:
    """Run a batch's random transforms on its own seed (a :class:`SeededIndices`) and leave the global CPU RNG
    untouched; plain index lists (DDP's ``DistributedSampler``, evaluation) use the global RNG as before."""
    seed = getattr(indices, "seed", None)
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class ResumableOrder:
    """Sampler mixin: ``epoch_seed`` of the current pass, ``resume_from = (seed, skip)`` for the next one."""

    epoch_seed: int | None = None
    resume_from: tuple[int, int] | None = None

    def next_seed(self) -> int:
        """The next epoch's seed: one int64 from torch's global RNG, as ``RandomSampler`` draws it."""
        return int(torch.empty((), dtype=torch.int64).random_().item())

    def start_epoch(self) -> tuple[int, int]:
        """(seed, indices to skip) of the pass starting now; consumes ``resume_from``."""
        if self.resume_from is not None:
            (seed, skip), self.resume_from = self.resume_from, None
        else:
            seed, skip = self.next_seed(), 0
        self.epoch_seed = seed
        return seed, skip


class ResumableRandomSampler(ResumableOrder, RandomSampler):
    """``RandomSampler`` that records each epoch's seed (``epoch_seed``) and can replay an epoch from an offset."""

    def __iter__(self) -> Iterator[int]:
        seed, skip = self.start_epoch()
        self.generator = torch.Generator().manual_seed(seed)
        return itertools.islice(super().__iter__(), skip, None)


class ResumableBatchSampler(BatchSampler):
    """``BatchSampler`` yielding :class:`SeededIndices` when its sampler is a :class:`ResumableOrder`; records the
    sizes of this epoch's batches; ``next_size()`` may vary per batch (subclasses)."""

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.sizes: list[int] = []
        self.resume_from: dict[str, Any] | None = None

    def next_size(self) -> int:
        return self.batch_size

    def __iter__(self) -> Iterator[list[int]]:  # a generator: runs at the first batch, as BatchSampler does
        resume, self.resume_from = self.resume_from, None
        order = self.sampler if isinstance(self.sampler, ResumableOrder) else None
        self.sizes, pending = [], []
        if resume is not None and order is not None:
            self.sizes, pending = list(resume["sizes"]), list(resume["pending"])
            order.resume_from = (resume["epoch_seed"], sum(self.sizes))
        indices = iter(self.sampler)
        seed = order.epoch_seed if order is not None else None
        number = len(self.sizes)
        while True:
            size = pending.pop(0) if pending else self.next_size()
            batch = list(itertools.islice(indices, size))
            if not batch or (self.drop_last and len(batch) < size):
                return
            self.sizes.append(len(batch))
            yield batch if seed is None else SeededIndices(batch, batch_seed(seed, number))
            number += 1

    def epoch_state(self, done: int) -> dict[str, Any]:
        """What a resume needs after ``done`` trained batches of this epoch ({} outside a resumable epoch)."""
        seed = getattr(self.sampler, "epoch_seed", None)
        if seed is None or not 0 < done <= len(self.sizes):
            return {}
        return {"epoch_seed": seed, "sizes": self.sizes[:done], "pending": self.sizes[done:]}


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
    """A training ``DataLoader`` over a :class:`ResumableBatchSampler` that resumes mid-epoch exactly (see the module
    docstring). ``batches_done``: the trainer's processed batches in this epoch (:func:`trainer_batches_done`).

    Its ``sampler`` attribute is the batch sampler's index sampler (a ``DataLoader`` built from a ``batch_sampler``
    reports a default ``SequentialSampler``): Lightning reads it to see that the loader shuffles, to inject a
    shuffling ``DistributedSampler`` under DDP (or none when it is one already) and to call ``set_epoch``."""

    def __init__(self, *args: Any, batches_done: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "sampler", self.batch_sampler.sampler)  # DataLoader refuses setattr after init
        self.batches_done = batches_done
        self._pending_state: dict[str, Any] | None = None

    def _done(self) -> int:
        return self.batches_done() if self.batches_done is not None else 0

    def state_dict(self) -> dict[str, Any]:
        batches = self.batch_sampler
        return batches.epoch_state(self._done()) if isinstance(batches, ResumableBatchSampler) else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_state = dict(state_dict) or None

    def __iter__(self) -> Any:
        state, self._pending_state = self._pending_state, None
        batches = self.batch_sampler
        if state is None or not isinstance(batches, ResumableBatchSampler) or self._done() != len(state["sizes"]):
            return super().__iter__()
        batches.resume_from = state
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
    return resumable_loader(dataset, ResumableRandomSampler(dataset), batch_size, drop_last, options, datamodule)


def resumable_loader(
    dataset: Any, sampler: Sampler, batch_size: int, drop_last: bool, options: dict, datamodule: Any = None
) -> ResumableLoader:
    """A :class:`ResumableLoader` over ``sampler`` (a :class:`ResumableOrder` for exact resume)."""
    done = trainer_batches_done(datamodule) if datamodule is not None else None
    batches = ResumableBatchSampler(sampler, batch_size, drop_last)
    return ResumableLoader(dataset, batch_sampler=batches, batches_done=done, **options)
