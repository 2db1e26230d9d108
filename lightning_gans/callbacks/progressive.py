"""``ProgressiveGrowing``: the ProGAN growth schedule (Karras et al. 2018, §3 and §A.1; *GANs in Action* ch. 6).

Level 0 (4×4) trains for one stabilisation phase; every next level first fades in for ``fade_in_images`` real
images (α rising linearly in images shown, from 0 to 1), then stabilises for ``images_per_phase`` images at
α = 1; the last level then trains until the trainer stops. The paper shows 800k images per phase.

The schedule is a pure function of the model's ``images_shown`` buffer (real images trained on): before every
batch the callback sets the model's ``resolution_level``/``fade_in_alpha`` from it. The step counter is not
used — Lightning's ``global_step`` counts optimizer steps, which ``GANModule`` corrects to one per batch, but
with per-resolution batch sizes steps do not measure images. Because the state is in model buffers, a run
resumed from any checkpoint (even mid-fade) continues at the same resolution, α and image count.

Batch size per resolution (``batch_sizes``, e.g. ``{4: 64, 8: 64, 16: 32, 32: 32}``; a resolution not listed
uses the entry of the largest listed resolution below it, or the datamodule's own batch size): the callback
wraps the datamodule's ``train_dataloader`` so the loader draws its batches through a
:class:`ScheduledBatchSampler`, which reads the batch size at every batch. No dataloader reload and no epoch
alignment is needed; the change takes effect within two batches of a resolution switch (Lightning prefetches
one batch), and ``images_shown`` always counts the real sizes. An epoch stays one shuffled pass over the data
(``reload_dataloaders_every_n_epochs: 1`` lets Lightning re-read its length after the batch size changed).

Under DDP the batch sizes are **per process**, like ``--data.batch_size``: with W processes a step trains on W ×
the listed size, and ``images_shown`` counts all of them (batch × W), so the schedule is in global images. Each
rank reads its own shard: the re-batched loader (:func:`rebatch`) draws its indices from the datamodule loader's
``DistributedSampler`` if it has one, else from one built as Lightning injects it into a training loader (the
trainer's ``num_replicas`` and ``rank``, shuffled, seed ``PL_GLOBAL_SEED``; a custom sampler goes in a
``DistributedSamplerWrapper``), whatever ``use_distributed_sampler`` says. The loader reports that sampler as its
``sampler``, so Lightning injects no second one (it would replace the datamodule's own sampler) and its
per-epoch ``set_epoch`` reaches it. The shards have equal length (the sampler pads) and all ranks read the same
batch size at every step, so the ranks make the same batches in lockstep.
Real images come at full size and the model pools them to the current resolution (see ``models/progan.py``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler, Sampler, SequentialSampler

from datamodules._resume import ResumableBatchSampler, ResumableLoader, ResumableRandomSampler, trainer_batches_done
from lightning_gans.networks.progan import level_resolution


def growth_at(images: int, max_level: int, images_per_phase: int, fade_in_images: int) -> tuple[int, float]:
    """(level, α) after ``images`` real images: stabilise 4×4, then (fade in, stabilise) per level."""
    if images < images_per_phase or max_level == 0:
        return 0, 1.0
    per_level = fade_in_images + images_per_phase
    done, into = divmod(images - images_per_phase, per_level)
    level = 1 + done
    if level > max_level:
        return max_level, 1.0
    return level, (min(1.0, into / fade_in_images) if fade_in_images > 0 else 1.0)


def images_to_reach(level: int, images_per_phase: int, fade_in_images: int) -> int:
    """Images shown when ``level`` is fully faded in (α = 1): the start of its stabilisation phase."""
    return level * (fade_in_images + images_per_phase)


class Permutation(Sampler[int]):
    """``range(n)`` in order (an unshuffled loader; shuffled ones use a ``ResumableRandomSampler`` over it)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


