"""ShapeNet voxel volumes for the 3D-GAN (*GAN Projects* ch. 2; reference: gan-projects-and-dcgan.md §3).

Two on-disk formats under ``<data root>/<folder>`` (``folder="shapenet"`` by default):

* **3D ShapeNets** (Wu et al. 2015; the chapter's data) — ``3DShapeNetsCode.zip`` from
  http://3dshapenets.cs.princeton.edu/3DShapeNetsCode.zip (40 categories, academic use only), unzipped so that
  ``<folder>/3DShapeNets/volumetric_data/<category>/30/{train,test}/*.mat`` exist (``<folder>/volumetric_data/…``
  works too). Each file is read with ``scipy.io.loadmat(path)["instance"]`` (a 30³ occupancy grid), padded by one
  empty voxel on every side to 32³ and, for ``resolution=64``, upsampled ×2 with ``scipy.ndimage.zoom(order=0)``
  (nearest neighbour) — the chapter's pipeline, values stay {0, 1}. With ``download=True`` the archive is
  downloaded into ``<folder>/`` and extracted; a zip placed there by hand is extracted on first use.
* **ShapeNetCore ``.binvox``** — ``<folder>/<category>/**/*.binvox`` (e.g. ``02691156/<model id>/models/
  model_normalized.solid.binvox`` of ShapeNetCore v2; ``category`` is a synset id, or one of the names in
  :data:`SYNSETS`). ShapeNetCore needs a login at https://shapenet.org, so it is never downloaded. The grids
  (usually 128³) are reduced to ``resolution`` by max-pooling (a voxel is occupied when any voxel of its block is)
  or enlarged by nearest-neighbour repetition. ShapeNetCore has no split file: a model is in ``test`` when
  ``crc32(relative path) % 5 == 0`` (a fixed ~20 %), else in ``train``.

The ``.binvox`` reader is written from the format's documentation (https://www.patrickmin.com/binvox/binvox.html):
an ASCII header (``#binvox 1``, ``dim d h w``, ``translate``, ``scale``, ``data``), then (value, count) byte pairs
run-length encoding the voxels in x-z-y order (y fastest); volumes are returned as x-y-z arrays.

Batches are float32 ``B×1×R×R×R`` tensors of {0, 1} (no labels). Chapter defaults: ``categories=["airplane"]``,
the train split, batches in file order without shuffling, the remainder dropped.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from datamodules._images import RealImages, image_loader
from datamodules._loading import LoaderOptions, Workers
from datamodules._paths import mat_read_errors, resolve_data_dir
from lightning_gans.download import PROBE_TIMEOUT_S, extract, fetch, first_reachable
from lightning_gans.errors import DatasetNotFoundError, DownloadError, VoxelFormatError  # VoxelFormatError: old path

ARCHIVE_URL = "http://3dshapenets.cs.princeton.edu/3DShapeNetsCode.zip"
ARCHIVE_NAME = "3DShapeNetsCode.zip"
MAT_ROOTS = ("3DShapeNets/volumetric_data", "volumetric_data")  # under <folder>, first existing wins
SPLITS = ("train", "test")
RESOLUTIONS = (32, 64)
SYNSETS = {  # ShapeNetCore synset ids of common categories (names accepted for the binvox format)
    "airplane": "02691156",
    "car": "02958343",
    "chair": "03001627",
    "lamp": "03636649",
    "rifle": "04090263",
    "sofa": "04256520",
    "table": "04379243",
    "vessel": "04530566",
}
DOWNLOAD_TIMEOUT_S = 60.0  # per connect/read: bounds a stalled connection


# ---------------------------------------------------------------------------------------------- readers
def read_binvox(path: str | Path) -> np.ndarray:
    """A ``.binvox`` file as a bool array indexed [x, y, z] (see the module docstring for the format)."""
    data = Path(path).read_bytes()
    header: dict[str, list[str]] = {}
    offset = 0
    for _ in range(16):  # a handful of header lines, ending with "data"
        end = data.find(b"\n", offset)
        if end < 0:
            break
        words = data[offset:end].decode("ascii", errors="replace").strip().split()
        offset = end + 1
        if words:
            header[words[0]] = words[1:]
        if words[:1] == ["data"]:
            break
    if "#binvox" not in header or "dim" not in header or "data" not in header:
        raise VoxelFormatError(f"{path}: not a binvox file (expected '#binvox 1', 'dim d h w', … 'data' lines)")
    try:
        dims = tuple(int(v) for v in header["dim"])
    except ValueError:
        raise VoxelFormatError(f"{path}: binvox header 'dim {' '.join(header['dim'])}' is not three integers") from None
    pairs = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if len(dims) != 3 or len(pairs) % 2:
        raise VoxelFormatError(f"{path}: bad binvox header dims {dims} or odd run-length data")
    values, counts = pairs[0::2], pairs[1::2].astype(np.int64)
    flat = np.repeat(values.astype(bool), counts)
    if flat.size != int(np.prod(dims)):
        raise VoxelFormatError(f"{path}: run-length data holds {flat.size} voxels, dim {dims} needs {np.prod(dims)}")
    return flat.reshape(dims).transpose(0, 2, 1)  # stored x, z, y (y fastest) → x, y, z


def read_mat_instance(path: str | Path) -> np.ndarray:
    """``scipy.io.loadmat(path)["instance"]`` (the 3D ShapeNets 30³ grid) as a bool array."""
    from scipy.io import loadmat

    try:
        content = loadmat(str(path))
    except mat_read_errors() as err:
        raise VoxelFormatError(
            f"{path}: not a readable .mat file ({type(err).__name__}: {err}); re-extract it from 3DShapeNetsCode.zip"
        ) from None
    if "instance" not in content or np.ndim(content["instance"]) != 3:
        raise VoxelFormatError(f"{path}: no 3-D 'instance' array (3D ShapeNets volumetric_data files have one)")
    return np.asarray(content["instance"]) > 0


def resize_volume(volume: np.ndarray, resolution: int) -> np.ndarray:
    """A cubic bool volume as ``resolution``³: nearest-neighbour zoom up, block max-pool down (integer factors)."""
    from scipy import ndimage

    side = volume.shape[0]
    if volume.shape != (side,) * 3:
        raise VoxelFormatError(f"expected a cubic volume, got shape {volume.shape}")
    if side == resolution:
        return volume
    if resolution % side == 0:  # the chapter's ndimage.zoom(v, 2, mode="constant", order=0): each voxel repeated
        return ndimage.zoom(volume.astype(np.uint8), resolution // side, mode="constant", order=0) > 0
    if side % resolution == 0:
        k = side // resolution
        return volume.reshape(resolution, k, resolution, k, resolution, k).any(axis=(1, 3, 5))
    raise VoxelFormatError(f"cannot resize a {side}³ volume to {resolution}³ (needs an integer factor)")


def mat_volume(path: str | Path, resolution: int) -> np.ndarray:
    """The chapter's pipeline: 30³ ``instance`` → pad 1 (empty) → 32³ → nearest ×2 → 64³ (bool)."""
    instance = read_mat_instance(path)
    return resize_volume(np.pad(instance, 1, mode="constant", constant_values=False), resolution)


