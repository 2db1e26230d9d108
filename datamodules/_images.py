"""Shared pieces of the image-file datamodules (``celeba.py``, ``image_folder.py``).

Images are read with PIL (every format the project accepts, BMP included), turned into uint8 CHW tensors,
cropped/resized by a ``torchvision.transforms.v2`` pipeline *while still uint8* (so bicubic overshoot is clamped),
then mapped to float32 in [-1, 1] (``x / 127.5 - 1``, as every seed does).

Unreadable files: the datamodules drop what they can detect at setup; a file that still fails to decode
during training is replaced by the next readable image of the dataset (:class:`ImageFiles`), so batches keep
their shape and a long run never dies on one bad file. Each such file is reported once per process.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError)  # PIL raises all of these
MAX_CONSECUTIVE_SKIPS = 16
Transform = Callable[[Tensor], Tensor]


def read_rgb(path: str | Path) -> Tensor:
    """The image at ``path`` as a uint8 3×H×W tensor (palette, grey and alpha images converted to RGB)."""
    with Image.open(path) as image:
        return v2.functional.pil_to_tensor(image.convert("RGB"))


def to_signed_unit() -> v2.Transform:
    """uint8 [0, 255] → float32 [-1, 1]."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])


def resize_center_crop(image_size: int) -> v2.Transform:
    """Shorter side → ``image_size`` (bicubic, antialiased: PIL's ``resize`` default), centre square, [-1, 1]."""
    return v2.Compose(
        [
            v2.Resize(image_size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.CenterCrop(image_size),
            to_signed_unit(),
        ]
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
    """

    def __init__(self, files: Sequence[Path], transform: Transform, root: Path) -> None:
        self.files = list(files)
        self.transform = transform
        self.root = root
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.files)

    def _name(self, index: int) -> str:
        path = self.files[index]
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def __getitem__(self, index: int) -> Tensor:
        return self.load(index)[1]

    def load(self, index: int) -> tuple[int, Tensor]:
        """(index of the file actually read, its image): a replacement keeps its own index, so labelled subclasses
        return the label of the image they read (the Age-cGAN seed kept the ages of skipped files: misaligned)."""
        for attempt in range(MAX_CONSECUTIVE_SKIPS):
            i = (index + attempt) % len(self.files)
            try:
                return i, self.transform(read_rgb(self.files[i]))
            except DECODE_ERRORS as err:
                if not self.skipped:
                    warnings.warn(
                        f"unreadable image {self._name(i)} ({type(err).__name__}: {err}): skipped, the next image "
                        "takes its place in the batch (further skips are counted in .skipped, not warned)",
                        stacklevel=2,
                    )
                self.skipped.append(self._name(i))
        raise RuntimeError(
            f"{MAX_CONSECUTIVE_SKIPS} consecutive unreadable images from {self._name(index)} on in {self.root}: "
            "the data are damaged; re-extract or re-download them"
        )


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


def image_loader(dataset: Dataset, batch_size: int, shuffle: bool, drop_last: bool, num_workers: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
