"""MNIST (LeCun et al. 1998) as an in-memory LightningDataModule, read by ``torchvision.datasets.MNIST``.

Files live in ``<data_dir>/MNIST/raw/`` (torchvision's layout). Missing files are downloaded when
``download=True`` and the network is reachable; otherwise one :class:`DatasetNotFoundError` explains
what to put where. Images are served as float32 N×1×28×28 in [-1, 1] (``x / 127.5 - 1``), labels int64.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from datamodules._paths import DatasetNotFoundError, resolve_data_dir

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
PROBE_TIMEOUT_S = 4.0  # per mirror: bounds the offline failure (DNS errors fail at once, stalls do not)
DOWNLOAD_SOCKET_TIMEOUT_S = 60.0  # torchvision's urlopen has no timeout; bound stalled connections


def _reachable_mirror() -> str | None:
    """First mirror answering an HTTP HEAD for the first file within PROBE_TIMEOUT_S (honours proxies)."""
    for mirror in MNIST_MIRRORS:
        request = urllib.request.Request(f"{mirror}{MNIST_FILES[0]}.gz", method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S):
                return mirror
        except (OSError, ValueError):  # URLError/HTTPError/timeouts are OSErrors
            continue
    return None


class MNISTDataModule(pl.LightningDataModule):
    """MNIST train (60k) / test (10k) splits; ``val_dataloader`` and ``test_dataloader`` serve the test split.

    Batches are ``(images [B×1×28×28] float32 in [-1, 1], labels [B] int64)``.
    """

    name = "mnist"
    num_classes = 10
    image_shape = (1, 28, 28)

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 256,
        num_workers: int = 0,
        download: bool = True,
        drop_last: bool = False,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = resolve_data_dir(data_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
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

    def _download(self) -> str | None:
        """Try torchvision's download; return None on success, else a one-line reason."""
        from torchvision.datasets import MNIST

        if _reachable_mirror() is None:
            hosts = ", ".join(urlparse(m).hostname or m for m in MNIST_MIRRORS)
            return f"download=True but no MNIST mirror reachable ({hosts}): offline?"
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_SOCKET_TIMEOUT_S)
        try:
            MNIST(str(self.data_dir), train=False, download=True)
        except Exception as err:  # torchvision raises RuntimeError/URLError/OSError with long texts
            first = str(err).strip().splitlines()
            return f"download failed: {type(err).__name__}: {' '.join(first[:3]) or 'no message'}"
        finally:
            socket.setdefaulttimeout(previous)
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
            reason = self._download() or "download reported success"
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

    def _loader(self, split: str, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            TensorDataset(*self._load(split)),
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=self.shuffle, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, drop_last=False)
