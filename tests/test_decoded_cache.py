"""The decoded-image cache gives the loaders' exact tensors (deterministic stage bit-identical, random parts equal
under one seed), is invalidated by a changed file or size, detects truncation, never uses a killed build, and
serves two DDP ranks disjoint, complete shards of one cache built once; ``num_workers: auto`` follows its rule."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from data_factories import write_celeba, write_cyclegan, write_image_folder, write_jpg, write_pix2pix
from gloo_ranks import run_forked_ranks

from datamodules._cache import IMAGES, META, DecodedCache, DecodedCacheError, default_cache_dir
from datamodules._loading import LoaderOptions, auto_workers, local_ranks
from datamodules._translation import TranslationDataModule
from datamodules.celeba import CelebADataModule
from datamodules.image_folder import ImageFolderDataModule
from datamodules.paired import PairedDataModule
from datamodules.super_resolution import SuperResolutionDataModule
from datamodules.unpaired import UnpairedDataModule


@pytest.fixture(autouse=True)
def _cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_GANS_CACHE", str(tmp_path / "cache"))


def _batches(datamodule, seed: int, n: int = 3) -> list:
    datamodule.setup("fit")
    torch.manual_seed(seed)
    batches = []
    for i, batch in enumerate(datamodule.train_dataloader()):
        if i == n:
            break
        batches.append(batch)
    return batches


def _equal(first, second) -> bool:
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(_equal(first[k], second[k]) for k in first)
    if isinstance(first, list | tuple):
        return len(first) == len(second) and all(_equal(a, b) for a, b in zip(first, second, strict=True))
    return first.dtype == second.dtype and torch.equal(first, second)


def _like(datamodule, **changes):
    """A new datamodule with ``datamodule``'s init arguments and ``changes`` (the files stay as they are)."""
    return type(datamodule)(**{**datamodule.hparams, **changes})


def _folders() -> list[Path]:
    return sorted(p for p in default_cache_dir().iterdir() if not p.name.startswith("."))


