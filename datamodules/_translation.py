"""Shared pieces of the image-to-image translation datamodules (``paired.py``, ``unpaired.py``).

* :class:`DomainSource` — the files of one domain and, for pix2pix side-by-side JPGs, which half is the domain.
* :class:`~datamodules._pair_sampling.PairSampler` — one epoch of ``(index_A, index_B)`` pairs: paired (B index =
  A index), or A and B shuffled independently, re-drawn every epoch from ``seed + epoch`` (identical on every DDP
  rank, so Lightning's distributed sampler wrapper shards one list); ``shuffle=False``: ``(i mod |A|, i mod |B|)``.
* :class:`PairDataset` — ``dataset[(i, j)]`` → ``{"A": 3×H×W, "B": 3×H×W}`` float32 in [-1, 1]; the random
  transform is drawn once for both images (``joint``) or per domain, in training from the batch's own seed.
* :class:`DomainImages` — one domain as a dataset of C×H×W tensors with a ``paths`` list (``translate``, label checks).
* :func:`translation_transform` — [resize to ``load_size``² → random crop ``image_size``] or resize to
  ``image_size``², then optional horizontal flip, then [-1, 1]; all on uint8 (``torchvision.transforms.v2``).
* :class:`TranslationDataModule` — the base: prepare_data fetches the pix2pix / CycleGAN archive through
  :mod:`lightning_gans.download` (first reachable mirror, bounded timeouts) or raises one clear error.

Decode errors: a training image that fails to decode is replaced by the next pair (warned once, ``.skipped``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from datamodules._cache import CacheSpec, DecodedCache, cache_folder, ensure_cache
from datamodules._images import DECODE_ERRORS, IMAGE_EXTENSIONS, Staged, first_readable, read_rgb, to_signed_unit
from datamodules._loading import LoaderOptions, Workers
from datamodules._pair_sampling import PairSampler, pair_loader
from datamodules._paths import resolve_data_dir
from datamodules._resume import batch_rng
from lightning_gans.download import extract, fetch, first_reachable
from lightning_gans.errors import DamagedDataError, DatasetNotFoundError, DownloadError

INTERPOLATIONS = {
    "bicubic": v2.InterpolationMode.BICUBIC,  # the CycleGAN/pix2pix authors' PyTorch code
    "bilinear": v2.InterpolationMode.BILINEAR,
    "nearest": v2.InterpolationMode.NEAREST,  # the TF2 CycleGAN tutorial's random_jitter
}


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (extensions in any case), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


class Half:
    """Left (``"A"``) or right (``"B"``) half of a side-by-side C×H×2W image (a picklable transform)."""

    def __init__(self, domain: str) -> None:
        if domain not in ("A", "B"):
            raise ValueError(f"domain must be 'A' (left half) or 'B' (right half), got {domain!r}")
        self.domain = domain

    def __call__(self, image: Tensor) -> Tensor:
        half = image.shape[-1] // 2
        return image[..., :half] if self.domain == "A" else image[..., half : 2 * half]


@dataclass
class DomainSource:
    """The image files of one domain; ``half`` is ``"A"``/``"B"`` for side-by-side JPGs, None for whole images.
    ``cache``: the decoded cache of ``fixed``-stage images (training), read instead of the files when set."""

    files: list[Path]
    half: str | None = None
    cache: DecodedCache | None = None

    def read(self, index: int) -> Tensor:
        image = read_rgb(self.files[index])
        return Half(self.half)(image) if self.half else image

    def fixed(self, index: int, stage: Staged) -> Tensor:
        """Image ``index`` after the deterministic stage: from the cache, or decoded."""
        if self.cache is not None:
            return self.cache.row(index)
        return stage.fixed(self.read(index))

    def load_fixed(self, index: int, stage: Staged) -> tuple[int, Tensor]:
        """(index read, fixed-stage image) decoded from the files, the next readable file replacing a broken one."""
        n = len(self.files)
        attempt, image = first_readable(
            lambda k: stage.fixed(self.read((index + k) % n)),
            lambda k: str(self.files[(index + k) % n]),
            None,
            self.files[index].parent,
        )
        return (index + attempt) % n, image


def translation_transform(
    image_size: int, load_size: int | None = None, flip: bool = False, interpolation: str = "bicubic"
) -> Staged:
    """uint8 C×H×W → float32 [-1, 1] ``image_size``²: resize to ``load_size``² and random-crop ``image_size``
    (``load_size`` None: resize straight to ``image_size``², no crop), then a random horizontal flip if ``flip``.
    The resize is the ``fixed`` stage (what the decoded cache stores: the 286² load size), crop, flip and the
    float conversion the ``rest``; ``rest`` applied to several ``tv_tensors.Image`` at once draws one crop and one
    flip for all of them."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    if load_size is not None and load_size < image_size:
        raise ValueError(f"load_size ({load_size}) must be >= image_size ({image_size}) (resize, then crop)")
    mode = INTERPOLATIONS[interpolation]
    fixed = v2.Resize([load_size or image_size] * 2, interpolation=mode, antialias=True)
    steps: list[v2.Transform] = []
    if load_size is not None and load_size > image_size:
        steps.append(v2.RandomCrop(image_size))
    if flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    steps.append(to_signed_unit())
    stage = {"resize": load_size or image_size, "interpolation": f"{interpolation}-antialias"}
    return Staged(fixed, v2.Compose(steps), stage, batched=len(steps) == 1)


