"""MNIST (LeCun et al. 1998) as an in-memory LightningDataModule, read by ``torchvision.datasets.MNIST``.

Files live in ``<data_dir>/MNIST/raw/`` (torchvision's layout). Missing files are downloaded (``.gz``, md5-checked
against torchvision's list, unpacked beside) when ``download=True`` and a mirror is reachable; otherwise one
:class:`DatasetNotFoundError` explains what to put where. Images are served as float32 N×1×28×28 in [-1, 1]
(``x / 127.5 - 1``), labels int64.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler, TensorDataset

from datamodules._loading import LoaderOptions, Workers
from datamodules._paths import resolve_data_dir
from datamodules._resume import ResumableOrder, ResumableRandomSampler, make_loader, resumable_loader
from lightning_gans.download import PROBE_TIMEOUT_S, fetch, first_reachable
from lightning_gans.errors import DatasetNotFoundError, DownloadError

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_GZ_MD5 = {  # md5 of each <name>.gz (torchvision's MNIST.resources)
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
DOWNLOAD_TIMEOUT_S = 60.0  # per connect/read: bounds a stalled connection


def _reachable_mirrors() -> tuple[str, ...]:
    """The mirrors from the first one answering an HTTP HEAD for the first file within PROBE_TIMEOUT_S on (honours
    proxies); empty when none answers."""
    probes = [f"{mirror}{MNIST_FILES[0]}.gz" for mirror in MNIST_MIRRORS]
    try:
        return MNIST_MIRRORS[probes.index(first_reachable(probes, PROBE_TIMEOUT_S)) :]
    except DownloadError:
        return ()


class MNISTDataModule(LoaderOptions, pl.LightningDataModule):
    """MNIST train (60k) / test (10k) splits; ``val_dataloader`` and ``test_dataloader`` serve the test split.

    Batches are ``(images [B×1×28×28] float32 in [-1, 1], labels [B] int64)``.
    """

    in_memory = True  # num_workers auto → 0 (batches are slices of in-memory tensors)
    name = "mnist"
    num_classes = 10
    image_shape = (1, 28, 28)

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 256,
        num_workers: Workers = "auto",
        download: bool = True,
        drop_last: bool = False,
        shuffle: bool = True,
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        prefetch_factor: int = 2,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = resolve_data_dir(data_dir)
        self.batch_size = batch_size
        self.set_loader_options(num_workers, persistent_workers, pin_memory, prefetch_factor)
        self.download = download
        self.drop_last = drop_last
        self.shuffle = shuffle
        self._data: dict[str, tuple[Tensor, Tensor]] = {}

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "MNIST" / "raw"

    # ------------------------------------------------------------------ files
    def _missing_files(self) -> tuple[list[str], list[str]]:
        """Names still missing after unpacking any ``<name>.gz`` found next to them; plus unpack notes."""
        missing, notes = [], []
        for name in MNIST_FILES:
            path, gz = self.raw_dir / name, self.raw_dir / f"{name}.gz"
            if path.is_file():
                continue
            if gz.is_file():
                tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
                try:
                    with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    os.replace(tmp, path)  # atomic: safe if several ranks unpack at once
                    continue
                except (OSError, EOFError) as err:
                    tmp.unlink(missing_ok=True)
                    notes.append(f"could not unpack {gz.name}: {err}")
            missing.append(name)
        return missing, notes

    def _not_found(self, missing: list[str], reason: str) -> DatasetNotFoundError:
        raw = self.raw_dir.resolve()
        urls = " ".join(f"{MNIST_MIRRORS[0]}{name}.gz" for name in missing)
        return DatasetNotFoundError(
            f"MNIST not found in {raw} ({reason}).\n"
            f"  Missing: {', '.join(missing)}\n"
            f"  Expected in {raw}: {', '.join(MNIST_FILES)} (or the same .gz, unpacked automatically)\n"
            f"  Download from {MNIST_MIRRORS[0]} (mirror: {MNIST_MIRRORS[1]}), e.g.\n"
            f"    mkdir -p {raw} && cd {raw} && wget {urls} && gunzip -f *.gz\n"
            f"  Or point to a folder that contains MNIST/raw/: make train DATA_DIR=/path/to/data, "
            f"--data.data_dir=/path/to/data, or LIGHTNING_GANS_DATA=/path/to/data."
        )

    def _download(self, missing: list[str]) -> str | None:
        """Fetch the ``.gz`` of each missing file (md5-checked) into ``raw_dir``; None on success, else a one-line
        reason. ``_missing_files`` unpacks them."""
        mirrors = _reachable_mirrors()
        if not mirrors:
            hosts = ", ".join(urlparse(m).hostname or m for m in MNIST_MIRRORS)
            return f"download=True but no MNIST mirror reachable ({hosts}): offline?"
        try:
            for name in missing:
                urls = [f"{mirror}{name}.gz" for mirror in mirrors]
                gz, md5 = self.raw_dir / f"{name}.gz", MNIST_GZ_MD5[name]
                fetch(urls, gz, what=f"MNIST {name}.gz", md5=md5, timeout_s=DOWNLOAD_TIMEOUT_S, progress=True)
        except DownloadError as err:
            return f"download failed: {err.reason}"
        return None

    def prepare_data(self) -> None:
        """Download missing files (``download=True``) or raise one :class:`DatasetNotFoundError`."""
        missing, notes = self._missing_files()
        if not missing:
            return
        if not self.download:
            reason = "download=False"
        else:
            self.raw_dir.mkdir(parents=True, exist_ok=True)
            reason = self._download(missing) or "download reported success"
            missing, more = self._missing_files()
            notes += more
            if not missing:
                return
        raise self._not_found(missing, "; ".join([reason, *notes])) from None

    # ------------------------------------------------------------------- data
    def _load(self, split: str) -> tuple[Tensor, Tensor]:
        if split not in self._data:
            if split not in ("train", "test"):
                raise ValueError(f"split must be 'train' or 'test', got {split!r}")
            missing, notes = self._missing_files()
            if missing:
                reason = "; ".join(["setup() found files missing; prepare_data() downloads them", *notes])
                raise self._not_found(missing, reason) from None
            for path in self.source_files(split):
                self._check_idx(path)
            from torchvision.datasets import MNIST

            ds = MNIST(str(self.data_dir), train=split == "train", download=False)
            images = ds.data.unsqueeze(1).to(torch.float32).div_(127.5).sub_(1.0)
            self._data[split] = (images.contiguous(), ds.targets.to(torch.int64))
        return self._data[split]

    def setup(self, stage: str | None = None) -> None:
        """Load the splits ``stage`` needs into memory (fit: train + test; others: test). Idempotent."""
        if stage in (None, "fit"):
            self._load("train")
        self._load("test")

    def real_images(self, split: str = "test") -> tuple[Tensor, Tensor]:
        """The in-memory ``(images, labels)`` of ``split`` ("train" or "test"), loading it if needed."""
        return self._load(split)

    def _check_idx(self, path: Path) -> None:
        """One clear DatasetNotFoundError for a truncated, padded or foreign IDX file (magic, dims, byte size)."""
        images = "images" in path.name
        magic, dims = (2051, 3) if images else (2049, 1)
        data = path.read_bytes()[: 4 + 4 * dims]
        fix = f"delete it and rerun (prepare_data downloads it again), or: {self._refetch_hint(path.name)}"
        found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
        if found != magic or len(data) < 4 + 4 * dims:
            raise DatasetNotFoundError(
                f"{path} is not an MNIST IDX {'image' if images else 'label'} file (magic {found}, expected {magic}): "
                f"{fix}"
            )
        shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
        expected = 4 + 4 * dims + math.prod(shape)
        if path.stat().st_size != expected or (images and shape[1:] != [28, 28]):
            raise DatasetNotFoundError(
                f"{path} is truncated or damaged: {path.stat().st_size} bytes, its header "
                f"({'×'.join(map(str, shape))}) needs {expected}: {fix}"
            )

    def _refetch_hint(self, name: str) -> str:
        return f"cd {self.raw_dir.resolve()} && wget {MNIST_MIRRORS[0]}{name}.gz && gunzip -f {name}.gz"

    def source_files(self, split: str = "test") -> list[Path]:
        """The raw IDX files behind ``split`` (images, labels): hashed into a stats file's manifest."""
        prefix = {"train": "train", "test": "t10k"}.get(split)
        if prefix is None:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return [self.raw_dir / f"{prefix}-images-idx3-ubyte", self.raw_dir / f"{prefix}-labels-idx1-ubyte"]

    def _loader(self, split: str, shuffle: bool, drop_last: bool) -> DataLoader:
        dataset = TensorDataset(*self._load(split))
        return make_loader(dataset, self.batch_size, shuffle, drop_last, self.loader_kwargs(), self)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=self.shuffle, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, drop_last=False)


