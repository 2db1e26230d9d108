"""Shared pieces of the image-file datamodules (``celeba.py``, ``image_folder.py``).

Images are read with PIL (every format the project accepts, BMP included), turned into uint8 CHW tensors,
cropped/resized by a ``torchvision.transforms.v2`` pipeline *while still uint8* (so bicubic overshoot is clamped),
then mapped to float32 in [-1, 1] (``x / 127.5 - 1``, as every seed does).

Unreadable files: the datamodules drop what they can detect at setup; a file that still fails to decode
during training is replaced by the next readable image of the dataset (:class:`ImageFiles`), so batches keep
their shape and a long run never dies on one bad file. Each such file is reported once per process.

Transforms come in two stages (:class:`Staged`): ``fixed`` — decode-side, deterministic, uint8 → uint8 of one
size (resize, crop box, centre crop) — and ``rest`` — random parts (crops of a larger stored size, flips) and the
float conversion. The decoded-image cache (:mod:`datamodules._cache`) stores the ``fixed`` stage; ``rest`` runs
per batch, in the same order and on the same RNG as without the cache, so both give the same tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from datamodules._cache import CacheSpec, DecodedCache, cache_folder, ensure_cache
from datamodules._resume import batch_rng, make_loader
from lightning_gans.errors import DamagedDataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError)  # PIL raises all of these
MAX_CONSECUTIVE_SKIPS = 16
T = TypeVar("T")
Transform = Callable[[Tensor], Tensor]


def read_rgb(path: str | Path) -> Tensor:
    """The image at ``path`` as a uint8 3×H×W tensor (palette, grey and alpha images converted to RGB)."""
    with Image.open(path) as image:
        return v2.functional.pil_to_tensor(image.convert("RGB"))


def to_signed_unit() -> v2.Transform:
    """uint8 [0, 255] → float32 [-1, 1]."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])


class Staged:
    """``rest(fixed(image))``: ``fixed`` deterministic uint8 → uint8 of one size (what the decoded cache stores),
    ``rest`` the random parts and the float conversion; ``stage`` describes ``fixed`` (it keys the cache).
    ``batched``: ``rest`` is element-wise (no randomness), so a stack of cached images can go through it at once.
    """

    def __init__(self, fixed: Transform, rest: Transform, stage: dict[str, Any], batched: bool = False) -> None:
        self.fixed, self.rest, self.stage, self.batched = fixed, rest, stage, batched

    def __call__(self, image: Tensor) -> Tensor:
        return self.rest(self.fixed(image))


def resize_center_crop(image_size: int) -> Staged:
    """Shorter side → ``image_size`` (bicubic, antialiased: PIL's ``resize`` default), centre square, [-1, 1]."""
    fixed = v2.Compose(
        [v2.Resize(image_size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True), v2.CenterCrop(image_size)]
    )
    stage = {"resize_shorter": image_size, "interpolation": "bicubic-antialias", "center_crop": image_size}
    return Staged(fixed, to_signed_unit(), stage, batched=True)


def _identity(image: Tensor) -> Tensor:
    return image


def first_readable(
    read: Callable[[int], T], name: Callable[[int], str], skipped: list[str] | None, where: str | Path
) -> tuple[int, T]:
    """(k, ``read(k)``) for the first attempt k = 0, 1, … that decodes: the caller maps k to the file(s) after the
    requested one. Each failure's ``name(k)`` goes into ``skipped`` (the first one warned); ``skipped`` None keeps
    quiet. ``MAX_CONSECUTIVE_SKIPS`` failures in a row raise :class:`DamagedDataError` (damaged data, not bad luck).
    """
    for attempt in range(MAX_CONSECUTIVE_SKIPS):
        try:
            return attempt, read(attempt)
        except DECODE_ERRORS as err:
            if skipped is None:
                continue
            if not skipped:
                warnings.warn(
                    f"unreadable image {name(attempt)} ({type(err).__name__}: {err}): skipped, the next image "
                    "takes its place in the batch (further skips are counted in .skipped, not warned)",
                    stacklevel=3,
                )
            skipped.append(name(attempt))
    raise DamagedDataError(
        f"{MAX_CONSECUTIVE_SKIPS} consecutive unreadable images from {name(0)} on in {where}: the data are damaged; "
        "re-extract or re-download them"
    )


def describe_files(names: Sequence[str], first: int = 5) -> str:
    """``"3 files (a.jpg, b.png, c.jpg)"`` with at most ``first`` names."""
    shown = ", ".join(names[:first]) + (", …" if len(names) > first else "")
    return f"{len(names)} file{'s' if len(names) != 1 else ''} ({shown})"