def _plain(image: Tensor) -> Tensor:
    return image.as_subclass(Tensor)


class PairDataset(Dataset):
    """``dataset[(i, j)]`` = ``{"A": transform(A[i]), "B": transform(B[j])}`` (see the module docstring).

    ``joint=True`` draws the random crop/flip once for both images (paired data must stay aligned); otherwise each
    domain gets its own draw. ``len()`` is the number of A images; the sampler decides the pairs.
    """

    def __init__(self, a: DomainSource, b: DomainSource, transform: Staged, joint: bool, root: Path) -> None:
        self.a, self.b, self.transform, self.joint, self.root = a, b, transform, joint, root
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.a.files)

    def _load(self, i: int, j: int) -> dict[str, Tensor]:
        stage, uncached = self.transform, self.a.cache is None and self.b.cache is None
        if uncached and self.a.files[i] == self.b.files[j] and self.a.half and self.b.half:
            both = read_rgb(self.a.files[i])  # one decode for a side-by-side pair
            image_a, image_b = stage.fixed(Half(self.a.half)(both)), stage.fixed(Half(self.b.half)(both))
        else:
            image_a, image_b = self.a.fixed(i, stage), self.b.fixed(j, stage)
        if self.joint:
            out_a, out_b = stage.rest(tv_tensors.Image(image_a), tv_tensors.Image(image_b))
        else:
            out_a, out_b = stage.rest(tv_tensors.Image(image_a)), stage.rest(tv_tensors.Image(image_b))
        return {"A": _plain(out_a), "B": _plain(out_b)}

    def __getitems__(self, indices: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        with batch_rng(indices):  # a seeded (training) batch draws its crops/flips from its own seed
            return [self[index] for index in indices]

    def __getitem__(self, index: tuple[int, int]) -> dict[str, Tensor]:
        i, j = index
        n_a, n_b = len(self.a.files), len(self.b.files)
        return first_readable(
            lambda k: self._load((i + k) % n_a, (j + k) % n_b),
            lambda k: f"{self.a.files[(i + k) % n_a].name} / {self.b.files[(j + k) % n_b].name}", self.skipped,
            self.root,
        )[1]  # fmt: skip


class DomainImages(Dataset):
    """One domain's images through ``transform`` (a deterministic test transform): item i is a C×H×W tensor.

    ``paths`` lists the source files (for side-by-side JPGs the file holding both halves), in item order.
    """

    def __init__(self, source: DomainSource, transform: v2.Transform, domain: str) -> None:
        self.source, self.transform, self.domain = source, transform, domain

    @property
    def paths(self) -> list[Path]:
        return list(self.source.files)

    def __len__(self) -> int:
        return len(self.source.files)

    def __getitem__(self, index: int) -> Tensor:
        try:
            return _plain(self.transform(tv_tensors.Image(self.source.read(index))))
        except DECODE_ERRORS as err:
            raise DamagedDataError(
                f"unreadable image {self.source.files[index]} ({type(err).__name__}: {err}); re-extract the dataset"
            ) from None


class TranslationDataModule(LoaderOptions, pl.LightningDataModule):
    """Base of the two translation datamodules: batches ``{"A": N×3×H×W, "B": N×3×H×W}`` float32 in [-1, 1].

    Subclasses say where each split's files are (:meth:`sources`), whether training pairs stay aligned
    (``paired``) and whether the random crop/flip is shared (``joint``), how long an epoch is, and how the archive
    is fetched (``ARCHIVE_URLS``/``KNOWN``) and described when missing (:meth:`_not_found`).
    """

    ARCHIVE_URLS: tuple[str, ...] = ()  # "{name}" is replaced by the dataset name
    KNOWN: tuple[str, ...] = ()  # names the authors' servers host
    SPLIT_ALIASES: dict[str, str] = {}

    def __init__(
        self,
        dataset: str,
        data_dir: str | None,
        image_size: int,
        load_size: int | None,
        flip: bool,
        interpolation: str,
        max_images_per_epoch: int | None,
        batch_size: int,
        num_workers: Workers,
        download: bool,
        drop_last: bool,
        seed: int,
        loader: tuple[bool, bool | None, int] = (True, None, 2),
        cache: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        """``loader``: (persistent_workers, pin_memory, prefetch_factor); ``cache``: the training split's
        ``fixed``-stage images (both domains) decoded once into :mod:`datamodules._cache`."""
        super().__init__()
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        self.data_dir = resolve_data_dir(data_dir)
        path = Path(dataset).expanduser()
        self.root = path if path.is_absolute() else self.data_dir / dataset
        self.dataset_name = self.root.name
        self.image_size, self.load_size, self.flip, self.interpolation = image_size, load_size, flip, interpolation
        self.max_images_per_epoch, self.batch_size = max_images_per_epoch, batch_size
        self.download, self.drop_last, self.seed = download, drop_last, seed
        self.set_loader_options(num_workers, *loader)
        self.cache, self.cache_dir = cache, cache_dir
        self.train_transform = translation_transform(image_size, load_size, flip, interpolation)
        self.test_transform = translation_transform(image_size, None, False, interpolation)
        self._sources: dict[str, tuple[DomainSource, DomainSource]] = {}

    # ------------------------------------------------------------------ subclass hooks
    paired: bool = False
    joint: bool = False

    def missing(self) -> list[str]:
        """Expected folders under ``self.root`` that are absent or hold no image."""
        raise NotImplementedError

    def sources(self, split: str) -> tuple[DomainSource, DomainSource]:
        raise NotImplementedError

    def train_length(self, n_a: int, n_b: int) -> int:
        raise NotImplementedError

    # the missing-data message: KIND dataset …; EXPECTED and EXTRACT are formatted with root / archive / parent
    KIND = ""
    FAMILY = ""
    EXAMPLE = ""
    EXPECTED = ""
    EXTRACT = ""
    MNIST_LAYOUT = ""

    def _not_found(self, reason: str, missing: list[str]) -> DatasetNotFoundError:
        root, name = self.root.resolve(), self.dataset_name
        url = self.ARCHIVE_URLS[0].format(name=name if name in self.KNOWN else self.EXAMPLE)
        extract = self.EXTRACT.format(archive=url.rsplit("/", 1)[1], parent=root.parent)
        return DatasetNotFoundError(
            f"{self.KIND} dataset {name!r} not found under {root} ({reason}).\n"
            f"  Missing or empty: {', '.join(f + '/' for f in missing)}\n"
            f"  Expected {self.EXPECTED.format(root=root)}\n"
            f"  {self.FAMILY} sets ({', '.join(self.KNOWN)}): download=True with network, or\n"
            f"    {'' if name in self.KNOWN else 'e.g. '}wget {url} && {extract}\n"
            f"  MNIST edges↔digits: python benchmarks/make_mnist_edges.py --data_dir <data root>{self.MNIST_LAYOUT} "
            f"--out {root}\n"
            "  Or point elsewhere: --data.dataset=<folder under the data root or an absolute path>, "
            "--data.data_dir=/path or LIGHTNING_GANS_DATA=/path."
        )

    # ------------------------------------------------------------------ files
    def _empty_or_absent(self, folders: Sequence[str]) -> list[str]:
        """The ``folders`` that do not exist or hold no image (stops at the first image: 138k-file folders)."""

        def has_image(folder: Path) -> bool:
            with os.scandir(folder) as entries:
                return any(e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file() for e in entries)

        return [f for f in folders if not (self.root / f).is_dir() or not has_image(self.root / f)]

    def _download(self) -> str | None:
        """Fetch the archive from the first mirror that answers and extract it beside ``self.root`` (the archive is
        removed afterwards); None on success, else a one-line reason. No checksum: the authors publish none for
        these archives; a truncated download fails the size check or the extraction."""
        urls = [url.format(name=self.dataset_name) for url in self.ARCHIVE_URLS]
        try:
            first = first_reachable(urls)
        except DownloadError as err:
            return f"download=True but no mirror answered ({err.reason}): offline?"
        archive = self.root.parent / first.rsplit("/", 1)[1]
        try:
            fetch(urls[urls.index(first) :], archive, what=f"{self.KIND} archive {archive.name}", progress=True)
            extract(archive, self.root.parent, remove=True)
        except DownloadError as err:
            return f"download failed: {err.reason}"
        return None

    def prepare_data(self) -> None:
        """Download the archive (``download=True``, a name the authors host) if folders are missing, else raise one
        :class:`DatasetNotFoundError` naming the missing folders, where they are expected and how to get them."""
        missing = self.missing()
        if not missing:
            self._use_cache()  # on local rank 0 only, before the other ranks' setup: one build per node
            return
        if not self.download:
            reason = "download=False"
        elif self.dataset_name not in self.KNOWN:
            reason = f"{self.dataset_name!r} is not one of the archives that can be downloaded"
        else:
            reason = self._download() or "download reported success"
            missing = self.missing()
            if not missing:
                self._use_cache()
                return
        raise self._not_found(reason, missing) from None

    def _split(self, split: str) -> tuple[DomainSource, DomainSource]:
        split = self.SPLIT_ALIASES.get(split, split)
        if split not in self._sources:
            missing = self.missing()
            if missing:
                raise self._not_found("setup() found them missing; prepare_data() downloads them", missing)
            self._sources[split] = self.sources(split)
        return self._sources[split]

    def _use_cache(self) -> None:
        """With ``cache``: both training domains from their decoded caches (built here on first use)."""
        if not self.cache:
            return
        folder = cache_folder(self.cache_dir)
        for domain, source in zip("AB", self._split("train"), strict=True):
            if source.cache is None:
                half = f"-half{source.half}" if source.half else ""
                name = f"{self.dataset_name}-train{domain}{half}"
                stage = {**self.train_transform.stage, "half": source.half}
                spec = CacheSpec(name, source.files, self.root, stage, folder)
                fixed = partial(source.load_fixed, stage=self.train_transform)  # picklable for the build's workers
                source.cache = ensure_cache(spec, fixed, self.resolved_num_workers(decoding=True))

    def decoded_caches(self) -> list[DecodedCache]:
        """The decoded caches in use (``cache: true``, after setup): both training domains."""
        return [s.cache for s in self._sources.get("train", ()) if s.cache is not None]

    def setup(self, stage: str | None = None) -> None:
        """List the files of the training and test splits (images are decoded lazily, or come from the decoded
        cache). Idempotent."""
        self._split("train")
        self._split("test")
        self._use_cache()

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        a, b = self._split("train")
        length = self.train_length(len(a.files), len(b.files))
        sampler = PairSampler(len(a.files), len(b.files), length, self.paired, shuffle=True, seed=self.seed)
        dataset = PairDataset(a, b, self.train_transform, self.joint, self.root)
        return pair_loader(dataset, sampler, self.batch_size, self.drop_last, self.loader_kwargs(), self)

    def val_dataloader(self) -> DataLoader:
        """The test split, fixed order, no augmentation; A_i with B_i up to the shorter domain."""
        a, b = self._split("test")
        length = min(len(a.files), len(b.files))
        sampler = PairSampler(len(a.files), len(b.files), length, paired=False, shuffle=False)
        dataset = PairDataset(a, b, self.test_transform, True, self.root)
        return pair_loader(dataset, sampler, self.batch_size, False, self.loader_kwargs())

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def domain_dataset(self, domain: str, split: str = "test") -> DomainImages:
        """One domain (``"A"`` or ``"B"``) of ``split`` through the test transform (resize + [-1, 1]); item i is
        a 3×image_size×image_size tensor, ``.paths[i]`` its file."""
        if domain not in ("A", "B"):
            raise ValueError(f"domain must be 'A' or 'B', got {domain!r}")
        a, b = self._split(split)
        return DomainImages(a if domain == "A" else b, self.test_transform, domain)