# ---------------------------------------------------------------------------------------------- semi-supervised
def semi_supervised_split(
    labels: Tensor, num_labelled: int = 100, selection: str = "first", seed: int = 0, num_classes: int = 10
) -> tuple[Tensor, Tensor]:
    """(labelled indices, unlabelled indices) of a training set with ``labels``: disjoint, together all indices.

    ``selection="first"``: the first ``num_labelled`` images, as *GANs in Action* ch. 7 does (not class-balanced;
    MNIST's first 100 hold 8–14 of each digit). ``"balanced"``: ``num_labelled / num_classes`` images of every
    class, drawn with a ``torch.Generator`` seeded by ``seed`` (the protocol of Salimans et al. 2016).
    """
    n = len(labels)
    if not 0 < num_labelled < n:
        raise ValueError(f"num_labelled must be in [1, {n - 1}] for a training set of {n} images, got {num_labelled}")
    if selection == "first":
        labelled = torch.arange(num_labelled)
    elif selection == "balanced":
        if num_labelled % num_classes:
            raise ValueError(f"a balanced split needs num_labelled divisible by {num_classes}, got {num_labelled}")
        per_class = num_labelled // num_classes
        generator = torch.Generator().manual_seed(seed)
        chosen = []
        for c in range(num_classes):
            members = torch.nonzero(labels == c).flatten()
            if len(members) < per_class:
                raise ValueError(f"class {c} has {len(members)} training images, fewer than {per_class} per class")
            chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
        labelled = torch.cat(chosen).sort().values
    else:
        raise ValueError(f"selection must be 'first' or 'balanced', got {selection!r}")
    mask = torch.ones(n, dtype=torch.bool)
    mask[labelled] = False
    return labelled, torch.nonzero(mask).flatten()


