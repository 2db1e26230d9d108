"""Shared fixtures: small real-format datasets and an offline, silent W&B."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from data_factories import (
    write_celeba,
    write_cyclegan,
    write_image_folder,
    write_mnist_edges,
    write_mnist_idx,
    write_pix2pix,
    write_torchvision_weights,
    write_wiki_crop,
)

from lightning_gans.cli import RUN_DIR_ENV


@pytest.fixture(scope="session", autouse=True)
def _wandb_offline(tmp_path_factory: pytest.TempPathFactory):
    """Never talk to wandb.ai from tests; keep W&B files and caches out of the repo and the home dir."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    mp.setenv("WANDB_DIR", str(tmp_path_factory.mktemp("wandb")))
    # Extractor weights and reference statistics: never read or write the user's ~/.cache from tests.
    mp.setenv("LIGHTNING_GANS_CACHE", str(tmp_path_factory.mktemp("lightning_gans_cache")))
    mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding ``MNIST/raw/`` with 256 train / 64 test images in the real IDX format."""
    return write_mnist_idx(tmp_path_factory.mktemp("mnist_data"))


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root with every factory dataset the experiment YAMLs read: ``MNIST/raw/`` (as ``mnist_root``),
    CelebA in torchvision's layout (``celeba/``: 12 train / 4 valid / 4 test JPGs + partition) and an image
    folder ``anime-faces/`` (12 mixed-format pictures); translation sets: pix2pix ``edges2handbags/`` (20 train /
    4 val side-by-side JPGs), CycleGAN ``apple2orange/`` (trainA/trainB/testA/testB: 20/18/3/2) and
    ``horse2zebra/`` (1/1/3/2), ``mnist_edges/`` + ``mnist_edges_unpaired/`` (64 train / 16 val, by
    benchmarks/make_mnist_edges.py);
    IMDB-WIKI ``wiki_crop/`` and, in the session's torchvision cache, random inception_v3 weights (the Age-cGAN
    identity stage's face recognition)."""
    root = write_mnist_idx(tmp_path_factory.mktemp("data"))
    write_celeba(root, "torchvision")
    write_image_folder(root / "anime-faces")
    from data_factories import write_vgg19_features

    write_vgg19_features()  # srgan_* content loss: VGG19 weights stand-in in the (tmp) TORCH_HOME hub cache
    write_pix2pix(root / "edges2handbags", n_train=20)  # ≥ 16: a batch of the test's 16 with drop_last
    # One image per training domain: cyclegan_horse2zebra.yaml trains ResNet-9 at 256² (batch 16 would need ~35 GB).
    write_cyclegan(root / "horse2zebra", counts=(1, 1, 3, 2))
    write_cyclegan(root / "apple2orange", counts=(20, 18, 3, 2))
    write_mnist_edges(root)
    write_wiki_crop(root, copies=2)  # wiki_crop/wiki.mat (real struct layout) + JPGs: 14 usable faces, 6 dropped
    write_torchvision_weights("inception_v3")  # age_cgan_wiki_identity's FR, in this session's $TORCH_HOME cache
    from data_factories import write_voxel_shapes

    write_voxel_shapes(root / "shapenet", train=16, test=4, categories=["airplane"])  # gan3d_shapenet.yaml
    write_voxel_shapes(root / "voxel-shapes", train=4, test=2)  # gan3d_shapes32.yaml: 5 categories, 20 train shapes
    return root


@pytest.fixture()
def runs(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment of one in-process CLI test: the factory datasets of ``data_root``, a fresh runs dir, W&B off,
    cwd in tmp. Returns the runs dir."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(data_root))
    monkeypatch.setenv("LIGHTNING_GANS_RUNS", str(runs))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)  # main() sets it; monkeypatch restores it afterwards
    monkeypatch.setattr(sys, "argv", ["lightning-gans"])  # LightningCLI warns when args and sys.argv both exist
    monkeypatch.chdir(tmp_path)
    return runs