CASES = {
    "celeba_box": lambda root: CelebADataModule(
        data_dir=str(write_celeba(root)), crop_box=[25, 65, 153, 193], image_size=32, batch_size=5, num_workers=0
    ),
    "celeba_center": lambda root: CelebADataModule(
        data_dir=str(write_celeba(root)), image_size=16, batch_size=4, num_workers=0
    ),
    "image_folder": lambda root: ImageFolderDataModule(
        folder=str(write_image_folder(root / "faces", n=12, size=40)), image_size=24, batch_size=5, num_workers=0
    ),
    "cyclegan_286_crop_flip": lambda root: UnpairedDataModule(
        dataset=str(write_cyclegan(root / "h2z", size=40)), image_size=32, load_size=36, batch_size=2, num_workers=0
    ),
    "pix2pix_joint": lambda root: PairedDataModule(
        dataset=str(write_pix2pix(root / "e2h", size=32)), image_size=24, load_size=28, batch_size=3, num_workers=0
    ),
    "sr_pairs_flip": lambda root: SuperResolutionDataModule(
        source="celeba", data_dir=str(write_celeba(root)), hr_size=32, scale=4, batch_size=3, num_workers=0
    ),
    "sr_random_crop": lambda root: SuperResolutionDataModule(
        source="celeba",
        data_dir=str(write_celeba(root)),
        hr_size=32,
        hr_transform="random_crop",
        batch_size=3,
        num_workers=0,
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cached_loader_gives_the_uncached_tensors(tmp_path: Path, case: str) -> None:
    plain_dm = CASES[case](tmp_path / "a")
    plain = _batches(plain_dm, seed=7)
    cached_dm = _like(plain_dm, cache=True)
    cached_dm.prepare_data()
    assert len(_folders()) >= 1  # built by prepare_data
    cached = _batches(cached_dm, seed=7)
    assert _equal(plain, cached)
    # another seed draws other crops/flips: the global seed for image folders (their epoch seed comes from it), the
    # datamodule's ``seed`` for translation data (it seeds the order and the per-batch augmentation seeds)
    translation = isinstance(cached_dm, TranslationDataModule)
    other = _like(cached_dm, seed=1) if translation else cached_dm
    assert _equal(cached, _batches(cached_dm, seed=8)) or not translation
    assert not _equal(cached, _batches(other, seed=8)) or case in ("celeba_box", "celeba_center", "image_folder")
    reopened = _like(plain_dm, cache=True)
    before = {p: (p / META).stat().st_mtime_ns for p in _folders()}
    assert _equal(_batches(reopened, seed=7), plain)
    assert {p: (p / META).stat().st_mtime_ns for p in _folders()} == before  # opened, not rebuilt


def test_cache_rows_are_the_deterministic_stage(tmp_path: Path) -> None:
    dm = CASES["celeba_box"](tmp_path)
    dm.cache = True
    dm.setup("fit")
    dataset = dm._load("train")
    assert dataset.cache.shape == (len(dataset), 3, 32, 32)
    for i in (0, len(dataset) - 1):
        from datamodules._images import read_rgb

        assert torch.equal(dataset.cache.row(i), dataset.transform.fixed(read_rgb(dataset.files[i])))
    meta = json.loads((dataset.cache.folder / META).read_text())
    assert meta["identity"]["stage"]["crop_box"] == [25, 65, 153, 193] and meta["identity"]["files"] == len(dataset)


def test_changed_source_or_size_rebuilds_and_truncation_is_detected(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path / "faces", n=6, size=40)

    def make(size: int = 24) -> ImageFolderDataModule:
        return ImageFolderDataModule(folder=str(folder), image_size=size, num_workers=0, cache=True, batch_size=6)

    first = make()
    first.setup()
    old_folder = first._dataset.cache.folder
    victim = first._dataset.files[2]
    from PIL import Image

    Image.fromarray(np.full((40, 40, 3), 200, dtype=np.uint8)).save(victim, format="PNG")  # lossless, any suffix
    os.utime(victim, ns=(1, 1))  # a different mtime even on coarse-clock filesystems
    changed = make()
    changed.setup()
    assert changed._dataset.cache.folder != old_folder
    row = changed._dataset.files.index(victim)
    assert torch.equal(changed._dataset.cache.row(row), torch.full((3, 24, 24), 200, dtype=torch.uint8))
    resized = make(16)
    resized.setup()
    assert resized._dataset.cache.shape[-2:] == (16, 16) and len(_folders()) == 3

    images = resized._dataset.cache.folder / IMAGES
    with open(images, "r+b") as handle:
        handle.truncate(images.stat().st_size - 7)
    with pytest.raises(DecodedCacheError, match=r"truncated or damaged \(images.u8 has \d+ bytes"):
        DecodedCache.open(resized._dataset.cache.folder, resized._dataset.cache.meta["key"])
    with pytest.warns(UserWarning, match="truncated or damaged.*rebuilding it"):
        again = make(16)
        again.setup()
    assert torch.equal(again._dataset.cache.rows([0, 1]), resized._dataset.cache.rows([0, 1]))


def test_a_killed_build_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_image_folder(tmp_path / "faces", n=6, size=40)
    import datamodules._cache as cache_module

    def killed(*args, **kwargs):  # the build dies after writing part of the images
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module, "_write", killed)
    with pytest.raises(KeyboardInterrupt):
        ImageFolderDataModule(folder=str(folder), image_size=24, num_workers=0, cache=True).setup()
    assert not _folders()  # nothing complete, nothing partial left behind
    monkeypatch.undo()
    monkeypatch.setenv("LIGHTNING_GANS_CACHE", str(tmp_path / "cache"))
    dm = ImageFolderDataModule(folder=str(folder), image_size=24, num_workers=0, cache=True)
    dm.setup()
    assert len(dm._dataset.cache) == 6


def test_workers_read_the_cache_and_repeat_under_a_seed(tmp_path: Path) -> None:
    plain = CASES["cyclegan_286_crop_flip"](tmp_path)
    plain.set_loader_options(2, False, None, 2)
    cached = _like(plain, cache=True, num_workers=2, persistent_workers=False)
    assert _equal(_batches(plain, seed=3), _batches(cached, seed=3))


def _rank_reads_shard(rank: int, world: int, port: int, out: Path, data: Path, cache: Path) -> None:
    os.environ["LIGHTNING_GANS_CACHE"] = str(cache)
    from torch.utils.data import DistributedSampler

    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)

    dm = ImageFolderDataModule(folder=str(data), image_size=16, num_workers=0, cache=True, batch_size=4)
    if rank == 0:
        dm.prepare_data()  # Lightning: local rank 0 prepares, the others wait at a barrier
    torch.distributed.barrier()
    dm.setup("fit")
    dataset = dm._dataset
    indices = list(DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=0, drop_last=False))
    images = torch.stack([dataset[i] for i in indices])
    torch.save({"indices": indices, "images": images, "folder": str(dataset.cache.folder)}, out / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_ranks_share_one_cache_and_see_disjoint_complete_shards(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "faces", n=10, size=40)
    assert run_forked_ranks(_rank_reads_shard, 2, tmp_path, data, tmp_path / "cache") == [0, 0]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["folder"] == ranks[1]["folder"] and len(_folders()) == 1
    first, second = set(ranks[0]["indices"]), set(ranks[1]["indices"])
    assert not first & second and first | second == set(range(10))  # 10 images, 2 ranks: no padding
    reference = ImageFolderDataModule(folder=str(data), image_size=16, num_workers=0)
    reference.setup()
    for shard in ranks:
        expected = torch.stack([reference._dataset[i] for i in shard["indices"]])
        assert torch.equal(shard["images"], expected)
    assert json.loads((Path(ranks[0]["folder"]) / META).read_text())["built_by"]["rank"] in ("0", 0)


def test_auto_workers_rule_and_loader_options() -> None:
    assert [auto_workers(c, 1) for c in (1, 2, 3, 4, 16, 64)] == [0, 0, 2, 3, 8, 8]
    assert auto_workers(16, 4) == 3 and auto_workers(8, 4) == 0 and auto_workers(12, 4) == 2
    assert auto_workers(16, 1, in_memory=True) == 0

    class Trainer:
        num_devices = 4

    assert local_ranks(Trainer()) == 4
    options = LoaderOptions()
    options.set_loader_options(3, True, None, 4)
    assert options.loader_kwargs() == {
        "num_workers": 3, "persistent_workers": True, "pin_memory": torch.cuda.is_available(), "prefetch_factor": 4,
    }  # fmt: skip
    options.set_loader_options(0, True, True, 4)
    assert options.loader_kwargs() == {
        "num_workers": 0, "persistent_workers": False, "pin_memory": True, "prefetch_factor": None,
    }  # fmt: skip

    class Cached(LoaderOptions):
        cache = True

    import datamodules._loading as loading

    cached = Cached()
    cached.set_loader_options("auto", True, None, 2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loading, "available_cpus", lambda: 8)
        assert cached.resolved_num_workers() == 0 and cached.resolved_num_workers(decoding=True) == 7
    for bad in (-1, "four", 1.5):
        with pytest.raises(ValueError, match="num_workers must be an integer >= 0 or 'auto'"):
            options.set_loader_options(bad, True, None, 2)


def test_varying_sizes_need_a_fixed_stage(tmp_path: Path) -> None:
    root = tmp_path / "sr"
    for i, size in enumerate((40, 48, 40)):
        write_jpg(root / f"{i}.jpg", np.full((size, size, 3), 10 * i, dtype=np.uint8))
    dm = SuperResolutionDataModule(
        source="image_folder", source_args={"folder": str(root)}, hr_size=16, scale=4, hr_transform="random_crop",
        holdout_fraction=0.3, num_workers=0, cache=True,
    )  # fmt: skip
    with pytest.raises(ValueError, match="the cache needs one size"):
        dm.setup("fit")


def test_prepare_cache_builds_ahead_and_refuses_in_memory_data(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning_gans.cli import main as cli_main

    root = write_celeba(tmp_path / "data")
    exp = tmp_path / "faces.yaml"
    exp.write_text(
        "data:\n  class_path: datamodules.celeba.CelebADataModule\n"
        "  init_args: {crop_box: [25, 65, 153, 193], image_size: 16, num_workers: 0}\n"
    )
    cli_main(["prepare", "cache", "--config", str(exp), "--data_dir", str(root)])
    out = capsys.readouterr().out
    assert "images of 3×16×16 uint8" in out and "--data.cache=true" in out
    (folder,) = _folders()
    built = (folder / META).stat().st_mtime_ns
    dm = CelebADataModule(data_dir=str(root), crop_box=[25, 65, 153, 193], image_size=16, num_workers=0, cache=True)
    dm.setup("fit")
    assert dm.decoded_caches()[0].folder == folder and (folder / META).stat().st_mtime_ns == built

    mnist = tmp_path / "mnist.yaml"
    mnist.write_text("data:\n  class_path: datamodules.mnist.MNISTDataModule\n")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["prepare", "cache", "--config", str(mnist)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and "has no decoded cache" in err
