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
