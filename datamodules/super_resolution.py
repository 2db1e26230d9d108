"""Paired low-/high-resolution images for 4× super-resolution (SRGAN; *GAN Projects* ch. 5, Ledig et al. 2017).

The images come from an existing datamodule, whose reader (file lists, partitions, clear not-found errors,
downloads) is reused as is — ``source``:

* ``celeba`` — :class:`~datamodules.celeba.CelebADataModule` (``source_args`` e.g. ``{layout: kaggle}``); official
  train / valid / test splits, evaluation on ``test``.
* ``image_folder`` — :class:`~datamodules.image_folder.ImageFolderDataModule` (``source_args: {folder: …}``); one
  folder, so ``holdout_fraction`` of its files (a seeded draw) are held out as the ``holdout`` split.
* ``mnist`` — :class:`~datamodules.mnist.MNISTDataModule`: 28² digits (train / test), for the CPU check 7² → 28².

Every image is read as uint8 and turned into a pair (the chapter's ``sample_images``, reference §6):

1. HR: ``hr_transform="resize"`` — the chapter: the whole picture resized to ``hr_size``² (bicubic, antialiased;
   the aspect ratio is *not* kept: CelebA's 178×218 faces are squeezed); ``"center_crop"`` — shorter side to
   ``hr_size``, centre square; ``"random_crop"`` — a random ``hr_size``² crop at native resolution (Ledig et al.
   train on random 96² crops; held-out images take the centre crop).
2. Horizontal flip with p = 0.5 (training only), applied to HR before LR is made, so the pair flips jointly.
3. LR: HR downscaled ×``scale`` (bicubic, antialiased) — the degradation of Ledig et al. §3 (the chapter resizes
   the original twice with ``scipy.misc.imresize``, whose default interpolation is bilinear).
4. Both mapped to [-1, 1] (``x / 127.5 − 1``). Grey sources (MNIST) stay one-channel.

Batches are ``(lr [B×C×h×w], hr [B×C×H×W])`` with ``H = scale·h``. ``separate_generator_batch=True`` makes
training batches ``{"discriminator": (lr, hr), "generator": (lr, hr)}`` — the chapter draws a *new* batch for
the generator step. The generator loader reads the dataset rotated by half its length, so the two batches differ
even under DDP, where both loaders get a ``DistributedSampler`` with the same seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from datamodules._images import ImageFiles, Staged, image_loader
from datamodules._loading import LoaderOptions, Workers
from datamodules._paths import resolve_data_dir
from lightning_gans.errors import DatasetNotFoundError

SOURCES = ("celeba", "image_folder", "mnist")
HR_TRANSFORMS = ("resize", "center_crop", "random_crop")
EVAL_SPLITS = {"celeba": "test", "image_folder": "holdout", "mnist": "test"}


def to_unit_range(image: Tensor) -> Tensor:
    """uint8 [0, 255] → float32 [-1, 1] (``x / 127.5 − 1``), any number of channels."""
    return image.to(torch.float32).div_(127.5).sub_(1.0)


def downscale(hr: Tensor, scale: int) -> Tensor:
    """Bicubic, antialiased ×``scale`` downscale of a uint8 C×H×W image (the LR input)."""
    height, width = hr.shape[-2:]
    return v2.functional.resize(
        hr, [height // scale, width // scale], interpolation=v2.InterpolationMode.BICUBIC, antialias=True
    )


class PairTransform(Staged):
    """uint8 C×H×W picture → ``(lr, hr)`` in [-1, 1] (see the module docstring; picklable for workers).

    ``fixed`` stage (what the decoded cache stores): the HR resize / centre crop; for training random crops it is
    the decoded picture itself (the cache then needs pictures of one size, as CelebA's are). ``rest``: the random
    crop, the flip, the LR downscale and the [-1, 1] mapping, per item.
    """

    def __init__(self, hr_size: int, scale: int, hr_transform: str, train: bool, flip: bool) -> None:
        self.scale, self.flip = scale, flip and train
        bicubic = v2.InterpolationMode.BICUBIC
        self.crop: v2.Transform | None = None
        if hr_transform == "resize":
            fixed: Any = v2.Resize((hr_size, hr_size), interpolation=bicubic, antialias=True)
        elif hr_transform == "center_crop" or not train:
            resize = (
                [v2.Resize(hr_size, interpolation=bicubic, antialias=True)] if hr_transform != "random_crop" else []
            )
            fixed = v2.Compose([*resize, v2.CenterCrop(hr_size)])
        else:
            fixed, self.crop = _decoded, v2.RandomCrop(hr_size)
        stage = {"hr": "decoded" if self.crop else hr_transform, "hr_size": None if self.crop else hr_size}
        super().__init__(fixed, self.finish, stage)

    def finish(self, hr: Tensor) -> tuple[Tensor, Tensor]:
        if self.crop is not None:
            hr = self.crop(hr)
        if self.flip and bool(torch.rand(()) < 0.5):
            hr = hr.flip(-1)
        return to_unit_range(downscale(hr, self.scale)), to_unit_range(hr)


def _decoded(image: Tensor) -> Tensor:
    return image


class TensorPictures(Dataset):
    """In-memory [-1, 1] images (e.g. MNIST) read back as the exact uint8 pictures, through ``transform``."""

    def __init__(self, images: Tensor, transform: PairTransform) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        picture = ((self.images[index] + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return self.transform(picture)


class Rotated(Dataset):
    """``dataset`` read from index ``offset`` on (item i is item ``(i + offset) mod n``)."""

    def __init__(self, dataset: Dataset, offset: int) -> None:
        self.dataset, self.offset = dataset, offset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[(index + self.offset) % len(self.dataset)]


class SuperResolutionDataModule(LoaderOptions, pl.LightningDataModule):
    """(LR, HR) pairs from CelebA, an image folder or MNIST (see the module docstring)."""

    def __init__(
        self,
        source: Literal["celeba", "image_folder", "mnist"] = "celeba",
        source_args: dict | None = None,
        data_dir: str | None = None,
        hr_size: int = 256,
        scale: int = 4,
        hr_transform: Literal["resize", "center_crop", "random_crop"] = "resize",
        flip: bool = True,
        holdout_fraction: float = 0.1,
        split_seed: int = 0,
        separate_generator_batch: bool = False,
        batch_size: int = 1,
        num_workers: Workers = "auto",
        drop_last: bool = False,
        shuffle: bool = True,
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        prefetch_factor: int = 2,
        cache: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        if hr_transform not in HR_TRANSFORMS:
            raise ValueError(f"hr_transform must be one of {', '.join(HR_TRANSFORMS)}, got {hr_transform!r}")
        if scale < 1 or hr_size < scale or hr_size % scale:
            raise ValueError(f"hr_size must be a positive multiple of scale, got hr_size={hr_size}, scale={scale}")
        if not 0.0 < holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
        self.source_name, self.hr_size, self.scale, self.hr_transform = source, hr_size, scale, hr_transform
        self.flip, self.holdout_fraction, self.split_seed = flip, holdout_fraction, split_seed
        self.separate_generator_batch = separate_generator_batch
        self.batch_size, self.drop_last, self.shuffle = batch_size, drop_last, shuffle
        self.set_loader_options(num_workers, persistent_workers, pin_memory, prefetch_factor)
        if cache and source == "mnist":
            raise ValueError("cache: true caches decoded image files; the mnist source is in memory already")
        self.cache, self.cache_dir = cache, cache_dir
        self.source = self._build_source(source, dict(source_args or {}), resolve_data_dir(data_dir))
        self.name = f"{getattr(self.source, 'name', source)}_x{scale}"
        self.eval_split = EVAL_SPLITS[source]
        self._splits: dict[tuple[str, bool], Dataset] = {}

    @staticmethod
    def _build_source(source: str, args: dict, data_dir: Path) -> pl.LightningDataModule:
        if source == "celeba":
            from datamodules.celeba import CelebADataModule

            return CelebADataModule(data_dir=str(data_dir), **args)
        if source == "image_folder":
            from datamodules.image_folder import ImageFolderDataModule

            return ImageFolderDataModule(data_dir=str(data_dir), **args)
        from datamodules.mnist import MNISTDataModule

        return MNISTDataModule(data_dir=str(data_dir), **args)

    @property
    def splits(self) -> tuple[str, ...]:
        return {"celeba": ("train", "valid", "test"), "image_folder": ("train", "holdout")}.get(
            self.source_name, ("train", "test")
        )

    # ------------------------------------------------------------------ data
    def prepare_data(self) -> None:
        """The source's download / one clear not-found error; with ``cache``, the decoded cache's build."""
        self.source.prepare_data()
        if self.cache:
            self.source.setup("fit")
            self._use_cache()

    def _files(self, split: str) -> ImageFiles:
        """The source's file list for ``split`` (CelebA partitions; the image folder's seeded hold-out)."""
        if self.source_name == "celeba":
            return self.source._load(split)
        every = self.source._load()
        order = torch.randperm(len(every), generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        n_holdout = max(1, round(self.holdout_fraction * len(every))) if len(every) > 1 else 0
        chosen = sorted(order[:n_holdout]) if split == "holdout" else sorted(order[n_holdout:])
        return ImageFiles([every.files[i] for i in chosen], every.transform, every.root)

    def _check_size(self, files: ImageFiles) -> None:
        if self.hr_transform != "random_crop" or not len(files):
            return
        from datamodules._images import read_rgb

        height, width = read_rgb(files.files[0]).shape[-2:]
        if min(height, width) < self.hr_size:
            raise ValueError(
                f"hr_transform=random_crop takes {self.hr_size}² crops, but {files.files[0].name} is {width}×{height}: "
                "lower hr_size or use hr_transform=resize / center_crop"
            )

    def pairs(self, split: str, train: bool = False) -> Dataset:
        """The ``(lr, hr)`` pairs of ``split``; ``train=True`` adds the random flip (and random crops)."""
        if split not in self.splits:
            raise ValueError(f"the {self.source_name} source has splits {', '.join(self.splits)}, got {split!r}")
        key = (split, train)
        if key not in self._splits:
            transform = PairTransform(self.hr_size, self.scale, self.hr_transform, train, self.flip)
            if self.source_name == "mnist":
                if self.hr_transform == "random_crop" and self.hr_size > 28:
                    raise ValueError(f"MNIST digits are 28²: random_crop needs hr_size <= 28, got {self.hr_size}")
                self._splits[key] = TensorPictures(self.source._load(split)[0], transform)
            else:
                files = self._files(split)
                self._check_size(files)
                self._splits[key] = ImageFiles(files.files, transform, files.root)
        return self._splits[key]

    def _use_cache(self) -> None:
        """With ``cache``: the training pairs' HR stage from the decoded cache (built here on first use)."""
        dataset = self.pairs("train", train=True)
        if self.cache and isinstance(dataset, ImageFiles) and dataset.cache is None and len(dataset):
            name = f"{self.name}-train-hr{self.hr_size}" if dataset.transform.stage["hr_size"] else f"{self.name}-train"
            dataset.use_cache(name, self.cache_dir, self.resolved_num_workers(decoding=True))

    def decoded_caches(self) -> list:
        """The decoded caches in use (``cache: true``, after setup)."""
        dataset = self._splits.get(("train", True))
        return [dataset.cache] if isinstance(dataset, ImageFiles) and dataset.cache is not None else []

    def setup(self, stage: str | None = None) -> None:
        """List the source's files (images are decoded lazily, or come from the decoded cache). Idempotent."""
        self.source.setup(stage)
        if stage in (None, "fit") and len(self.pairs("train", train=True)) == 0:
            raise DatasetNotFoundError(f"{self.name}: the training split holds no images")
        self._use_cache()

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool) -> DataLoader:
        return image_loader(dataset, self.batch_size, shuffle, drop_last, self.loader_kwargs(), self)

    def train_dataloader(self) -> DataLoader | dict[str, DataLoader]:
        dataset = self.pairs("train", train=True)
        loader = self._loader(dataset, self.shuffle, self.drop_last)
        if not self.separate_generator_batch:
            return loader
        rotated = Rotated(dataset, len(dataset) // 2)
        return {"discriminator": loader, "generator": self._loader(rotated, self.shuffle, self.drop_last)}
