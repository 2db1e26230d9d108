"""Any folder of images (searched recursively) as an unlabelled LightningDataModule — e.g. the anime faces of
*GAN Projects* ch. 4 after ``lightning-gans prepare anime-faces SRC DST``.

Files ending in .jpg/.jpeg/.png/.bmp/.webp (any case) under ``<data_dir>/<folder>`` (``folder`` may also be an
absolute path) are resized so the shorter side is ``image_size`` (bicubic, antialiased), centre-cropped to a
square and mapped to [-1, 1]. Batches are float32 ``B×3×image_size×image_size`` tensors (no labels).

Unreadable files — decision: **checked at setup, guarded lazily.** ``setup()`` opens every file with PIL and
runs ``Image.verify()`` (header and structure checks, no pixel decode, so it is cheap), drops those that
fail and reports them in *one* warning (count + the first names). A file that passes ``verify()`` but still fails
to decode (a truncated JPEG body) is replaced in its batch by the next readable image, so batch shapes never
change and a long run never stops on one bad file; it is warned about once per process. ``verify=False`` skips the
setup pass (only the lazy guard remains). A folder with no readable image is one clear error.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from datamodules._images import (
    IMAGE_EXTENSIONS,
    ImageFiles,
    RealImages,
    describe_files,
    image_loader,
    resize_center_crop,
    verify_images,
)
from datamodules._loading import LoaderOptions, Workers
from datamodules._paths import resolve_data_dir
from lightning_gans.errors import DatasetNotFoundError


def find_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursive, extensions in any case), sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


class ImageFolderDataModule(LoaderOptions, pl.LightningDataModule):
    """Unlabelled images from a folder tree, one "train" split (see the module docstring; loader options:
    :mod:`datamodules._loading`; ``cache``: decoded once into :mod:`datamodules._cache`)."""

    name = "image_folder"

    def __init__(
        self,
        folder: str = "anime-faces",
        data_dir: str | None = None,
        image_size: int = 64,
        verify: bool = True,
        batch_size: int = 128,
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
        self.data_dir = resolve_data_dir(data_dir)
        self.root = Path(folder).expanduser() if Path(folder).expanduser().is_absolute() else self.data_dir / folder
        self.name = Path(folder).name or self.name  # protocols and logs name the dataset by its folder
        self.image_size, self.verify = image_size, verify
        self.batch_size, self.drop_last, self.shuffle = batch_size, drop_last, shuffle
        self.set_loader_options(num_workers, persistent_workers, pin_memory, prefetch_factor)
        self.cache, self.cache_dir = cache, cache_dir
        self.skipped: list[str] = []
        self._dataset: ImageFiles | None = None

    def _not_found(self, what: str) -> DatasetNotFoundError:
        return DatasetNotFoundError(
            f"{what}. Expected image files ({', '.join(IMAGE_EXTENSIONS)}; subfolders are searched) in "
            f"{self.root.resolve()}. Set --data.folder=<folder under the data root or an absolute path> and/or "
            "--data.data_dir / LIGHTNING_GANS_DATA. Anime faces: crop a folder of downloaded pictures with "
            f"`lightning-gans prepare anime-faces SRC {self.root}`."
        )

    def _load(self) -> ImageFiles:
        if self._dataset is None:
            if not self.root.is_dir():
                raise self._not_found(f"image folder {self.root} does not exist")
            files = find_images(self.root)
            if not files:
                raise self._not_found(f"no image files in {self.root}")
            if self.verify:
                files, self.skipped = verify_images(files, self.root)
                if self.skipped:
                    warnings.warn(
                        f"{self.root}: skipped {describe_files(self.skipped)}: not readable as images",
                        stacklevel=2,
                    )
                if not files:
                    raise self._not_found(f"none of the image files in {self.root} is readable")
            self._dataset = ImageFiles(files, resize_center_crop(self.image_size), self.root)
        if self.cache and self._dataset.cache is None:
            self._dataset.use_cache(
                f"{self.name}-{self.image_size}", self.cache_dir, self.resolved_num_workers(decoding=True)
            )
        return self._dataset

    def decoded_caches(self) -> list:
        """The decoded caches in use (``cache: true``, after setup)."""
        return [self._dataset.cache] if self._dataset is not None and self._dataset.cache is not None else []

    def prepare_data(self) -> None:
        """Nothing to download: fail early, with what to do, when the folder is missing or empty; with ``cache``,
        build the decoded cache (local rank 0, before the other ranks' setup)."""
        self._load()

    def setup(self, stage: str | None = None) -> None:
        """List (and, with ``verify``, check) the files once; open the decoded cache with ``cache``. Idempotent."""
        self._load()

    def real_images(self, split: str = "train") -> tuple[RealImages, None]:
        """All images as a lazy, tensor-indexable view in [-1, 1]; a folder has one split, ``train``."""
        if split not in ("train", "all"):
            raise ValueError(f"an image folder has one split, 'train' (the whole folder); got split={split!r}")
        return RealImages(self._load()), None

    def train_dataloader(self) -> DataLoader:
        return image_loader(self._load(), self.batch_size, self.shuffle, self.drop_last, self.loader_kwargs(), self)
