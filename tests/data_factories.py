"""Small on-disk datasets in the real file formats, so tests exercise the real loaders."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def mnist_images(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Structured 28×28 uint8 images: a bright 6×6 blob whose position depends on the label, plus noise.

    Pixel 0 of every image is 0 and pixel 1 is 255, so the full value range is always present.
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(len(labels), 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        row, col = 3 + 5 * (int(label) // 4), 3 + 6 * (int(label) % 4)
        images[i, row : row + 6, col : col + 6] = rng.integers(180, 256, size=(6, 6), dtype=np.uint8)
    images[:, 0, 0] = 0
    images[:, 0, 1] = 255
    return images


def _write_idx(path: Path, data: np.ndarray) -> None:
    """IDX format (LeCun et al.): big-endian int32 magic = 0x0800 | ndim (2051 images, 2049 labels),
    then ndim big-endian int32 sizes, then the uint8 data in C order."""
    assert data.dtype == np.uint8
    header = struct.pack(">i", 0x0800 | data.ndim) + struct.pack(f">{data.ndim}i", *data.shape)
    path.write_bytes(header + data.tobytes(order="C"))


def write_mnist_idx(root: Path, n_train: int = 256, n_test: int = 64, seed: int = 0) -> Path:
    """Write the four uncompressed MNIST IDX files into ``root/MNIST/raw/``; return ``root``.

    Files: ``train-images-idx3-ubyte`` (magic 2051, dims n_train×28×28), ``train-labels-idx1-ubyte``
    (magic 2049, dim n_train), and the ``t10k-*`` pair for the test split, exactly the layout
    ``torchvision.datasets.MNIST(root)`` reads. Labels cycle 0..9 (label of item i is ``i % 10``);
    images come from :func:`mnist_images` (train with ``seed``, test with ``seed + 1``).
    """
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for offset, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        labels = (np.arange(n) % 10).astype(np.uint8)
        image_file, label_file = MNIST_FILES[split]
        _write_idx(raw / image_file, mnist_images(labels, seed + offset))
        _write_idx(raw / label_file, labels)
    return Path(root)


def write_vgg19_features(num_layers: int = 16, seed: int = 0) -> Path:
    """A stand-in for torchvision's ImageNet VGG19 weights (the SRGAN content loss): the ``features.<i>`` entries of
    the first ``num_layers`` layers (16: up to relu3_3, 2.3M parameters), seeded random, saved where torchvision
    caches the real file (``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``). Same format, no download."""
    import torch
    from torchvision.models.vgg import cfgs, make_layers

    from lightning_gans.networks.srgan import vgg19_weights_file

    path = vgg19_weights_file()
    if not path.is_file():
        torch.manual_seed(seed)
        layers = make_layers(cfgs["E"])[:num_layers]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({f"features.{k}": v for k, v in layers.state_dict().items()}, path)
    return path


# ---------------------------------------------------------------------------------------------- image files
CELEBA_SIZE = (178, 218)  # width × height of img_align_celeba JPGs


def write_jpg(path: Path, rgb: np.ndarray) -> None:
    """``rgb`` (H×W×3 uint8) as a near-lossless JPG (quality 100, no chroma subsampling)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=100, subsampling=0)


def face_image(index: int, size: tuple[int, int] = CELEBA_SIZE) -> np.ndarray:
    """A CelebA-sized H×W×3 uint8 picture: a blue background, a red square where the faces seed's crop box
    ``(25, 65, 153, 193)`` lies (PIL left, upper, right, lower) and a 16×16 green marker at its top-left corner;
    the blue level encodes ``index % 200`` so images differ."""
    width, height = size
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 2] = 55 + index % 200
    image[65:193, 25:153] = (255, 0, 0)
    image[65:81, 25:41] = (0, 255, 0)
    return image


def write_celeba(root: Path, layout: str = "torchvision", splits: tuple[int, int, int] = (12, 4, 4)) -> Path:
    """A tiny CelebA in ``layout`` under ``root``: ``sum(splits)`` images ``000001.jpg`` … (178×218), the first
    ``splits[0]`` train, then valid, then test, and the partition file of that layout — torchvision's
    ``celeba/list_eval_partition.txt`` (``000001.jpg 0`` lines) or Kaggle's
    ``celeba-dataset/list_eval_partition.csv`` (``image_id,partition`` header). Returns ``root``."""
    if layout == "torchvision":
        folder, partition_file = root / "celeba" / "img_align_celeba", root / "celeba" / "list_eval_partition.txt"
    else:
        folder = root / "celeba-dataset" / "img_align_celeba" / "img_align_celeba"
        partition_file = root / "celeba-dataset" / "list_eval_partition.csv"
    rows = []
    number = 0
    for partition, count in enumerate(splits):
        for _ in range(count):
            number += 1
            name = f"{number:06d}.jpg"
            write_jpg(folder / name, face_image(number))
            rows.append((name, partition))
    if layout == "torchvision":
        partition_file.write_text("".join(f"{name} {p}\n" for name, p in rows))
    else:
        partition_file.write_text("image_id,partition\n" + "".join(f"{name},{p}\n" for name, p in rows))
    return Path(root)


