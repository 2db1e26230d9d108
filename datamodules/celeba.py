"""CelebA (Liu et al. 2015), aligned-and-cropped faces (178×218 JPGs), as a LightningDataModule.

Two on-disk layouts under the data root (``layout="auto"`` takes whichever exists, torchvision's first):

* **torchvision** — ``<root>/celeba/img_align_celeba/*.jpg`` + ``<root>/celeba/list_eval_partition.txt``
  (``000001.jpg 0`` per line). ``torchvision.datasets.CelebA(root, download=True)`` writes it (Google Drive,
  needs ``pip install gdown``; Drive quotas often refuse it).
* **Kaggle** (``jessicali9530/celeba-dataset``, used by the TF2 DCGAN faces seed) —
  ``<root>/celeba-dataset/img_align_celeba/img_align_celeba/*.jpg``; the archive also ships
  ``<root>/celeba-dataset/list_eval_partition.csv`` (header ``image_id,partition``), used when present.

Splits are the official ones: partition 0/1/2 = train/valid/test (162,770 / 19,867 / 19,962 images).
Without a partition file the split is taken from the file number, which is exactly the official partition
for the official names (000001–162770 train, 162771–182637 valid, 182638–202599 test); a warning says so.

The partition is read here rather than through ``torchvision.datasets.CelebA``, which refuses to load unless the
attribute, identity, bounding-box and landmark files are all present with their exact checksums — none of which
a GAN needs, and the Kaggle layout has none of them in that form. torchvision is used for the download.

Preprocessing: ``crop_box`` (left, upper, right, lower) in PIL's ``Image.crop`` convention — the faces seed's
``[25, 65, 153, 193]`` is the 128×128 face square, columns 25–152 and rows 65–192 — or, without a box, the
centre ``center_crop``² square (178: the full width); then resize to ``image_size`` (bicubic, antialiased)
and map to [-1, 1]. Batches are float32 ``B×3×image_size×image_size`` tensors (no labels).
``limit`` keeps the first ``limit`` training images (file order): the faces seed trains on 2,000.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from datamodules._images import (
    ImageFiles,
    RealImages,
    Staged,
    image_loader,
    read_rgb,
    resize_center_crop,
    to_signed_unit,
)
from datamodules._loading import LoaderOptions, Workers
from datamodules._paths import resolve_data_dir
from lightning_gans.download import PROBE_TIMEOUT_S, first_reachable, socket_timeout
from lightning_gans.errors import DatasetNotFoundError, DownloadError

SPLITS = {"train": 0, "valid": 1, "test": 2}
OFFICIAL_LAST = {0: 162770, 1: 182637, 2: 202599}  # last file number of each official partition
LAYOUTS = {
    # layout: (image folder, partition file) relative to the data root
    "torchvision": ("celeba/img_align_celeba", "celeba/list_eval_partition.txt"),
    "kaggle": ("celeba-dataset/img_align_celeba/img_align_celeba", "celeba-dataset/list_eval_partition.csv"),
}
PROBE_URL = "https://drive.google.com"
DOWNLOAD_TIMEOUT_S = 60.0  # torchvision's Google Drive download opens connections without a timeout


def read_partition(path: Path) -> dict[str, int]:
    """``{file name: partition}`` from ``list_eval_partition.txt`` (``name p`` lines) or Kaggle's ``.csv``."""
    rows: list[list[str]]
    with open(path, newline="") as handle:
        if path.suffix == ".csv":
            rows = [row for row in csv.reader(handle) if row]
            if rows and not rows[0][-1].strip().isdigit():
                rows = rows[1:]  # header: image_id,partition
        else:
            rows = [line.split() for line in handle if line.strip()]
    partition = {}
    for number, row in enumerate(rows, start=1):
        if len(row) != 2 or row[1].strip() not in ("0", "1", "2"):
            raise ValueError(
                f"{path}: line {number} is {' '.join(row)!r}; expected '<image name> <0|1|2>' "
                "(0 train, 1 valid, 2 test). Re-download the file."
            )
        partition[row[0].strip()] = int(row[1])
    return partition


def official_partition(names: list[str]) -> dict[str, int]:
    """The official split from file numbers (``000001.jpg`` … ``202599.jpg``), for layouts without the file."""
    partition, odd = {}, []
    for name in names:
        stem = Path(name).stem
        if not stem.isdigit() or not 1 <= int(stem) <= OFFICIAL_LAST[2]:
            odd.append(name)
            continue
        partition[name] = next(p for p, last in OFFICIAL_LAST.items() if int(stem) <= last)
    if odd:
        raise ValueError(
            f"no partition file and {len(odd)} images without an official CelebA number (e.g. {odd[0]}): "
            "add list_eval_partition.txt/.csv, or use datamodules.image_folder.ImageFolderDataModule"
        )
    return partition


