"""Translation datamodules (paired pix2pix JPGs, unpaired CycleGAN folders) and the MNIST edges↔digits builder."""

from __future__ import annotations

import importlib.util
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from data_factories import write_cyclegan, write_jpg, write_mnist_idx, write_pix2pix
from PIL import Image

from datamodules._pair_sampling import PairSampler
from datamodules._paths import DatasetNotFoundError
from datamodules.paired import PairedDataModule
from datamodules.unpaired import UnpairedDataModule

RED = 220 / 127.5 - 1  # the factory's domain colour in [-1, 1]
GREEN_STEP = 20 / 127.5  # green level per index step in [-1, 1]


def _green_index(images: torch.Tensor) -> list[int]:
    """The factory index (mod 12) each image encodes in its green level (read where the image is not white)."""
    green = images[:, 1, -1, -1]  # bottom-right pixel: never under the white square for the factory sizes
    return [round(((g.item() + 1) * 127.5 - 20) / 20) for g in green]


def _load_script():
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "make_mnist_edges.py"
    spec = importlib.util.spec_from_file_location("make_mnist_edges", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pix2pix(tmp_path: Path) -> Path:
    return write_pix2pix(tmp_path / "edges2handbags", n_train=8, n_val=4, size=32)


@pytest.fixture
def cyclegan(tmp_path: Path) -> Path:
    return write_cyclegan(tmp_path / "horse2zebra", counts=(6, 5, 3, 2), size=32)


def _paired(root: Path, **kwargs) -> PairedDataModule:
    options = {"image_size": 32, "batch_size": 8, "flip": False, "download": False} | kwargs
    dm = PairedDataModule(str(root), **options)
    dm.prepare_data()
    dm.setup("fit")
    return dm


# ---------------------------------------------------------------------------------------------- paired
def test_paired_splits_side_by_side_halves(pix2pix: Path) -> None:
    dm = _paired(pix2pix)
    batch = next(iter(dm.train_dataloader()))
    a, b = batch["A"], batch["B"]
    assert a.shape == b.shape == (8, 3, 32, 32) and a.dtype == b.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1
    # A = left half: red background, no blue; B = right half: blue background, no red (bottom-right corner pixel)
    assert torch.allclose(a[:, 0, -1, -1], torch.full((8,), RED), atol=0.03)
    assert torch.allclose(a[:, 2, -1, -1], torch.full((8,), -1.0), atol=0.03)
    assert torch.allclose(b[:, 2, -1, -1], torch.full((8,), RED), atol=0.03)
    assert torch.allclose(b[:, 0, -1, -1], torch.full((8,), -1.0), atol=0.03)
    # paired: A_i and B_i are the two halves of the same file; an epoch visits each of the 8 files once
    assert _green_index(a) == _green_index(b)
    assert sorted(_green_index(a)) == list(range(8))


def test_paired_flip_is_joint(pix2pix: Path) -> None:
    torch.manual_seed(0)
    dm = _paired(pix2pix, flip=True)
    batch = next(iter(dm.train_dataloader()))
    square_a, square_b = batch["A"].min(dim=1).values > 0.9, batch["B"].min(dim=1).values > 0.9  # white squares
    assert torch.equal(square_a, square_b)  # the same flip for both halves of every pair
    originals = dm.domain_dataset("A", split="train")  # the same files, test transform: never flipped
    flipped = 0
    for index, square in zip(_green_index(batch["A"]), square_a, strict=True):
        original = originals[index].min(dim=0).values > 0.9
        assert torch.equal(square, original) or torch.equal(square, original.flip(-1))
        flipped += int(not torch.equal(square, original))
    assert 0 < flipped < 8  # seeded: some pairs flipped, some not


def test_paired_unpaired_mode_shuffles_independently(pix2pix: Path) -> None:
    dm = _paired(pix2pix, mode="unpaired")
    loader = dm.train_dataloader()
    epochs = []
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        batch = next(iter(loader))
        a, b = _green_index(batch["A"]), _green_index(batch["B"])
        assert sorted(a) == sorted(b) == list(range(8))  # each domain: every image once per epoch
        assert sum(x == y for x, y in zip(a, b, strict=True)) < 8  # but not with its own partner
        epochs.append((a, b))
    assert epochs[0] != epochs[1]  # re-drawn every epoch


def test_paired_epoch_cap_and_val_order(pix2pix: Path) -> None:
    dm = _paired(pix2pix, max_images_per_epoch=5, batch_size=2)
    assert len(dm.train_dataloader().sampler) == 5 and len(dm.train_dataloader()) == 3
    first, second = list(dm.val_dataloader()), list(dm.val_dataloader())
    val_a = torch.cat([b["A"] for b in first])
    assert _green_index(val_a) == [8, 9, 10, 11]  # val/ files in name order, A_i with B_i
    assert _green_index(torch.cat([b["B"] for b in first])) == [8, 9, 10, 11]
    assert torch.equal(val_a, torch.cat([b["A"] for b in second]))  # deterministic


def test_paired_load_size_crop_and_domain_dataset(pix2pix: Path) -> None:
    dm = _paired(pix2pix, image_size=16, load_size=20)
    batch = next(iter(dm.train_dataloader()))
    assert batch["A"].shape == batch["B"].shape == (8, 3, 16, 16)
    domain = dm.domain_dataset("B", split="test")
    assert len(domain) == 4 and [p.name for p in domain.paths] == [f"{i:03d}_AB.jpg" for i in range(8, 12)]
    image = domain[0]
    assert image.shape == (3, 16, 16)
    assert image[2, -1, -1].item() == pytest.approx(RED, abs=0.03) and image[0, -1, -1].item() == pytest.approx(
        -1, abs=0.03
    )
    assert dm.image_size == 16 and dm.dataset_name == "edges2handbags"


def test_paired_rejects_single_images(tmp_path: Path) -> None:
    for split in ("train", "val"):
        write_jpg(tmp_path / "odd" / split / "x.jpg", np.zeros((32, 32, 3), dtype=np.uint8))
    with pytest.raises(DatasetNotFoundError, match="not a side-by-side A|B image.*UnpairedDataModule"):
        _paired(tmp_path / "odd")


def test_paired_bad_options() -> None:
    with pytest.raises(ValueError, match="mode must be 'paired' or 'unpaired'"):
        PairedDataModule(mode="aligned")
    with pytest.raises(ValueError, match="max_images_per_epoch must be >= 1"):
        PairedDataModule(max_images_per_epoch=0)
    with pytest.raises(ValueError, match=r"load_size \(32\) must be >= image_size \(64\)"):
        PairedDataModule(image_size=64, load_size=32)


# ---------------------------------------------------------------------------------------------- unpaired
def _unpaired(root: Path, **kwargs) -> UnpairedDataModule:
    options = {"image_size": 24, "load_size": 28, "batch_size": 16, "download": False} | kwargs
    dm = UnpairedDataModule(str(root), **options)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_unpaired_folders(cyclegan: Path) -> None:
    dm = _unpaired(cyclegan)
    batch = next(iter(dm.train_dataloader()))
    a, b = batch["A"], batch["B"]
    assert a.shape == b.shape == (6, 3, 24, 24)  # epoch_length="longer": |trainA| = 6 > |trainB| = 5
    assert (a[:, 0].mean(dim=(1, 2)) > 0.3).all() and (a[:, 2].mean(dim=(1, 2)) < -0.6).all()  # A red
    assert (b[:, 2].mean(dim=(1, 2)) > 0.3).all() and (b[:, 0].mean(dim=(1, 2)) < -0.6).all()  # B blue
    sampler = dm.train_dataloader().sampler
    sampler.set_epoch(3)
    pairs = list(sampler)
    assert sorted(i for i, _ in pairs) == list(range(6))  # the longer domain: each image once
    counts = np.bincount([j for _, j in pairs], minlength=5)
    assert counts.sum() == 6 and counts.min() >= 1 and counts.max() == 2  # the other cycles a permutation
    shorter = _unpaired(cyclegan, epoch_length="shorter")
    assert len(shorter.train_dataloader().sampler) == 5
    capped = _unpaired(cyclegan, max_images_per_epoch=4, batch_size=2)
    assert len(capped.train_dataloader()) == 2


def test_unpaired_val_and_domain_dataset(cyclegan: Path) -> None:
    dm = _unpaired(cyclegan)
    batches = list(dm.val_dataloader())
    assert len(batches) == 1 and batches[0]["A"].shape == (2, 3, 24, 24)  # zipped to |testB| = 2
    assert _green_index(batches[0]["A"]) == [0, 1] == _green_index(batches[0]["B"])
    domain = dm.domain_dataset("A")
    assert len(domain) == 3 and [p.name for p in domain.paths] == ["000.jpg", "001.jpg", "002.jpg"]
    assert torch.equal(domain[1], batches[0]["A"][1])  # test transform = the val transform
    with pytest.raises(ValueError, match="domain must be 'A' or 'B'"):
        dm.domain_dataset("C")
    assert dm.domain_dataset("B", split="train").paths[-1].name == "004.jpg"


def test_unpaired_default_transform_is_paper_crop(cyclegan: Path) -> None:
    dm = UnpairedDataModule(str(cyclegan), download=False)
    assert (dm.image_size, dm.load_size, dm.batch_size, dm.epoch_length) == (256, 286, 1, "longer")
    dm.setup("fit")
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["A"].shape == (1, 3, 256, 256)


def test_sampler_same_on_every_rank_and_fixed_order() -> None:
    first, second = PairSampler(7, 4, 7, paired=False, seed=3), PairSampler(7, 4, 7, paired=False, seed=3)
    assert list(first) == list(second)  # DDP ranks build the same list for Lightning's wrapper to shard
    first.set_epoch(5)
    second.set_epoch(5)
    assert list(first) == list(second)
    assert list(PairSampler(3, 2, 3, paired=False, shuffle=False)) == [(0, 0), (1, 1), (2, 0)]
    with pytest.raises(ValueError, match="as many A as B"):
        PairSampler(3, 2, 3, paired=True)


def test_sampler_under_lightnings_distributed_wrapper() -> None:
    """Under DDP Lightning wraps a custom sampler in DistributedSamplerWrapper: each rank lists the sampler itself
    (same seed and epoch → same list) and takes every 2nd pair, so the two shards interleave to the 1-process epoch."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    whole = list(PairSampler(7, 4, 7, paired=False, seed=1))
    shards = [
        list(
            DistributedSamplerWrapper(PairSampler(7, 4, 7, paired=False, seed=1), num_replicas=2, rank=r, shuffle=False)
        )
        for r in range(2)
    ]
    assert [len(s) for s in shards] == [4, 4]  # 7 pairs padded to 8 by the standard DistributedSampler
    assert [pair for step in zip(*shards, strict=True) for pair in step][:7] == whole


# ---------------------------------------------------------------------------------------------- missing / download
def _offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def refuse(request, timeout=None):
        asked.append(request.full_url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return asked


def test_missing_datasets_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _offline(monkeypatch)
    with pytest.raises(DatasetNotFoundError) as err:
        UnpairedDataModule("apple2orange", data_dir=str(tmp_path)).prepare_data()
    message = str(err.value)
    assert "no mirror answered" in message and "offline?" in message
    assert "trainA/, trainB/, testA/, testB/" in message and str(tmp_path.resolve() / "apple2orange") in message
    assert "wget https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/apple2orange.zip" in message
    assert asked[0].endswith("/cyclegan/datasets/apple2orange.zip") and len(asked) == 2
    with pytest.raises(DatasetNotFoundError, match=r"Missing or empty: train/, val/[\s\S]*edges2shoes.tar.gz"):
        PairedDataModule("edges2shoes", data_dir=str(tmp_path)).prepare_data()
    with pytest.raises(DatasetNotFoundError, match="'my_set' is not one of the archives"):
        PairedDataModule("my_set", data_dir=str(tmp_path)).prepare_data()
    with pytest.raises(DatasetNotFoundError, match=r"\(download=False\)"):
        PairedDataModule("edges2shoes", data_dir=str(tmp_path), download=False).prepare_data()
    with pytest.raises(DatasetNotFoundError, match="setup\\(\\) found them missing"):
        UnpairedDataModule("horse2zebra", data_dir=str(tmp_path)).setup("fit")


def test_download_extracts_into_the_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The archive comes from the first mirror that answers (file:// URLs here), is extracted into the data root
    (it holds the dataset's folder) and removed."""
    import zipfile

    source = write_cyclegan(tmp_path / "src" / "horse2zebra")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "horse2zebra.zip", "w") as zipped:
        for path in sorted(source.rglob("*.jpg")):
            zipped.write(path, path.relative_to(source.parent))
    dead = (tmp_path / "dead").as_uri() + "/{name}.zip"
    monkeypatch.setattr(UnpairedDataModule, "ARCHIVE_URLS", (dead, mirror.as_uri() + "/{name}.zip"))
    dm = UnpairedDataModule("horse2zebra", data_dir=str(tmp_path / "data"))
    dm.prepare_data()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["horse2zebra"]  # archive removed
    dm.setup("fit")
    assert len(dm.domain_dataset("A", "train")) == 6