class VoxelFiles(Dataset):
    """Volumes from ``.mat``/``.binvox`` files; item i is a float32 1×R×R×R tensor of {0, 1}."""

    def __init__(self, files: list[Path], resolution: int) -> None:
        self.files, self.resolution = list(files), resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        path = self.files[index]
        if path.suffix == ".binvox":
            volume = resize_volume(read_binvox(path), self.resolution)
        else:
            volume = mat_volume(path, self.resolution)
        return torch.from_numpy(np.ascontiguousarray(volume)).float().unsqueeze(0)


def _in_test(relative: Path) -> bool:
    """The fixed ~20 % ShapeNetCore test split: ``crc32(relative path) % 5 == 0``."""
    return zlib.crc32(str(relative).encode()) % 5 == 0


# ---------------------------------------------------------------------------------------------- datamodule
class ShapeNetVoxelsDataModule(LoaderOptions, pl.LightningDataModule):
    """3D ShapeNets ``.mat`` or ShapeNetCore ``.binvox`` volumes (see the module docstring)."""

    def __init__(
        self,
        folder: str = "shapenet",
        data_dir: str | None = None,
        categories: list[str] | None = ["airplane"],  # noqa: B006 - jsonargparse shows list defaults; never mutated
        format: Literal["auto", "mat", "binvox"] = "auto",
        resolution: int = 64,
        limit: int | None = None,
        batch_size: int = 32,
        num_workers: Workers = "auto",
        shuffle: bool = False,
        drop_last: bool = True,
        download: bool = True,
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        prefetch_factor: int = 2,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
        if format not in ("auto", "mat", "binvox"):
            raise ValueError(f"format must be 'auto', 'mat' or 'binvox', got {format!r}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 (or None for every file), got {limit}")
        self.data_dir = resolve_data_dir(data_dir)
        path = Path(folder).expanduser()
        self.root = path if path.is_absolute() else self.data_dir / folder
        self.categories = list(categories) if categories else None
        self.format, self.resolution, self.limit = format, resolution, limit
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.set_loader_options(num_workers, persistent_workers, pin_memory, prefetch_factor)
        self.download = download
        self.name = f"{self.root.name}:{'+'.join(self.categories or ['all'])}:{resolution}"
        self._splits: dict[str, VoxelFiles] = {}

    # ------------------------------------------------------------------ finding files
    def mat_root(self) -> Path | None:
        """The ``volumetric_data`` folder of the 3D ShapeNets archive, if present."""
        for relative in MAT_ROOTS:
            if (self.root / relative).is_dir():
                return self.root / relative
        return None

    def _binvox_files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        folders = [self.root / SYNSETS.get(c, c) for c in self.categories] if self.categories else [self.root]
        return sorted(p for folder in folders if folder.is_dir() for p in folder.rglob("*.binvox"))

    def found_format(self) -> str | None:
        if self.format in ("auto", "mat") and self.mat_root() is not None:
            return "mat"
        if self.format in ("auto", "binvox") and self._binvox_files():
            return "binvox"
        return None

    def _not_found(self, reason: str) -> DatasetNotFoundError:
        root = self.root.resolve()
        cats = self.categories or ["<category>"]
        return DatasetNotFoundError(
            f"ShapeNet voxels not found under {root} ({reason}). Expected either\n"
            f"  3D ShapeNets (.mat): {root}/3DShapeNets/volumetric_data/{cats[0]}/30/train/*.mat (and 30/test/)\n"
            f"    get it: download {ARCHIVE_URL} (academic use) and put {ARCHIVE_NAME} into {root}/ — it is\n"
            "    extracted on first use — or unzip it there yourself; with --data.download=true this datamodule\n"
            "    downloads it when the host is reachable\n"
            f"  ShapeNetCore (.binvox): {root}/{SYNSETS.get(cats[0], cats[0])}/<model id>/**/*.binvox\n"
            "    get it: register at https://shapenet.org and download ShapeNetCore (manual download only)\n"
            "  Or point elsewhere: --data.folder=<folder under the data root or an absolute path>, --data.data_dir, "
            "or LIGHTNING_GANS_DATA."
        )

    # ------------------------------------------------------------------ download / extract
    def _extract(self, archive: Path) -> None:
        """Extract the ``volumetric_data`` part of the 3D ShapeNets archive into ``self.root``."""
        try:
            extracted = extract(archive, self.root, members=lambda name: "/volumetric_data/" in f"/{name}")
        except DownloadError as err:
            raise DatasetNotFoundError(f"{err} from {ARCHIVE_URL}") from None
        if not extracted:
            raise DatasetNotFoundError(f"{archive} has no volumetric_data/ folder: not 3DShapeNetsCode.zip?")

    def _download(self) -> str | None:
        """Download the archive into ``self.root``; None on success, else a one-line reason."""
        try:
            first_reachable(ARCHIVE_URL, PROBE_TIMEOUT_S)
        except DownloadError as err:
            return f"download=True but {ARCHIVE_URL} is not reachable (offline?): {err.attempts[0][1]}"
        try:  # no published checksum: a truncated transfer fails the size check or the extraction
            fetch(ARCHIVE_URL, self.root / ARCHIVE_NAME, what=ARCHIVE_NAME, timeout_s=DOWNLOAD_TIMEOUT_S, progress=True)
        except DownloadError as err:
            return f"download failed: {err.reason}"
        return None

    def prepare_data(self) -> None:
        """Extract a present archive, else download it (``download=True``, .mat format), else one clear error."""
        if self.found_format() is not None:
            return
        archive = self.root / ARCHIVE_NAME
        reason = "no volumetric_data/ folder and no .binvox files"
        if self.format in ("auto", "mat"):
            if not archive.is_file():
                reason = (self._download() or reason) if self.download else reason + "; download=False"
            if archive.is_file():
                self._extract(archive)
        if self.found_format() is None:
            raise self._not_found(reason)

    # ------------------------------------------------------------------ splits
    def _mat_files(self, split: str) -> list[Path]:
        root = self.mat_root()
        categories = self.categories or sorted(p.name for p in root.iterdir() if p.is_dir())
        missing = [c for c in categories if not (root / c / "30" / split).is_dir()]
        if missing:
            have = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise DatasetNotFoundError(
                f"{root}: no {', '.join(f'{c}/30/{split}/' for c in missing)} folder; categories present: "
                f"{', '.join(have[:40]) or 'none'} (set --data.categories)"
            )
        return [f for c in categories for f in sorted((root / c / "30" / split).glob("*.mat"))]

    def _load(self, split: str) -> VoxelFiles:
        if split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if split not in self._splits:
            found = self.found_format()
            if found is None:
                raise self._not_found("setup() found no files; prepare_data() downloads or extracts them")
            if found == "mat":
                files = self._mat_files(split)
            else:
                files = [p for p in self._binvox_files() if _in_test(p.relative_to(self.root)) == (split == "test")]
            if split == "train" and self.limit is not None:
                files = files[: self.limit]
            if not files:
                raise self._not_found(f"the {split} split of categories {self.categories or 'all'} holds no files")
            self._splits[split] = VoxelFiles(files, self.resolution)
        return self._splits[split]

    def setup(self, stage: str | None = None) -> None:
        """List the files of the training split (volumes are read lazily by the loader). Idempotent."""
        self._load("train")

    def real_volumes(self, split: str = "test") -> RealImages:
        """The volumes of ``split`` as a lazy, tensor-indexable view (``view[indices]`` → N×1×R×R×R of {0, 1})."""
        return RealImages(self._load(split))

    def split_sizes(self) -> dict[str, int]:
        return {split: len(self._load(split)) for split in SPLITS}

    def train_dataloader(self) -> DataLoader:
        return image_loader(
            self._load("train"), self.batch_size, self.shuffle, self.drop_last, self.loader_kwargs(), self
        )