class BoxCrop:
    """Crop the PIL box (left, upper, right, lower) out of a C×H×W tensor (a picklable transform)."""

    def __init__(self, left: int, upper: int, right: int, lower: int) -> None:
        self.left, self.upper, self.right, self.lower = left, upper, right, lower

    def __call__(self, image: Tensor) -> Tensor:
        return image[..., self.upper : self.lower, self.left : self.right]


class CelebADataModule(LoaderOptions, pl.LightningDataModule):
    """CelebA faces in [-1, 1] (see the module docstring for layouts, splits and crops; loader options:
    :mod:`datamodules._loading`; ``cache``: the training split decoded once into :mod:`datamodules._cache`)."""

    name = "celeba"

    def __init__(
        self,
        data_dir: str | None = None,
        layout: Literal["auto", "torchvision", "kaggle"] = "auto",
        image_size: int = 64,
        crop_box: list[int] | None = None,
        center_crop: int = 178,
        limit: int | None = None,
        batch_size: int = 64,
        num_workers: Workers = "auto",
        download: bool = True,
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
        if layout not in ("auto", *LAYOUTS):
            raise ValueError(f"layout must be 'auto', 'torchvision' or 'kaggle', got {layout!r}")
        if crop_box is not None:
            box = [int(v) for v in crop_box]
            if len(box) != 4 or not (0 <= box[0] < box[2] and 0 <= box[1] < box[3]):
                raise ValueError(f"crop_box is [left, upper, right, lower], left < right, upper < lower: {crop_box}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 (or None for every image), got {limit}")
        self.data_dir = resolve_data_dir(data_dir)
        self.layout, self.image_size, self.crop_box, self.center_crop = layout, image_size, crop_box, center_crop
        self.limit, self.batch_size = limit, batch_size
        self.download, self.drop_last, self.shuffle = download, drop_last, shuffle
        self.set_loader_options(num_workers, persistent_workers, pin_memory, prefetch_factor)
        self.cache, self.cache_dir = cache, cache_dir
        self._splits: dict[str, ImageFiles] = {}

    # ------------------------------------------------------------------ files
    def found_layout(self) -> str | None:
        """The first layout (``self.layout`` or, for ``auto``, torchvision then Kaggle) whose image folder exists."""
        candidates = list(LAYOUTS) if self.layout == "auto" else [self.layout]
        for layout in candidates:
            if (self.data_dir / LAYOUTS[layout][0]).is_dir():
                return layout
        return None

    def _not_found(self, reason: str) -> DatasetNotFoundError:
        root = self.data_dir.resolve()
        wanted = list(LAYOUTS) if self.layout == "auto" else [self.layout]
        lines = [f"CelebA not found under {root} ({reason}). Expected one of these layouts:"]
        if "torchvision" in wanted:
            lines += [
                f"  torchvision: {root}/celeba/img_align_celeba/000001.jpg … 202599.jpg",
                f"               {root}/celeba/list_eval_partition.txt",
                "    get it: pip install gdown, then this datamodule downloads it (download=True), or from",
                "    https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html → Align&Cropped Images (img_align_celeba.zip,",
                "    unzip into celeba/) and Eval/list_eval_partition.txt",
            ]
        if "kaggle" in wanted:
            lines += [
                f"  Kaggle:      {root}/celeba-dataset/img_align_celeba/img_align_celeba/000001.jpg …",
                f"               {root}/celeba-dataset/list_eval_partition.csv (optional; official split by number)",
                "    get it: kaggle datasets download -d jessicali9530/celeba-dataset, then unzip into celeba-dataset/",
            ]
        lines.append(
            "  Or point to the folder holding them: make train DATA_DIR=/path, --data.data_dir=/path, "
            "or LIGHTNING_GANS_DATA=/path."
        )
        return DatasetNotFoundError("\n".join(lines))

    def _download(self) -> str | None:
        """torchvision's CelebA download into ``<root>/celeba``; None on success, else a one-line reason."""
        try:
            import gdown  # noqa: F401  (torchvision's Google Drive download needs it)
        except ImportError:
            return "download=True but gdown is not installed (pip install gdown)"
        try:
            first_reachable(PROBE_URL, PROBE_TIMEOUT_S)
        except DownloadError:
            return f"download=True but {PROBE_URL} is not reachable: offline?"
        from torchvision.datasets import CelebA

        try:
            with socket_timeout(DOWNLOAD_TIMEOUT_S):
                CelebA(str(self.data_dir), split="all", target_type=[], download=True)
        except Exception as err:  # Drive quota pages, checksum mismatches, network errors
            return f"download failed: {type(err).__name__}: {' '.join(str(err).split()[:40])}"
        return None

    def prepare_data(self) -> None:
        """Download (``download=True``, torchvision layout) if no layout is present, or raise one clear error."""
        if self.found_layout() is not None:
            self._use_cache()  # on local rank 0 only, before the other ranks' setup: one build per node
            return
        reason = "download=False"
        if self.download and self.layout in ("auto", "torchvision"):
            reason = self._download() or "download reported success"
            if self.found_layout() is not None:
                self._use_cache()
                return
        raise self._not_found(reason) from None

    def _partition(self, layout: str, names: list[str]) -> dict[str, int]:
        path = self.data_dir / LAYOUTS[layout][1]
        if not path.is_file():
            warnings.warn(
                f"CelebA ({layout} layout): no {path.name} in {path.parent}; using the official split by file "
                "number (000001–162770 train, 162771–182637 valid, 182638–202599 test)",
                stacklevel=2,
            )
            return official_partition(names)
        partition = read_partition(path)
        missing = sorted(set(partition) - set(names))
        if missing:
            raise DatasetNotFoundError(
                f"{path} lists {len(missing)} images missing from {self.data_dir / LAYOUTS[layout][0]} "
                f"(first: {', '.join(missing[:5])}): the image archive is incomplete; extract it again"
            )
        return partition

    def _transform(self, first_image: Path) -> Staged:
        if self.crop_box is None:
            inner = resize_center_crop(self.image_size)
            stage = {"center_crop_first": self.center_crop, **inner.stage}
            return Staged(v2.Compose([v2.CenterCrop(self.center_crop), inner.fixed]), inner.rest, stage, batched=True)
        left, upper, right, lower = (int(v) for v in self.crop_box)
        height, width = read_rgb(first_image).shape[-2:]
        if right > width or lower > height:
            raise ValueError(
                f"crop_box {list(self.crop_box)} (left, upper, right, lower) exceeds the {width}×{height} images "
                f"(e.g. {first_image.name})"
            )
        resize = v2.Resize(self.image_size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)
        box = BoxCrop(left, upper, right, lower)
        stage = {"crop_box": [left, upper, right, lower], "resize_shorter": self.image_size,
                 "interpolation": "bicubic-antialias", "center_crop": self.image_size}  # fmt: skip
        return Staged(v2.Compose([box, resize, v2.CenterCrop(self.image_size)]), to_signed_unit(), stage, batched=True)

    def _load(self, split: str) -> ImageFiles:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if split not in self._splits:
            layout = self.found_layout()
            if layout is None:
                raise self._not_found("setup() found no images; prepare_data() downloads them")
            folder = self.data_dir / LAYOUTS[layout][0]
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if e.name.lower().endswith((".jpg", ".jpeg", ".png")))
            if not names:
                raise self._not_found(f"{folder} holds no .jpg images")
            partition = self._partition(layout, names)
            transform = self._transform(folder / names[0])
            for name, index in SPLITS.items():
                files = [folder / n for n in sorted(n for n, p in partition.items() if p == index)]
                if name == "train" and self.limit is not None:
                    files = files[: self.limit]
                self._splits[name] = ImageFiles(files, transform, folder)
        return self._splits[split]

    def _use_cache(self) -> None:
        """With ``cache``: the training split from its decoded cache (built here on first use)."""
        dataset = self._load("train")
        if self.cache and dataset.cache is None and len(dataset):
            limit = f"-first{self.limit}" if self.limit is not None else ""
            dataset.use_cache(f"celeba-train{limit}", self.cache_dir, self.resolved_num_workers(decoding=True))

    def decoded_caches(self) -> list:
        """The decoded caches in use (``cache: true``, after setup)."""
        return [c for c in [self._splits["train"].cache if "train" in self._splits else None] if c is not None]

    def setup(self, stage: str | None = None) -> None:
        """Read the partition and the file list (images are decoded lazily by the loaders, or come from the decoded
        cache). Idempotent."""
        dataset = self._load("train")
        if stage in (None, "fit") and len(dataset) == 0:
            raise DatasetNotFoundError(f"CelebA: the partition gives no training images in {self.data_dir}")
        self._use_cache()

    def real_images(self, split: str = "test") -> tuple[RealImages, None]:
        """The images of ``split`` (train/valid/test) as a lazy, tensor-indexable view in [-1, 1]; no labels."""
        return RealImages(self._load(split)), None

    def split_sizes(self) -> dict[str, int]:
        return {split: len(self._load(split)) for split in SPLITS}

    def train_dataloader(self) -> DataLoader:
        return image_loader(
            self._load("train"), self.batch_size, self.shuffle, self.drop_last, self.loader_kwargs(), self
        )

    def val_dataloader(self) -> DataLoader:
        return image_loader(self._load("valid"), self.batch_size, False, False, self.loader_kwargs())

    def test_dataloader(self) -> DataLoader:
        return image_loader(self._load("test"), self.batch_size, False, False, self.loader_kwargs())