def write_image_folder(root: Path, n: int = 12, size: int = 64) -> Path:
    """``n`` small RGB pictures in mixed formats and subfolders under ``root`` (PNG, JPG, BMP, WEBP). Returns root."""
    from PIL import Image

    rng = np.random.default_rng(0)
    formats = (("png", "PNG"), ("jpg", "JPEG"), ("bmp", "BMP"), ("webp", "WEBP"))
    for i in range(n):
        extension, kind = formats[i % len(formats)]
        path = Path(root) / f"part{i % 2}" / f"face{i:03d}.{extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(path, kind)
    return Path(root)


# ---------------------------------------------------------------------------------------------- IMDB-WIKI
# (full_path, birth date, photo year, face score): one valid face per age bin (ages 10, 25, 35, 45, 55, 70),
# then the entries the datamodule must drop: age 0, age 120, a missing file, a face score of -inf.
WIKI_RECORDS = [
    ("10/100_2000-03-01_2010.jpg", (2000, 3, 1), 2010, 4.0),
    ("25/125_1985-01-10_2010.jpg", (1985, 1, 10), 2010, 3.0),
    ("35/135_1974-08-20_2010.jpg", (1974, 8, 20), 2010, 2.5),  # born in August: 36 − 1 = 35
    ("45/145_1965-02-02_2010.jpg", (1965, 2, 2), 2010, 1.5),
    ("55/155_1955-06-30_2010.jpg", (1955, 6, 30), 2010, 5.0),
    ("70/170_1940-01-01_2010.jpg", (1940, 1, 1), 2010, 2.0),
    ("00/200_2010-01-01_2010.jpg", (2010, 1, 1), 2010, 3.0),  # age 0: invalid
    ("00/201_1890-01-01_2010.jpg", (1890, 1, 1), 2010, 3.0),  # age 120: invalid
    ("00/202_1980-01-01_2010.jpg", (1980, 1, 1), 2010, 3.0),  # age 30, file not written: missing
    ("00/203_1990-01-01_2010.jpg", (1990, 1, 1), 2010, float("-inf")),  # age 20, no face found
]
WIKI_VALID_BINS = [0, 1, 2, 3, 4, 5, 1]  # the six bins, then the -inf face-score entry (age 20)


