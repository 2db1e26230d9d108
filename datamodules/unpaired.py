"""CycleGAN-style unpaired translation sets (Zhu et al. 2017) — horse2zebra, apple2orange, … (LightningDataModule).

Layout: ``<data_dir>/<dataset>/{trainA,trainB,testA,testB}/*.jpg`` (``dataset`` may also be an absolute path) —
the CycleGAN archives' layout; ``benchmarks/make_mnist_edges.py --layout unpaired`` writes it too.
horse2zebra: trainA 1,067 horses, trainB 1,334 zebras, testA 120, testB 140, 256×256 RGB.

Download (``download=True``): the authors' ``<name>.zip`` (the paper's
``people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/``, now served from ``efrosgans.eecs.berkeley.edu``),
extracted into the data root. Offline, one :class:`DatasetNotFoundError` names the missing folders and the commands.

Batches are ``{"A": N×3×S×S, "B": N×3×S×S}`` float32 in [-1, 1] (S = ``image_size``), A and B drawn independently.

* Training transform (per image, per domain): resize to ``load_size``² → random S×S crop → random horizontal flip
  → [-1, 1]. Defaults are the paper's 286 → 256 (the TF2 tutorial's ``random_jitter``); *GANs in Action* ch. 9
  uses 128 with no crop (``image_size=128, load_size=null``). ``interpolation``: bicubic (the authors' PyTorch
  code) or nearest (the TF2 tutorial).
* Test/validation: resize to S² + [-1, 1] only; ``val_dataloader`` zips testA and testB in file order up to the
  shorter one.
* ``epoch_length``: ``"longer"`` (default) — an epoch visits every image of the larger domain once and cycles a
  fresh permutation of the other, as the CycleGAN authors' code does (its unaligned dataset's length is
  ``max(|A|, |B|)`` with a random partner from the other domain); ``"shorter"`` stops at the smaller domain, as the
  TF2 tutorial's ``zip`` (1,067 steps on horse2zebra). ``max_images_per_epoch`` caps either.
"""

from __future__ import annotations

from typing import Literal

from datamodules._loading import Workers
from datamodules._pair_sampling import images_per_epoch
from datamodules._translation import DomainSource, TranslationDataModule, list_images

CYCLEGAN_URLS = (
    "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip",
    "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/{name}.zip",
)
CYCLEGAN_DATASETS = (
    "apple2orange",
    "summer2winter_yosemite",
    "horse2zebra",
    "monet2photo",
    "cezanne2photo",
    "ukiyoe2photo",
    "vangogh2photo",
    "maps",
    "cityscapes",
    "facades",
    "iphone2dslr_flower",
    "ae_photos",
)
FOLDERS = ("trainA", "trainB", "testA", "testB")


class UnpairedDataModule(TranslationDataModule):
    """Separate domain folders trainA/trainB/testA/testB (see the module docstring)."""

    name = "unpaired"
    ARCHIVE_URLS = CYCLEGAN_URLS
    KNOWN = CYCLEGAN_DATASETS
    SPLIT_ALIASES = {"val": "test", "valid": "test"}
    paired = False
    joint = False
    KIND, FAMILY, EXAMPLE = "unpaired", "CycleGAN", "horse2zebra"
    EXPECTED = "one image per file in {root}/trainA, trainB, testA, testB (A and B are the two domains)"
    EXTRACT = "unzip {archive} -d {parent}"
    MNIST_LAYOUT = " --layout unpaired"

    def __init__(
        self,
        dataset: str = "horse2zebra",
        data_dir: str | None = None,
        image_size: int = 256,
        load_size: int | None = 286,
        flip: bool = True,
        interpolation: str = "bicubic",
        epoch_length: Literal["longer", "shorter"] = "longer",
        max_images_per_epoch: int | None = None,
        batch_size: int = 1,
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
        super().__init__(
            dataset, data_dir, image_size, load_size, flip, interpolation, max_images_per_epoch, batch_size,
            num_workers, download, drop_last, seed, (persistent_workers, pin_memory, prefetch_factor), cache, cache_dir,
        )  # fmt: skip
        self.save_hyperparameters()
        images_per_epoch(1, 1, epoch_length, max_images_per_epoch)  # validates both options now
        self.epoch_length = epoch_length

    def missing(self) -> list[str]:
        return self._empty_or_absent(FOLDERS)

    def sources(self, split: str) -> tuple[DomainSource, DomainSource]:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test' (or 'val' = 'test'), got {split!r}")
        return DomainSource(list_images(self.root / f"{split}A")), DomainSource(list_images(self.root / f"{split}B"))

    def train_length(self, n_a: int, n_b: int) -> int:
        return images_per_epoch(n_a, n_b, self.epoch_length, self.max_images_per_epoch)
