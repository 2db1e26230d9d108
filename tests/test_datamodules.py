"""Datamodules through their real loaders: MNIST from real-format IDX files, and the toy mixtures."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from data_factories import mnist_images

from datamodules._paths import DatasetNotFoundError, resolve_data_dir
from datamodules.mnist import MNIST_FILES, MNISTDataModule
from datamodules.toy import ToyDataModule, mode_centers, mode_std, sample_mixture


def test_resolve_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIGHTNING_GANS_DATA", raising=False)
    assert resolve_data_dir(None) == Path("./data")
    monkeypatch.setenv("LIGHTNING_GANS_DATA", "/somewhere")
    assert resolve_data_dir(None) == Path("/somewhere")
    assert resolve_data_dir("/explicit") == Path("/explicit")


@pytest.fixture(scope="module")
def mnist(mnist_root: Path) -> MNISTDataModule:
    dm = MNISTDataModule(data_dir=str(mnist_root), batch_size=32, download=False)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_mnist_tensors(mnist: MNISTDataModule) -> None:
    images, labels = mnist.real_images("train")
    assert images.shape == (256, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (256,) and labels.dtype == torch.int64
    assert torch.equal(labels, torch.arange(256) % 10)
    test_images, test_labels = mnist.real_images("test")
    assert test_images.shape == (64, *MNISTDataModule.image_shape)
    assert torch.equal(test_labels, torch.arange(64) % 10)
    assert mnist.num_classes == 10


def test_mnist_pixel_mapping(mnist: MNISTDataModule) -> None:
    images, _ = mnist.real_images("train")
    raw = torch.from_numpy(mnist_images((np.arange(256) % 10).astype(np.uint8), seed=0)).float()
    assert torch.equal(images[:, 0], raw / 127.5 - 1)
    assert images.min().item() == -1.0 and images.max().item() == 1.0  # 0 → -1, 255 → 1 exactly
    assert torch.all(images[:, 0, 0, 0] == -1.0) and torch.all(images[:, 0, 0, 1] == 1.0)


def test_mnist_loaders(mnist: MNISTDataModule) -> None:
    x, y = next(iter(mnist.train_dataloader()))
    assert x.shape == (32, 1, 28, 28) and y.shape == (32,)
    assert sum(len(b[0]) for b in mnist.val_dataloader()) == 64
    assert sum(len(b[0]) for b in mnist.test_dataloader()) == 64
    first_val = next(iter(mnist.val_dataloader()))[1]
    assert torch.equal(first_val, torch.arange(32) % 10)  # not shuffled
    before = mnist.real_images("train")[0]
    mnist.setup("fit")  # idempotent: same tensors, no reload
    assert mnist.real_images("train")[0] is before


def test_mnist_drop_last(mnist_root: Path) -> None:
    dm = MNISTDataModule(data_dir=str(mnist_root), batch_size=100, drop_last=True, shuffle=False)
    dm.setup("fit")
    assert [len(b[0]) for b in dm.train_dataloader()] == [100, 100]


def test_mnist_gz_files_are_unpacked(tmp_path: Path, mnist_root: Path) -> None:
    import gzip

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / f"{name}.gz").write_bytes(gzip.compress((mnist_root / "MNIST" / "raw" / name).read_bytes()))
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False)
    dm.prepare_data()
    dm.setup("test")
    assert dm.real_images("test")[0].shape == (64, 1, 28, 28)


def _assert_helpful(err: DatasetNotFoundError, folder: Path, missing: list[str]) -> None:
    text = str(err)
    assert "MNIST/raw" in text and str(folder.resolve() / "MNIST" / "raw") in text
    for name in missing:
        assert name in text
    assert "ossci-datasets.s3.amazonaws.com/mnist" in text
    assert "DATA_DIR=" in text and "--data.data_dir" in text
    assert err.__cause__ is None and err.__suppress_context__


def test_mnist_missing_no_download(tmp_path: Path) -> None:
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(DatasetNotFoundError) as info:
        dm.prepare_data()
    _assert_helpful(info.value, tmp_path, list(MNIST_FILES))
    assert "download=False" in str(info.value)
    with pytest.raises(DatasetNotFoundError):  # setup() without prepare_data() says the same
        dm.setup("fit")


def test_mnist_partially_missing(tmp_path: Path, mnist_root: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES[:2]:
        (raw / name).write_bytes((mnist_root / "MNIST" / "raw" / name).read_bytes())
    with pytest.raises(DatasetNotFoundError) as info:
        MNISTDataModule(data_dir=str(tmp_path), download=False).prepare_data()
    assert "Missing: t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte\n" in str(info.value)


def test_mnist_download_fails_fast_offline(tmp_path: Path) -> None:
    """No internet in CI: the attempted download must fail quickly and just as clearly."""
    dm = MNISTDataModule(data_dir=str(tmp_path), download=True)
    start = time.monotonic()
    try:
        dm.prepare_data()
    except DatasetNotFoundError as err:
        _assert_helpful(err, tmp_path, list(MNIST_FILES))
    else:
        pytest.skip("network reachable: MNIST was actually downloaded")
    assert time.monotonic() - start < 15.0


def test_toy_centers() -> None:
    ring = mode_centers("ring8")
    assert ring.shape == (8, 2)
    assert torch.allclose(ring.norm(dim=1), torch.full((8,), 2.0))
    grid = mode_centers("grid25")
    assert grid.shape == (25, 2) and len({tuple(c) for c in grid.tolist()}) == 25
    assert set(grid.flatten().tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert mode_std("ring8") == 0.02 and mode_std("grid25") == 0.05


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_toy_sample_std(name: str) -> None:
    x = sample_mixture(name, 20_000, torch.Generator().manual_seed(0))
    centers = mode_centers(name)
    residual = x - centers[torch.cdist(x, centers).argmin(dim=1)]
    assert residual.std().item() == pytest.approx(mode_std(name), rel=0.05)
    assert residual.mean(0).abs().max().item() < 0.01


def test_toy_datamodule_determinism() -> None:
    a, b = ToyDataModule("ring8", num_samples=1000, batch_size=64), ToyDataModule("ring8", 1000, 64)
    a.setup("fit")
    b.setup("fit")
    assert torch.equal(a.real_points("train")[0], b.real_points("train")[0])
    c = ToyDataModule("ring8", num_samples=1000, batch_size=64, seed=1)
    assert not torch.equal(a.real_points("train")[0], c.real_points("train")[0])
    assert torch.equal(a.real_points("val")[0], b.real_points("val")[0])
    assert a.real_points("val")[0].shape == (10_000, 2)  # held out: drawn from seed + 1
    assert not torch.equal(a.real_points("val")[0][:1000], a.real_points("train")[0])
    assert a.name == "ring8" and a.sample_dim == 2


def test_toy_datamodule_batches() -> None:
    dm = ToyDataModule("grid25", num_samples=1000, batch_size=128)
    dm.setup("fit")
    points, modes = next(iter(dm.train_dataloader()))
    assert points.shape == (128, 2) and points.dtype == torch.float32
    assert modes.shape == (128,) and modes.dtype == torch.int64
    assert torch.all((points - mode_centers("grid25")[modes]).norm(dim=1) < 0.5)
    assert all(len(b[0]) == 128 for b in dm.train_dataloader())  # equal batch sizes
    assert sum(len(b[0]) for b in dm.val_dataloader()) == 10_000
    assert set(modes.tolist()) <= set(range(25))