def age_face(age_bin: int, index: int, size: int = 64) -> np.ndarray:
    """An H×W×3 uint8 face-like picture whose skin level encodes the age bin (50 + 30·bin) and the index (±3)."""
    rng = np.random.default_rng(index)
    image = rng.integers(0, 30, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    face = ((yy - size / 2) / (0.4 * size)) ** 2 + ((xx - size / 2) / (0.3 * size)) ** 2 <= 1
    image[face] = (50 + 30 * age_bin + index % 3, 40 + 20 * age_bin, 30)
    return image


def write_wiki_crop(root: Path, name: str = "wiki", copies: int = 1) -> Path:
    """``root/<name>_crop/<name>.mat`` (the real nested struct layout, via ``scipy.io.savemat``) and JPGs for
    ``WIKI_RECORDS`` (the missing-file entry gets none), repeated ``copies`` times. Returns ``root``."""
    from datamodules.wiki_faces import age_at_photo, age_bin, matlab_datenum, write_metadata

    folder = Path(root) / f"{name}_crop"
    paths, dobs, taken, scores = [], [], [], []
    for copy in range(copies):
        for index, (path, born, year, score) in enumerate(WIKI_RECORDS):
            path = path.replace("_", f"_{copy}_", 1) if copy else path
            paths.append(path)
            dobs.append(matlab_datenum(*born))
            taken.append(year)
            scores.append(score)
            age = age_at_photo(dobs[-1], year)
            if "202_" not in path:  # the missing-file entry
                write_jpg(folder / path, age_face(age_bin(age) if age > 0 else 0, index))
    write_metadata(folder / f"{name}.mat", name, paths, dobs, taken, scores)
    return Path(root)


# ---------------------------------------------------------------------------------------------- translation sets
def domain_image(domain: str, index: int, size: int = 32) -> np.ndarray:
    """A size×size×3 uint8 picture of one translation domain: red (A) or blue (B) background, green level
    ``20 + 20 * (index % 12)`` (recoverable after JPEG: a pair's halves share it), a white square whose position
    depends on the index."""
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[..., 0 if domain == "A" else 2] = 220
    image[..., 1] = 20 + 20 * (index % 12)
    corner = (index * 3) % (size // 2)
    image[corner : corner + size // 4, corner : corner + size // 4] = 255
    return image


def write_pix2pix(root: Path, n_train: int = 8, n_val: int = 4, size: int = 32) -> Path:
    """A pix2pix paired set in ``root``: ``train/<i>_AB.jpg`` and ``val/<i>_AB.jpg`` (size × 2·size, A left = red,
    B right = blue, both halves of file i with the same green level; val files number on after train). Returns
    ``root``."""
    for split, first, count in (("train", 0, n_train), ("val", n_train, n_val)):
        for index in range(first, first + count):
            pair = np.concatenate([domain_image("A", index, size), domain_image("B", index, size)], axis=1)
            write_jpg(Path(root) / split / f"{index:03d}_AB.jpg", pair)
    return Path(root)


def write_cyclegan(root: Path, counts: tuple[int, int, int, int] = (6, 5, 3, 2), size: int = 32) -> Path:
    """A CycleGAN unpaired set in ``root``: ``trainA``, ``trainB``, ``testA``, ``testB`` holding ``counts`` JPGs
    (``<i>.jpg``, red A / blue B pictures of :func:`domain_image`, green level from i). Returns ``root``."""
    for folder, count in zip(("trainA", "trainB", "testA", "testB"), counts, strict=True):
        for index in range(count):
            write_jpg(Path(root) / folder / f"{index:03d}.jpg", domain_image(folder[-1], index, size))
    return Path(root)


def write_mnist_edges(root: Path, n_train: int = 64, n_val: int = 16) -> Path:
    """``root/mnist_edges`` (paired) and ``root/mnist_edges_unpaired`` written by the real
    ``benchmarks/make_mnist_edges.py`` from the MNIST IDX files already in ``root/MNIST/raw``. Returns ``root``."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "make_mnist_edges.py"
    spec = importlib.util.spec_from_file_location("make_mnist_edges", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for layout in ("paired", "unpaired"):
        out = Path(root) / ("mnist_edges" if layout == "paired" else "mnist_edges_unpaired")
        module.make_mnist_edges(Path(root), out, n_train=n_train, n_val=n_val, layout=layout)
    return Path(root)


def write_torchvision_weights(arch: str, weights: str = "DEFAULT") -> Path:
    """A randomly initialised state dict of torchvision's ``arch`` where torchvision caches its ImageNet weights
    (``$TORCH_HOME/hub/checkpoints/<file of the weights URL>``): the real file format, without the download."""
    import os

    import torch
    from torchvision.models import get_model, get_model_weights

    from lightning_gans.networks.face_recognition import _builder_kwargs

    enum = get_model_weights(arch)[weights]
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
    if not path.is_file():
        model = get_model(arch, weights=None, **_builder_kwargs(arch, len(enum.meta["categories"])))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return path


# ---------------------------------------------------------------------------------------------- voxels
def write_voxel_shapes(
    root: Path, train: int = 8, test: int = 4, seed: int = 0, categories: list[str] | None = None
) -> Path:
    """The procedural voxel set of ``benchmarks/make_voxel_shapes.py`` (loaded from that script, so tests run the
    real generator): ``root/volumetric_data/<category>/30/{train,test}/*.mat``, 30³ ``instance`` grids written with
    ``scipy.io.savemat`` — the 3D ShapeNets layout. Returns ``root``."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "make_voxel_shapes.py"
    spec = importlib.util.spec_from_file_location("make_voxel_shapes", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_voxel_shapes(Path(root), train, test, seed, categories)


def write_binvox(path: Path, volume: np.ndarray, translate: tuple[float, ...] = (0.0, 0.0, 0.0)) -> Path:
    """``volume`` (bool, indexed [x, y, z]) as a ``.binvox`` file: the ASCII header (``#binvox 1``, ``dim``,
    ``translate``, ``scale``, ``data``) and (value, count ≤ 255) byte pairs over the voxels in x-z-y order (y
    fastest), as the format's documentation specifies."""
    flat = np.asarray(volume, dtype=bool).transpose(0, 2, 1).reshape(-1).astype(np.uint8)
    pairs = bytearray()
    start = 0
    while start < flat.size:
        value, end = flat[start], start
        while end < flat.size and flat[end] == value and end - start < 255:
            end += 1
        pairs += bytes([int(value), end - start])
        start = end
    dims = f"{volume.shape[0]} {volume.shape[2]} {volume.shape[1]}"  # "dim depth height width": x, z, y extents
    header = f"#binvox 1\ndim {dims}\ntranslate {' '.join(map(str, translate))}\nscale 1.0\ndata\n".encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + bytes(pairs))
    return path