class _DrawWithReplacement(ResumableOrder, Sampler[int]):
    """``num_samples`` indices drawn uniformly with replacement from ``range(n)`` (the book's ``randint``), from an
    epoch seed drawn from the global RNG (recorded, so a resumed run replays the epoch: ``datamodules._resume``).

    Not a ``RandomSampler``: under DDP Lightning wraps a custom sampler (each rank takes a shard of the draws)
    instead of replacing it with a ``DistributedSampler`` that would drop the replacement and the length.
    """

    def __init__(self, n: int, num_samples: int) -> None:
        self.n, self.num_samples = n, num_samples

    def __iter__(self) -> Iterator[int]:
        seed, skip = self.start_epoch()
        draws = torch.randint(0, self.n, (self.num_samples,), generator=torch.Generator().manual_seed(seed))
        return iter(draws[skip:].tolist())

    def __len__(self) -> int:
        return self.num_samples


def validation_split(unlabelled: Tensor, fraction: float, n_train: int, seed: int) -> tuple[Tensor, Tensor]:
    """(validation indices, remaining unlabelled indices): ``round(fraction · n_train)`` images drawn from the
    unlabelled pool with a ``torch.Generator`` seeded by ``seed + 1`` (independent of the labelled draw), both
    sorted. ``fraction`` 0: no validation images; its range [0, 1) is checked by the datamodule's ``__init__``."""
    count = round(fraction * n_train)
    if fraction > 0 and not 0 < count < len(unlabelled):
        raise ValueError(
            f"validation_fraction={fraction} gives {count} validation images of {len(unlabelled)} unlabelled ones: "
            "it must leave at least one image in each part"
        )
    order = torch.randperm(len(unlabelled), generator=torch.Generator().manual_seed(seed + 1))
    return unlabelled[order[:count]].sort().values, unlabelled[order[count:]].sort().values


