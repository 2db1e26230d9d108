"""pix2pix-style paired translation sets (Isola et al. 2017): edges2handbags, edges2shoes, … (LightningDataModule).

Layout: ``<data_dir>/<dataset>/train/*.jpg`` and ``<data_dir>/<dataset>/val/*.jpg`` (``dataset`` may also be an
absolute path), each file holding domain A (left half) and domain B (right half) side by side — the pix2pix
archives are 512×256 JPGs with the edges on the left. ``benchmarks/make_mnist_edges.py`` writes the same format.
The pix2pix sets have no test split: ``"test"`` means ``val/`` here.

Download (``download=True``): the pix2pix tarball ``<name>.tar.gz`` (edges2handbags: the DiscoGAN chapter's URL
``people.eecs.berkeley.edu/~tinghuiz/projects/pix2pix/datasets/edges2handbags.tar.gz``, now served from
``efrosgans.eecs.berkeley.edu``), extracted into the data root. Offline, one :class:`DatasetNotFoundError` names
the missing folders and the commands to get them.

Batches are ``{"A": N×3×S×S, "B": N×3×S×S}`` float32 in [-1, 1] (S = ``image_size``):

* ``mode="paired"`` — A_i and B_i are the two halves of the same JPG;
* ``mode="unpaired"`` — A and B are shuffled independently every epoch, as DiscoGAN trains (the chapter stacks the
  independently shuffled A and B lists).

Training transform: each half resized to S×S (DiscoGAN: 64, ``load_size = fine_size``, no crop) — or, with
``load_size``, to load_size² then a random S×S crop (pix2pix: 286 → 256) — and a horizontal flip (p = 0.5) drawn
once for A and B together (the DiscoGAN repository flips the stacked A|B pair). Validation: ``val/`` in file order,
A_i with B_i, resize only. ``max_images_per_epoch`` caps an epoch (the DiscoGAN chapter: ``train_size`` = 10,000 →
``min(|A|, |B|, 10000) // 64`` = 156 batches of 64 with ``drop_last``), re-drawn every epoch.
"""

from __future__ import annotations

from typing import Literal

from datamodules._images import first_readable, read_rgb
from datamodules._loading import Workers
from datamodules._pair_sampling import images_per_epoch
from datamodules._translation import DomainSource, TranslationDataModule, list_images
from lightning_gans.errors import DatasetNotFoundError

PIX2PIX_URLS = (
    "https://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz",
    "http://people.eecs.berkeley.edu/~tinghuiz/projects/pix2pix/datasets/{name}.tar.gz",
)
PIX2PIX_DATASETS = ("edges2handbags", "edges2shoes", "facades", "cityscapes", "maps", "night2day")
SPLITS = ("train", "val")
MODES = ("paired", "unpaired")


class PairedDataModule(TranslationDataModule):
    """Side-by-side A|B JPGs in ``train/`` and ``val/`` (see the module docstring)."""

    name = "paired"
    ARCHIVE_URLS = PIX2PIX_URLS
    KNOWN = PIX2PIX_DATASETS
    SPLIT_ALIASES = {"test": "val", "valid": "val"}
    joint = True
    KIND, FAMILY, EXAMPLE = "paired", "pix2pix", "edges2handbags"
    EXPECTED = "pix2pix side-by-side JPGs (domain A left, B right): {root}/train/*.jpg and {root}/val/*.jpg"
    EXTRACT = "tar -xzf {archive} -C {parent}"

    def __init__(
        self,
        dataset: str = "edges2handbags",
        data_dir: str | None = None,
        mode: Literal["paired", "unpaired"] = "paired",
        image_size: int = 64,
        load_size: int | None = None,
        flip: bool = True,
        interpolation: str = "bicubic",
        max_images_per_epoch: int | None = None,
        batch_size: int = 64,
        num_workers: Workers = "auto",
        download: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        prefetch_factor: int = 2,
        cache: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be 'paired' or 'unpaired', got {mode!r}")
        super().__init__(
            dataset, data_dir, image_size, load_size, flip, interpolation, max_images_per_epoch, batch_size,
            num_workers, download, drop_last, seed, (persistent_workers, pin_memory, prefetch_factor), cache, cache_dir,
        )  # fmt: skip
        self.save_hyperparameters()
        self.mode = mode
        self.paired = mode == "paired"
        images_per_epoch(1, 1, "shorter", max_images_per_epoch)  # validates the cap now, not at the first epoch

    def missing(self) -> list[str]:
        return self._empty_or_absent(SPLITS)

    def sources(self, split: str) -> tuple[DomainSource, DomainSource]:
        if split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'val' (or 'test' = 'val'), got {split!r}")
        files = list_images(self.root / split)
        first, (height, width) = first_readable(
            lambda k: read_rgb(files[k % len(files)]).shape[-2:],
            lambda k: str(files[k % len(files)]),
            None,
            self.root / split,
        )  # the layout is read from the first file that decodes (a damaged one is skipped in training too)
        if width < 2 * height * 0.9 or width % 2:
            raise DatasetNotFoundError(
                f"{files[first]} is {width}×{height}: not a side-by-side A|B image (expected width = 2 × height, e.g. "
                "the pix2pix 512×256). A folder of separate domain images needs UnpairedDataModule "
                "(trainA/trainB/testA/testB)."
            )
        return DomainSource(files, "A"), DomainSource(files, "B")

    def train_length(self, n_a: int, n_b: int) -> int:
        return images_per_epoch(n_a, n_b, "shorter", self.max_images_per_epoch)