# ---------------------------------------------------------------------------------------------- MNIST edges
def test_edge_map_is_the_outer_band() -> None:
    script = _load_script()
    digit = torch.zeros(1, 28, 28, dtype=torch.uint8)
    digit[0, 9:19, 9:19] = 255  # a 10×10 square
    up, edges = script.digits_and_edges(digit, size=28, edge_width=2)
    assert torch.equal(up, digit)  # same size: no resampling change
    black = edges[0] == 0
    assert black.sum().item() == 14 * 14 - 10 * 10  # a 2-px band just outside the square
    assert not black[9:19, 9:19].any() and black[7:21, 7:21].sum().item() == 96
    assert (edges[0][~black] == 255).all()


def test_make_mnist_edges_layouts(tmp_path: Path) -> None:
    script = _load_script()
    write_mnist_idx(tmp_path, n_train=40, n_test=20)
    counts = script.make_mnist_edges(tmp_path, tmp_path / "edges", n_train=30, n_val=10, size=64, layout="both")
    assert counts == {"train": 30, "val": 10}
    paired = sorted(p.name for p in (tmp_path / "edges" / "paired" / "train").iterdir())
    assert paired[:3] == ["00000_0.jpg", "00001_1.jpg", "00002_2.jpg"] and len(paired) == 30  # factory label i % 10
    for folder, n in (("trainA", 30), ("trainB", 30), ("testA", 10), ("testB", 10)):
        assert len(list((tmp_path / "edges" / "unpaired" / folder).glob("*.jpg"))) == n
    with Image.open(tmp_path / "edges" / "paired" / "val" / "00007_7.jpg") as image:
        pair = np.asarray(image.convert("L")).astype(int)
    assert pair.shape == (64, 128)
    edges, digit = pair[:, :64], pair[:, 64:]
    assert edges.mean() > 200 and digit.mean() < 100  # black outline on white | bright digit on black
    assert (edges[digit > 200] > 200).all()  # the outline lies outside the stroke
    dm = PairedDataModule(str(tmp_path / "edges" / "paired"), download=False, batch_size=10)
    dm.setup()
    assert [int(p.stem.split("_")[1]) for p in dm.domain_dataset("B").paths] == list(range(10))
    with pytest.raises(ValueError, match="--n_train must be in 1..40"):
        script.make_mnist_edges(tmp_path, tmp_path / "more", n_train=41)