def verify_images(files: Sequence[Path], root: Path) -> tuple[list[Path], list[str]]:
    """(readable files, names of unreadable ones) by PIL ``verify()`` — header and structure checks, no decode."""
    good, bad = [], []
    for path in files:
        try:
            with Image.open(path) as image:
                image.verify()
            good.append(path)
        except DECODE_ERRORS:
            bad.append(str(path.relative_to(root)))
    return good, bad


class ImageFiles(Dataset):
    """Images from a list of files through ``transform``; item i is one C×H×W tensor (no label).

    A file that fails to decode is replaced by the next readable one (at most ``MAX_CONSECUTIVE_SKIPS`` tries,
    then a clear error), so batches keep their shape; the first failure per process warns with the file name.
    With a decoded cache attached (:meth:`use_cache`, ``transform`` a :class:`Staged`), images come from the cache.
    """

    def __init__(self, files: Sequence[Path], transform: Transform, root: Path) -> None:
        self.files = list(files)
        self.transform = transform
        self.root = root
        self.skipped: list[str] = []
        self.cache: DecodedCache | None = None

    def __len__(self) -> int:
        return len(self.files)

    def _name(self, index: int) -> str:
        path = self.files[index]
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def _stages(self) -> tuple[Transform, Transform]:
        if isinstance(self.transform, Staged):
            return self.transform.fixed, self.transform.rest
        return _identity, self.transform

    def __getitem__(self, index: int) -> Tensor:
        return self.load(index)[1]

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """A batch at once: cached images with an element-wise ``rest`` go through it as one stack."""
        with batch_rng(indices):  # a seeded training batch draws its augmentations from its own seed
            if self.cache is not None and isinstance(self.transform, Staged) and self.transform.batched:
                return list(self.transform.rest(self.cache.rows(indices)))
            return [self[i] for i in indices]

    def load_fixed(self, index: int) -> tuple[int, Tensor]:
        """(index of the file actually read, its ``fixed``-stage uint8 image), decoded from the files."""
        fixed, n = self._stages()[0], len(self.files)
        attempt, image = first_readable(
            lambda k: fixed(read_rgb(self.files[(index + k) % n])), lambda k: self._name((index + k) % n),
            self.skipped, self.root,
        )  # fmt: skip
        return (index + attempt) % n, image

    def load(self, index: int) -> tuple[int, Tensor]:
        """(index of the file actually read, its image): a replacement keeps its own index, so labelled subclasses
        return the label of the image they read (the Age-cGAN seed kept the ages of skipped files: misaligned)."""
        rest = self._stages()[1]
        if self.cache is not None:
            return int(self.cache.index[index]), rest(self.cache.row(index))
        i, image = self.load_fixed(index)
        return i, rest(image)

    def use_cache(self, name: str, cache_dir: str | Path | None = None, workers: int = 0) -> DecodedCache:
        """Open (or build, decoding with ``workers`` processes) the decoded cache of these files and read from it."""
        if not isinstance(self.transform, Staged):
            raise ValueError(f"{name}: this transform has no deterministic stage to cache")
        folder = cache_folder(cache_dir)
        spec = CacheSpec(name, self.files, self.root, self.transform.stage, folder)
        self.cache = ensure_cache(spec, self.load_fixed, workers)
        return self.cache


class RealImages:
    """A lazy, tensor-indexable view of an :class:`ImageFiles` (what ``real_images(split)`` returns).

    ``len(view)`` images; ``view[idx]`` (int, slice, list or 1-D index tensor) decodes only those images and
    stacks them — so FID on 200k CelebA images never holds the whole split in memory.
    """

    def __init__(self, dataset: ImageFiles) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int | slice | Sequence[int] | Tensor) -> Tensor:
        if isinstance(index, int):
            return self.dataset[index]
        if isinstance(index, slice):
            indices = list(range(len(self)))[index]
        else:
            indices = [int(i) for i in (index.tolist() if isinstance(index, Tensor) else index)]
        if not indices:
            raise IndexError("empty index")
        return torch.stack([self.dataset[i] for i in indices])


def image_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, drop_last: bool, options: dict, datamodule: Any = None
) -> DataLoader:
    """A loader with a datamodule's resolved options (``LoaderOptions.loader_kwargs()``); shuffled training loaders
    resume mid-epoch (:mod:`datamodules._resume`)."""
    return make_loader(dataset, batch_size, shuffle, drop_last, options, datamodule)
