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