def test_make_mnist_edges_missing_mnist(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = _load_script()
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--data_dir", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    assert "MNIST IDX files not found" in capsys.readouterr().err


def test_prepare_pix2pix_split_puts_b_into_train_b(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The DiscoGAN chapter's image_split.py wrote the A half into trainB too; here trainB holds the B half."""
    from lightning_gans.cli import main

    write_pix2pix(tmp_path / "pairs", n_train=5, n_val=3, size=32)
    main(["prepare", "pix2pix-split", str(tmp_path / "pairs"), str(tmp_path / "split")])
    assert "wrote 5 trainA, 5 trainB, 3 testA, 3 testB" in capsys.readouterr().out
    dm = _unpaired(tmp_path / "split", image_size=32, load_size=None, flip=False)
    train_a, train_b = dm.domain_dataset("A", "train"), dm.domain_dataset("B", "train")
    assert [p.name for p in train_a.paths] == [p.name for p in train_b.paths] == [f"{i:03d}_AB.jpg" for i in range(5)]
    assert train_a[0][0, -1, -1].item() == pytest.approx(RED, abs=0.03)  # A: the red left half
    assert train_b[0][2, -1, -1].item() == pytest.approx(RED, abs=0.03)  # B: the blue right half (the bug: red)
    assert train_b[0][0, -1, -1].item() == pytest.approx(-1, abs=0.03)
    assert _green_index(torch.stack([dm.domain_dataset("B")[i] for i in range(3)])) == [5, 6, 7]  # val → test
    (tmp_path / "pairs" / "val" / "009_AB.jpg").write_bytes(b"broken")
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "pix2pix-split", str(tmp_path / "pairs"), str(tmp_path / "again")])
    assert exit_info.value.code == 1 and "val/009_AB.jpg) in" in capsys.readouterr().err
