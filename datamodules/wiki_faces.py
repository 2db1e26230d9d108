"""IMDB-WIKI face crops (Rothe et al. 2015) with age-bin labels, as in *GAN Projects* ch. 3 (Age-cGAN).

Layout under the data root (``dataset="wiki"`` or ``"imdb"``; both halves have the same format)::

    <root>/wiki_crop/wiki.mat          MATLAB struct ``wiki`` (1×1) with 1×N fields
    <root>/wiki_crop/00/…/99/*.jpg     the face crops, named by ``full_path`` (e.g. ``17/10000217_1981-05-05_2009.jpg``)
    <root>/imdb_crop/imdb.mat, <root>/imdb_crop/00/…   the IMDB half

Metadata (reference gan-projects-and-dcgan.md §4): ``m = loadmat(mat)[name][0, 0]``; ``m["full_path"][0][i][0]`` is
the path, ``m["dob"][0][i]`` the MATLAB serial date of birth, ``m["photo_taken"][0][i]`` the year of the photo and
``m["face_score"][0][i]`` the detector score (``-inf`` when no face was found).

Age = photo_taken − birth year, minus 1 when born in July or later (the photo is assumed mid-year), with
``birth = datetime.fromordinal(max(int(dob) − 366, 1))`` (MATLAB day 1 is 0000-01-01, Python's is 0001-01-01).
Six classes (the chapter's bins): 0: 0 < age ≤ 18, 1: ≤ 29, 2: ≤ 39, 3: ≤ 49, 4: ≤ 59, 5: ≥ 60.

Dropped at setup, counted in ``dropped`` and reported once: invalid ages (≤ 0 or > 100; the seed's categories
reused the previous entry's class for them), files missing on disk and, with ``min_face_score``, entries whose
face score is below it (or ``-inf``/NaN). The seed counted classes with ``len(set(ages))`` (5 when a bin is empty);
here there are always 6. Images: RGB, resized to ``image_size``² (the seed's Keras ``load_img`` is nearest
neighbour, the default ``interpolation``), ``x / 127.5 − 1``. Batches are ``(images, age bins)``; a file that
fails to decode is replaced by the next readable one *with its own label* (the seed kept the skipped file's age).

Download: ``download=True`` fetches ``<name>_crop.tar`` (wiki 811 MB, imdb 7 GB) from the ETH server and extracts
it into the data root (no published checksum); offline, one ``DatasetNotFoundError`` says what to get and where.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from datamodules._images import ImageFiles, RealImages, image_loader, to_signed_unit
from datamodules._loading import LoaderOptions, Workers
from datamodules._paths import mat_read_errors, resolve_data_dir
from lightning_gans.download import PROBE_TIMEOUT_S, extract, fetch, first_reachable
from lightning_gans.errors import DatasetNotFoundError, DownloadError

URL = "https://data.vision.ee.ethz.ch/cvl/rrothe/imdb-wiki/static/{name}_crop.tar"
DOWNLOAD_TIMEOUT_S = 60.0  # per connect/read: bounds a stalled connection
AGE_BIN_UPPER = (18, 29, 39, 49, 59)  # class c holds ages up to AGE_BIN_UPPER[c]; class 5 is 60+
NUM_AGE_BINS = 6
AGE_BIN_NAMES = ("0-18", "19-29", "30-39", "40-49", "50-59", "60+")
MAX_VALID_AGE = 100


def age_at_photo(dob: float, photo_taken: int) -> int:
    """Age when the photo was taken from a MATLAB serial date of birth (the chapter's rule; module docstring)."""
    birth = datetime.fromordinal(max(int(dob) - 366, 1))
    return int(photo_taken) - birth.year - (0 if birth.month < 7 else 1)


def age_bin(age: int) -> int:
    """Class id 0–5 of a valid age (> 0); ValueError for ages the chapter's bins do not cover."""
    if age <= 0:
        raise ValueError(f"age {age} is not in any bin (valid ages are > 0)")
    return next((c for c, upper in enumerate(AGE_BIN_UPPER) if age <= upper), NUM_AGE_BINS - 1)


def read_metadata(mat_path: Path, name: str) -> dict[str, np.ndarray]:
    """``full_path`` (str), ``dob``, ``photo_taken``, ``face_score`` (length N) from ``wiki.mat``/``imdb.mat``."""
    from scipy.io import loadmat

    try:
        struct = loadmat(mat_path)[name][0, 0]
        paths = np.array([str(entry[0]) for entry in struct["full_path"][0]])
        fields = {k: np.asarray(struct[k][0], dtype=np.float64) for k in ("dob", "photo_taken", "face_score")}
    except mat_read_errors() as err:
        raise DatasetNotFoundError(
            f"{mat_path} is not the IMDB-WIKI metadata file (expected a struct '{name}' with 1×N fields full_path, "
            f"dob, photo_taken, face_score; {type(err).__name__}: {err}): re-extract {name}_crop.tar"
        ) from None
    if not all(len(v) == len(paths) for v in fields.values()):
        raise DatasetNotFoundError(f"{mat_path}: the fields have different lengths; re-extract {name}_crop.tar")
    return {"full_path": paths, **fields}


def write_metadata(
    mat_path: Path,
    name: str,
    full_path: Sequence[str],
    dob: Sequence[float],
    photo_taken: Sequence[int],
    face_score: Sequence[float] | None = None,
) -> Path:
    """Write ``wiki.mat``/``imdb.mat`` in the IMDB-WIKI layout (a 1×1 struct ``name`` of 1×N fields; ``full_path``
    and ``name`` are cell arrays of strings), e.g. to label a folder of your own face crops.

    ``gender`` (NaN), ``name`` (empty), ``face_location`` (zeros) and ``second_face_score`` (NaN) are written as
    placeholders so the file has every field of the original.
    """
    from scipy.io import savemat

    n = len(full_path)
    cells = np.empty((1, n), dtype=object)
    cells[0, :] = list(full_path)
    names = np.empty((1, n), dtype=object)
    names[0, :] = [""] * n
    locations = np.empty((1, n), dtype=object)
    locations[0, :] = [np.zeros((1, 4))] * n
    scores = np.ones(n) if face_score is None else np.asarray(face_score, dtype=np.float64)
    struct = {
        "dob": np.asarray(dob, dtype=np.float64).reshape(1, n),
        "photo_taken": np.asarray(photo_taken, dtype=np.float64).reshape(1, n),
        "full_path": cells,
        "gender": np.full((1, n), np.nan),
        "name": names,
        "face_location": locations,
        "face_score": scores.reshape(1, n),
        "second_face_score": np.full((1, n), np.nan),
    }
    mat_path.parent.mkdir(parents=True, exist_ok=True)
    savemat(mat_path, {name: struct})
    return mat_path


def matlab_datenum(year: int, month: int, day: int) -> int:
    """MATLAB serial date number of a calendar day (the inverse of the chapter's ``fromordinal(dob − 366)``)."""
    return datetime(year, month, day).toordinal() + 366


def select_entries(
    meta: dict[str, np.ndarray], folder: Path, min_face_score: float | None = None
) -> tuple[list[Path], list[int], list[int], dict[str, int]]:
    """(files, ages, age bins, dropped counts): valid ages, existing files and, optionally, face score ≥ min."""
    existing = set()
    for sub in folder.iterdir():
        if sub.is_dir():
            with os.scandir(sub) as entries:
                existing.update(f"{sub.name}/{e.name}" for e in entries)
    dropped = {"invalid_age": 0, "missing_file": 0, "low_face_score": 0}
    files, ages, bins = [], [], []
    for path, dob, taken, score in zip(meta["full_path"], meta["dob"], meta["photo_taken"], meta["face_score"]):
        age = age_at_photo(dob, taken) if math.isfinite(dob) and math.isfinite(taken) else -1
        if not 0 < age <= MAX_VALID_AGE:
            dropped["invalid_age"] += 1
        elif path not in existing:
            dropped["missing_file"] += 1
        elif min_face_score is not None and not (math.isfinite(score) and score >= min_face_score):
            dropped["low_face_score"] += 1
        else:
            files.append(folder / path)
            ages.append(age)
            bins.append(age_bin(age))
    return files, ages, bins, dropped


class AgeLabelledFaces(ImageFiles):
    """Face crops with their age bins: item i is ``(image, bin)`` (a replacement image brings its own bin)."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int], transform: v2.Transform, root: Path) -> None:
        super().__init__(files, transform, root)
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        i, image = self.load(index)
        return image, self.labels[i]


class WikiFacesDataModule(LoaderOptions, pl.LightningDataModule):
    """IMDB-WIKI face crops in [-1, 1] with six age-bin labels (see the module docstring)."""

    name = "wiki_faces"

    def __init__(
        self,
        data_dir: str | None = None,
        dataset: Literal["wiki", "imdb"] = "wiki",
        image_size: int = 64,
        interpolation: Literal["nearest", "bilinear", "bicubic"] = "nearest",
        min_face_score: float | None = None,
        limit: int | None = None,
        batch_size: int = 128,
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
        if dataset not in ("wiki", "imdb"):
            raise ValueError(f"dataset must be 'wiki' or 'imdb', got {dataset!r}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 (or None for every image), got {limit}")
        self.data_dir = resolve_data_dir(data_dir)
        self.dataset, self.image_size, self.interpolation = dataset, image_size, interpolation
        self.min_face_score, self.limit, self.batch_size = min_face_score, limit, batch_size
        self.set_loader_options(num_workers, persistent_workers, pin_memory, prefetch_factor)
        self.download, self.drop_last, self.shuffle = download, drop_last, shuffle
        self.num_classes = NUM_AGE_BINS
        self.dropped: dict[str, int] = {}
        self.ages: list[int] = []
        self._train: AgeLabelledFaces | None = None

    @property
    def folder(self) -> Path:
        return self.data_dir / f"{self.dataset}_crop"

    @property
    def mat_path(self) -> Path:
        return self.folder / f"{self.dataset}.mat"

    def _not_found(self, reason: str) -> DatasetNotFoundError:
        root, name = self.data_dir.resolve(), self.dataset
        return DatasetNotFoundError(
            f"IMDB-WIKI '{name}' face crops not found under {root} ({reason}). Expected:\n"
            f"  {root}/{name}_crop/{name}.mat and the image folders {root}/{name}_crop/00/ … 99/\n"
            f"  get it: {URL.format(name=name)} (non-commercial use), then tar -xf {name}_crop.tar -C {root}\n"
            "  (download=True does this when the server is reachable). Or point to the folder holding it: "
            "--data.data_dir=/path or LIGHTNING_GANS_DATA=/path."
        )

    def _download(self) -> str | None:
        """Fetch and extract ``<name>_crop.tar`` into the data root; None on success, else a one-line reason."""
        url = URL.format(name=self.dataset)
        try:
            first_reachable(url, PROBE_TIMEOUT_S)
        except DownloadError:
            return f"download=True but {url} is not reachable: offline?"
        archive = self.data_dir / f"{self.dataset}_crop.tar"
        try:  # no published checksum: a truncated transfer fails the size check or the extraction
            fetch(url, archive, what=f"IMDB-WIKI {archive.name}", timeout_s=DOWNLOAD_TIMEOUT_S, progress=True)
            extract(archive, self.data_dir, remove=True)
        except DownloadError as err:
            return f"download failed: {err.reason}"
        return None

    def prepare_data(self) -> None:
        """Download (``download=True``) when the metadata file is missing, or raise one clear error."""
        if self.mat_path.is_file():
            return
        reason = f"no {self.mat_path.name}"
        if self.download:
            reason = self._download() or "download reported success"
            if self.mat_path.is_file():
                return
        raise self._not_found(reason)

    def _load(self) -> AgeLabelledFaces:
        if self._train is None:
            if not self.mat_path.is_file():
                raise self._not_found(f"no {self.mat_path.name}; prepare_data() downloads it")
            meta = read_metadata(self.mat_path, self.dataset)
            files, ages, bins, self.dropped = select_entries(meta, self.folder, self.min_face_score)
            if self.limit is not None:
                files, ages, bins = files[: self.limit], ages[: self.limit], bins[: self.limit]
            if not files:
                raise self._not_found(
                    f"{self.mat_path.name} lists {len(meta['full_path'])} entries, none usable: dropped {self.dropped}"
                )
            rank_zero_info(
                f"{self.dataset}_crop: {len(files)} faces; dropped {self.dropped['invalid_age']} with invalid ages "
                f"(≤ 0 or > {MAX_VALID_AGE}), {self.dropped['missing_file']} missing files, "
                f"{self.dropped['low_face_score']} below min_face_score={self.min_face_score}"
            )
            mode = getattr(v2.InterpolationMode, self.interpolation.upper())
            transform = v2.Compose(
                [v2.Resize((self.image_size, self.image_size), interpolation=mode), to_signed_unit()]
            )
            self.ages = ages
            self._train = AgeLabelledFaces(files, bins, transform, self.folder)
        return self._train

    def setup(self, stage: str | None = None) -> None:
        """Parse the metadata, drop invalid entries (counted in ``dropped``). Images decode lazily."""
        self._load()

    def class_counts(self) -> list[int]:
        """Faces per age bin (length 6, empty bins included)."""
        return torch.bincount(self._load().labels, minlength=NUM_AGE_BINS).tolist()

    def real_images(self, split: str = "train") -> tuple[RealImages, Tensor]:
        """The faces (lazy view in [-1, 1]) and their age bins; IMDB-WIKI has no official split: all are train."""
        dataset = self._load()
        return RealImages(ImageFiles(dataset.files, dataset.transform, dataset.root)), dataset.labels

    def train_dataloader(self) -> DataLoader:
        return image_loader(self._load(), self.batch_size, self.shuffle, self.drop_last, self.loader_kwargs(), self)