class SemiSupervisedMNISTDataModule(MNISTDataModule):
    """MNIST for semi-supervised learning (*GANs in Action* ch. 7): ``num_labelled`` labelled training images,
    the rest without labels; validation on a split carved from the unlabelled pool, test on all 10,000 test images
    (``(images, labels)`` batches).

    **Validation split.** ``validation_fraction`` f > 0 takes ``round(f · 60,000)`` images out of the unlabelled
    pool (seeded by ``split_seed``; f = 1/12: 5,000 images, the classic 55k/5k MNIST split). Their labels are used
    by validation only — model selection (``best.ckpt`` by ``val_accuracy``) and early stopping — never in
    training; the test images are used only by ``test`` and the end-of-fit test report. f = 0 validates on the
    test images (the book's loop, which reports test accuracy as it trains): not for selection.

    Training batches are dicts ``{"labelled": [x, y], "unlabelled": [x]}`` (the unlabelled part carries no labels).
    ``batches_per_epoch=None``: an epoch is one shuffled pass over the unlabelled pool; an integer k: an epoch is k
    batches drawn with replacement from both parts, as the book's loop does (``np.random.randint``), so
    validation every epoch is validation every k iterations. Labelled batches are always drawn with replacement.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 32,
        num_labelled: int = 100,
        selection: str = "first",
        split_seed: int = 0,
        validation_fraction: float = 0.0,
        batches_per_epoch: int | None = None,
        num_workers: Workers = "auto",
        download: bool = True,
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        prefetch_factor: int = 2,
    ) -> None:
        super().__init__(
            data_dir=data_dir, batch_size=batch_size, num_workers=num_workers, download=download,
            persistent_workers=persistent_workers, pin_memory=pin_memory, prefetch_factor=prefetch_factor,
        )  # fmt: skip
        # Only this class's arguments (checkpoints rebuild the datamodule from them): drop the parent's extra ones.
        self.save_hyperparameters(ignore=["drop_last", "shuffle"])
        if selection not in ("first", "balanced"):
            raise ValueError(f"selection must be 'first' or 'balanced', got {selection!r}")
        if num_labelled < 1 or batch_size < 1 or (batches_per_epoch is not None and batches_per_epoch < 1):
            raise ValueError("num_labelled, batch_size and batches_per_epoch must be >= 1")
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
        self.num_labelled, self.selection, self.split_seed = num_labelled, selection, split_seed
        self.validation_fraction = validation_fraction
        self.validation_indices: Tensor | None = None
        self.batches_per_epoch = batches_per_epoch
        self.labelled_indices: Tensor | None = None
        self.unlabelled_indices: Tensor | None = None

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if stage in (None, "fit") and self.labelled_indices is None:
            labels = self._load("train")[1]
            self.labelled_indices, unlabelled = semi_supervised_split(
                labels, self.num_labelled, self.selection, self.split_seed, self.num_classes
            )
            self.validation_indices, self.unlabelled_indices = validation_split(
                unlabelled, self.validation_fraction, len(labels), self.split_seed
            )

    def val_dataloader(self) -> DataLoader:
        """The validation split (``validation_fraction`` > 0), else the test images."""
        if self.validation_fraction == 0:
            return super().val_dataloader()
        if self.validation_indices is None:
            self.setup("fit")
        images, labels = self._load("train")
        dataset = TensorDataset(images[self.validation_indices], labels[self.validation_indices])
        return make_loader(dataset, self.batch_size, False, False, self.loader_kwargs(), self)

    def _part_loader(self, dataset: TensorDataset, sampler: Sampler) -> DataLoader:
        return resumable_loader(dataset, sampler, self.batch_size, False, self.loader_kwargs(), self)

    def train_dataloader(self) -> dict[str, DataLoader]:
        if self.labelled_indices is None:
            self.setup("fit")
        images, labels = self._load("train")
        labelled = TensorDataset(images[self.labelled_indices], labels[self.labelled_indices])
        unlabelled = TensorDataset(images[self.unlabelled_indices])
        if self.batches_per_epoch is None:
            unlabelled_sampler: Sampler = ResumableRandomSampler(unlabelled)
            draws = math.ceil(len(unlabelled) / self.batch_size) * self.batch_size
        else:
            draws = self.batches_per_epoch * self.batch_size
            unlabelled_sampler = _DrawWithReplacement(len(unlabelled), draws)
        return {
            "labelled": self._part_loader(labelled, _DrawWithReplacement(len(labelled), draws)),
            "unlabelled": self._part_loader(unlabelled, unlabelled_sampler),
        }