class ScheduledBatchSampler(ResumableBatchSampler):
    """Batches of ``batch_size()`` indices (read at every batch) drawn from ``sampler``: one pass per epoch.

    ``BatchSampler``'s attributes, ``(sampler, batch_size, drop_last)``, with ``batch_size`` a callable. Under DDP
    :func:`rebatch` gives it the rank's ``DistributedSampler`` (its own shard, padded to equal length, reshuffled
    by ``set_epoch``), so every rank reads a disjoint shard at the current batch size and all ranks make the same
    number of batches. One process: a ``ResumableRandomSampler``, so a run killed mid-fade resumes at the same
    image of the epoch with the batch sizes it had already fetched (``datamodules._resume``).
    """

    def __init__(self, sampler: Sampler[int], batch_size: Callable[[], int], drop_last: bool = False) -> None:
        super().__init__(sampler, 1, drop_last)
        self.batch_size = batch_size  # type: ignore[assignment]

    def next_size(self) -> int:
        return self.batch_size()

    def __len__(self) -> int:
        size = self.batch_size()
        n = len(self.sampler)
        return n // size if self.drop_last else math.ceil(n / size)

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this every epoch; the distributed sampler needs it to reshuffle."""
        if callable(getattr(self.sampler, "set_epoch", None)):
            self.sampler.set_epoch(epoch)


def shard_sampler(loader: DataLoader, num_replicas: int, rank: int) -> Sampler[int]:
    """``loader``'s indices for ``rank`` of ``num_replicas``: its own ``DistributedSampler`` if it has one, else the
    one Lightning injects into a training loader (shuffled, seed ``PL_GLOBAL_SEED``; a custom sampler wrapped)."""
    sampler = loader.sampler
    if isinstance(sampler, DistributedSampler):
        if (sampler.num_replicas, sampler.rank) != (num_replicas, rank):
            raise ValueError(
                f"ProgressiveGrowing.batch_sizes: the train loader's DistributedSampler is for rank {sampler.rank} of "
                f"{sampler.num_replicas}, this process is rank {rank} of {num_replicas}: build it with the trainer's "
                "world size and global rank, or leave the sampler to the callback"
            )
        return sampler
    kwargs = {
        "num_replicas": num_replicas,
        "rank": rank,
        "shuffle": True,
        "seed": int(os.getenv("PL_GLOBAL_SEED", "0")),
    }
    if isinstance(sampler, RandomSampler | SequentialSampler):
        return DistributedSampler(loader.dataset, **kwargs)
    return DistributedSamplerWrapper(sampler, **kwargs)


def rebatch(
    loader: DataLoader,
    batch_size: Callable[[], int],
    shard: dict[str, int] | None = None,
    batches_done: Callable[[], int] | None = None,
) -> DataLoader:
    """``loader``'s dataset and worker settings, in batches of ``batch_size()`` (read at every batch); with ``shard``
    (``num_replicas`` and ``rank``, the trainer's ``distributed_sampler_kwargs``) only that rank's shard;
    ``batches_done``: the trainer's batches in this epoch, for an exact mid-epoch resume."""
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        raise ValueError("ProgressiveGrowing.batch_sizes needs one DataLoader over a map-style dataset")
    n = len(loader.dataset)
    if shard:
        order = shard_sampler(loader, **shard)
    elif isinstance(loader.sampler, SequentialSampler):
        order = Permutation(n)
    else:  # one process: a fresh seeded permutation per epoch, recorded for a resume
        order = ResumableRandomSampler(range(n))
    drop_last = bool(getattr(loader.batch_sampler, "drop_last", getattr(loader, "drop_last", False)))
    return ResumableLoader(  # reports the index sampler as ``sampler``: Lightning injects no second one
        loader.dataset,
        batch_sampler=ScheduledBatchSampler(order, batch_size, drop_last),
        batches_done=batches_done,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        persistent_workers=loader.persistent_workers,
        prefetch_factor=loader.prefetch_factor if loader.num_workers > 0 else None,
    )


class ProgressiveGrowing(Callback):
    """Grow a ``ProGAN`` from 4×4 to its full resolution (see module docstring).

    ``batch_sizes`` are per process, like ``--data.batch_size``: under DDP with W processes a step trains on W × the
    listed size, and each rank reads its own shard of the train set (a ``DistributedSampler``) at every resolution.
    """

    def __init__(
        self,
        images_per_phase: int = 800_000,
        fade_in_images: int | None = None,
        batch_sizes: dict[int, int] | None = None,
    ) -> None:
        fade_in_images = images_per_phase if fade_in_images is None else fade_in_images
        if images_per_phase < 1 or fade_in_images < 0:
            raise ValueError(
                f"need images_per_phase >= 1 and fade_in_images >= 0, got {images_per_phase}, {fade_in_images}"
            )
        sizes = {int(k): int(v) for k, v in (batch_sizes or {}).items()}
        bad = {k: v for k, v in sizes.items() if v < 1 or k < 4 or k & (k - 1)}
        if bad:
            raise ValueError(f"batch_sizes maps resolutions (4, 8, 16, …) to batch sizes >= 1; invalid entries: {bad}")
        self.images_per_phase, self.fade_in_images, self.batch_sizes = images_per_phase, fade_in_images, sizes
        self._default_batch_size: int | None = None
        self._module: Any = None
        self._announced: int | None = None

    # ------------------------------------------------------------------ schedule
    def growth(self, images: int, max_level: int) -> tuple[int, float]:
        return growth_at(images, max_level, self.images_per_phase, self.fade_in_images)

    def batch_size_for(self, resolution: int) -> int | None:
        listed = [r for r in self.batch_sizes if r <= resolution]
        return self.batch_sizes[max(listed)] if listed else self._default_batch_size

    def current_batch_size(self) -> int:
        module = self._module
        size = self.batch_size_for(module.current_resolution) if module is not None else None
        return size or self._default_batch_size or 1

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if not callable(getattr(pl_module, "set_growth", None)):
            raise ValueError(
                f"ProgressiveGrowing grows a ProGAN model (set_growth/images_shown); got {type(pl_module).__name__}"
            )
        self._module = pl_module
        if self.batch_sizes:
            self._wrap_dataloader(trainer)

    def _wrap_dataloader(self, trainer: pl.Trainer) -> None:
        datamodule = trainer.datamodule
        if datamodule is None:
            raise ValueError("ProgressiveGrowing.batch_sizes needs a datamodule (it re-batches its train_dataloader)")
        self._default_batch_size = getattr(datamodule, "batch_size", None)
        original = datamodule.train_dataloader
        if getattr(original, "_progressive", False):
            return

        def train_dataloader() -> DataLoader:
            shard = trainer.distributed_sampler_kwargs if trainer.world_size > 1 else None
            return rebatch(original(), self.current_batch_size, shard, trainer_batches_done(datamodule))

        train_dataloader._progressive = True  # type: ignore[attr-defined]
        datamodule.train_dataloader = train_dataloader

    def _apply(self, pl_module: pl.LightningModule) -> None:
        level, alpha = self.growth(int(pl_module.images_shown), pl_module.max_level)
        if level != self._announced:
            self._announced = level
            kind = "fades in" if alpha < 1.0 else "trains"
            rank_zero_info(
                f"ProgressiveGrowing: {level_resolution(level)}px {kind} at {int(pl_module.images_shown)} images"
            )
        pl_module.set_growth(level, alpha)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._apply(pl_module)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._apply(pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._apply(pl_module)  # checkpoints written after this batch hold the state of the next one
