"""3D-GAN (GAN Projects ch. 2): voxel datamodule (.mat and .binvox), networks, D-accuracy gate, renders, `sample`,
and the coverage / MMD voxel-IoU metric. Data are written in the real formats into tmp dirs."""

from __future__ import annotations

import json
import sys
import urllib.request
import zipfile
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from data_factories import write_binvox, write_voxel_shapes
from PIL import Image
from scipy.io import savemat

from datamodules._paths import DatasetNotFoundError
from datamodules.shapenet import ShapeNetVoxelsDataModule, read_binvox
from lightning_gans.callbacks.voxels import exposed_faces, point_cloud, render_volumes
from lightning_gans.cli import RUN_DIR_ENV, main
from lightning_gans.evaluation.voxels import evaluate_voxel_quality
from lightning_gans.metrics.voxel import VoxelCoverage, voxel_iou
from lightning_gans.models.gan3d import GAN3D
from lightning_gans.networks.gan3d import VoxelDiscriminator, VoxelGenerator

REPO = Path(__file__).resolve().parents[1]
TINY_G, TINY_D = [8, 4, 2], [2, 4, 8]


def _instance(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((30, 30, 30)) > 0.7


def _write_mats(root: Path, category: str = "airplane", n_train: int = 3, n_test: int = 1) -> list[np.ndarray]:
    volumes = []
    for split, count in (("train", n_train), ("test", n_test)):
        for i in range(count):
            volume = _instance(len(volumes))
            folder = root / "shapenet" / "3DShapeNets" / "volumetric_data" / category / "30" / split
            folder.mkdir(parents=True, exist_ok=True)
            savemat(folder / f"{category}_{i:03d}_1.mat", {"instance": volume.astype(np.uint8)})
            volumes.append(volume)
    return volumes


# ---------------------------------------------------------------------------------------------- data
def test_mat_loader_pads_and_upsamples_30_to_64_nearest(tmp_path: Path) -> None:
    volumes = _write_mats(tmp_path)
    dm = ShapeNetVoxelsDataModule(data_dir=str(tmp_path), resolution=64, batch_size=2)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.split_sizes() == {"train": 3, "test": 1}
    batch = next(iter(dm.train_dataloader()))  # file order, no shuffle (the chapter)
    assert batch.shape == (2, 1, 64, 64, 64) and batch.dtype == torch.float32
    assert set(batch.unique().tolist()) == {0.0, 1.0}  # nearest neighbour keeps the values binary
    expected = np.pad(volumes[0], 1).repeat(2, 0).repeat(2, 1).repeat(2, 2)
    np.testing.assert_array_equal(batch[0, 0].numpy() > 0, expected)
    assert batch[:, :, :2].sum() == 0 and batch[:, :, -2:].sum() == 0  # the 1-voxel pad, doubled
    assert len(dm.train_dataloader()) == 1  # 3 files, batch 2: the remainder is dropped
    small = ShapeNetVoxelsDataModule(data_dir=str(tmp_path), resolution=32)
    np.testing.assert_array_equal(small.real_volumes("test")[0][0].numpy() > 0, np.pad(volumes[3], 1))


def test_binvox_reader_follows_the_documented_xzy_order(tmp_path: Path) -> None:
    # dim 2 2 2; runs (0, 1), (1, 1), (0, 6): only flat index 1 is set, i.e. x=0, z=0, y=1 (y runs fastest).
    path = tmp_path / "one.binvox"
    path.write_bytes(b"#binvox 1\ndim 2 2 2\ntranslate 0 0 0\nscale 1\ndata\n" + bytes([0, 1, 1, 1, 0, 6]))
    volume = read_binvox(path)
    assert volume.shape == (2, 2, 2) and volume.sum() == 1 and volume[0, 1, 0]
    shape = np.random.default_rng(1).random((6, 5, 4)) > 0.5  # non-cubic: catches swapped axes
    np.testing.assert_array_equal(read_binvox(write_binvox(tmp_path / "r.binvox", shape)), shape)
    (tmp_path / "bad.binvox").write_bytes(b"not a voxel file\n")
    with pytest.raises(ValueError, match="not a binvox file"):
        read_binvox(tmp_path / "bad.binvox")


def test_binvox_datamodule_resizes_and_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grids = {}
    for i in range(12):  # ShapeNetCore v2 layout, airplane synset
        grid = rng.random((64, 64, 64)) > 0.995
        path = tmp_path / "core" / "02691156" / f"model{i:02d}" / "models" / "model_normalized.solid.binvox"
        write_binvox(path, grid)
        grids[path] = grid
    dm = ShapeNetVoxelsDataModule(folder=str(tmp_path / "core"), categories=["airplane"], resolution=32)
    dm.prepare_data()
    sizes = dm.split_sizes()
    assert sizes["train"] + sizes["test"] == 12 and sizes["test"] >= 1
    first = dm._load("train").files[0]
    pooled = grids[first].reshape(32, 2, 32, 2, 32, 2).any(axis=(1, 3, 5))  # occupied if any voxel of its block
    np.testing.assert_array_equal(dm._load("train")[0][0].numpy() > 0, pooled)


def test_missing_data_is_one_clear_error_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    dm = ShapeNetVoxelsDataModule(data_dir=str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "3DShapeNetsCode.zip" in message and "not reachable" in message
    assert f"{tmp_path.resolve()}/shapenet/3DShapeNets/volumetric_data/airplane/30/train/*.mat" in message
    assert ".binvox" in message


def test_a_manually_downloaded_archive_is_extracted(tmp_path: Path) -> None:
    source = tmp_path / "src"
    _write_mats(source)
    (tmp_path / "shapenet").mkdir()
    with zipfile.ZipFile(tmp_path / "shapenet" / "3DShapeNetsCode.zip", "w") as zipped:
        for path in sorted((source / "shapenet").rglob("*.mat")):
            zipped.write(path, path.relative_to(source / "shapenet"))
        zipped.writestr("3DShapeNets/README.txt", "code, not data")
    dm = ShapeNetVoxelsDataModule(data_dir=str(tmp_path), download=False)
    dm.prepare_data()
    assert dm.split_sizes() == {"train": 3, "test": 1}
    assert not (tmp_path / "shapenet" / "3DShapeNets" / "README.txt").exists()  # only volumetric_data/ extracted


def test_procedural_set_has_the_3dshapenets_layout(tmp_path: Path) -> None:
    write_voxel_shapes(tmp_path / "shapes", train=2, test=1, seed=3)
    dm = ShapeNetVoxelsDataModule(folder=str(tmp_path / "shapes"), categories=None, resolution=32)
    assert dm.split_sizes() == {"train": 10, "test": 5}  # 5 categories
    volumes = dm.real_volumes("train")[torch.arange(10)]
    occupied = volumes.flatten(1).sum(1)
    assert (occupied > 20).all() and (occupied < 32**3 / 2).all()  # every shape is a solid, none fills the grid


# ---------------------------------------------------------------------------------------------- networks, model
@pytest.mark.parametrize("resolution", [32, 64])
def test_network_shapes(resolution: int) -> None:
    generator, discriminator = VoxelGenerator(resolution=resolution), VoxelDiscriminator(resolution=resolution)
    with torch.no_grad():
        volumes = generator(torch.randn(2, 200))
    assert volumes.shape == (2, 1, resolution, resolution, resolution)
    assert 0.0 <= float(volumes.min()) and float(volumes.max()) <= 1.0  # sigmoid occupancies
    assert discriminator(volumes).shape == (2,)
    convs = [m for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    assert [c.out_channels for c in convs] == ([512, 256, 128, 64, 1] if resolution == 64 else [512, 256, 128, 1])
    with pytest.raises(ValueError, match="expected volumes of"):
        discriminator(torch.zeros(1, 1, 16, 16, 16))


def test_final_batchnorm_switch_adds_the_chapter_codes_last_bn() -> None:
    def count(net: torch.nn.Module) -> int:
        return sum(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())

    assert count(VoxelGenerator(resolution=32)) == 3 and count(VoxelGenerator(resolution=32, final_batchnorm=True)) == 4
    assert count(VoxelDiscriminator(resolution=32, final_batchnorm=True)) == 4
    with pytest.raises(ValueError, match="resolution 32 needs 3"):
        VoxelGenerator(resolution=32, channels=[8, 4])


def test_model_defaults_are_the_chapters() -> None:
    model = GAN3D(resolution=32)
    opt_g, opt_d = (
        factory(net.parameters())
        for factory, net in zip(model.optimizer_factories, (model.generator, model.discriminator))
    )
    assert opt_g.defaults["lr"] == 0.0025 and opt_g.defaults["betas"] == (0.5, 0.999)
    assert opt_d.defaults["lr"] == 1e-5 and opt_d.defaults["betas"] == (0.9, 0.999)
    assert model.hparams.noise_std == 0.33 and model.hparams.latent_dim == 200
    assert model.schedule.d_steps == "real_then_fake"
    with pytest.raises(ValueError, match="resolution=64 but the networks"):
        GAN3D(resolution=64, generator=VoxelGenerator(resolution=32))


def _fit_one_step(tmp_path: Path, model: GAN3D) -> None:
    write_voxel_shapes(tmp_path / "shapes", train=2, test=1)
    dm = ShapeNetVoxelsDataModule(folder=str(tmp_path / "shapes"), categories=None, resolution=32, batch_size=4)
    trainer = pl.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, dm)


@pytest.mark.parametrize("last_accuracy, d_updates", [(-1.0, True), (0.9, False)])
def test_d_accuracy_gate(tmp_path: Path, last_accuracy: float, d_updates: bool) -> None:
    torch.manual_seed(0)
    model = GAN3D(
        resolution=32,
        generator=VoxelGenerator(resolution=32, channels=TINY_G),
        discriminator=VoxelDiscriminator(resolution=32, channels=TINY_D),
        d_accuracy_gate=0.8,
    )
    model.last_d_accuracy.fill_(last_accuracy)  # > 0.8: D was too good on the last batch
    d_before = [p.detach().clone() for p in model.discriminator.parameters()]
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    _fit_one_step(tmp_path, model)
    d_changed = any(not torch.equal(a, b) for a, b in zip(d_before, model.discriminator.parameters()))
    assert d_changed == d_updates
    assert any(not torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))  # G always steps
    accuracy = float(model.last_d_accuracy)
    assert 0.0 <= accuracy <= 1.0  # measured on this batch (8 D scores: 4 real, 4 fake) even when D skipped
    assert accuracy * 8 == pytest.approx(round(accuracy * 8))


# ---------------------------------------------------------------------------------------------- metric
def _block(x: int) -> torch.Tensor:
    volume = torch.zeros(1, 8, 8, 8)
    volume[0, x : x + 4, :4, :4] = 1.0
    return volume


def test_iou_coverage_and_mmd_on_hand_made_shapes() -> None:
    a, b = _block(0), _block(2)  # 64 voxels each, overlap 32: IoU 32 / 96 = 1/3
    assert voxel_iou(a.flatten()[None], b.flatten()[None]).item() == pytest.approx(1 / 3)
    empty = torch.zeros(1, 8 * 8 * 8)
    assert voxel_iou(empty, empty).item() == 1.0 and voxel_iou(empty, a.flatten()[None]).item() == 0.0
    references = torch.stack([a, b, _block(4)])
    same = VoxelCoverage(references)
    same.update(references.clone())
    assert {k: float(v) for k, v in same.compute().items()} == {"coverage": 1.0, "mmd": 0.0}
    only_a = VoxelCoverage(references)
    only_a.update(torch.stack([a, a * 0.7]))  # 0.7 > 0.5: still block a after thresholding
    values = only_a.compute()
    # coverage: only a is anyone's nearest → 1/3; MMD: (0 + (1 − 1/3) + (1 − 0)) / 3 (block 4 misses block 0).
    assert float(values["coverage"]) == pytest.approx(1 / 3)
    assert float(values["mmd"]) == pytest.approx((0 + 2 / 3 + 1) / 3)


def test_sharded_states_merge_to_the_single_process_value() -> None:
    torch.manual_seed(0)
    references = (torch.rand(7, 1, 6, 6, 6) > 0.6).float()
    fakes = torch.rand(11, 1, 6, 6, 6)
    single = VoxelCoverage(references)
    single.update(fakes)
    rank0, rank1 = VoxelCoverage(references), VoxelCoverage(references)
    rank0.update(fakes[0::2])  # shard_indices(11, 0, 2)
    rank1.update(fakes[1::2])
    rank0.merge_state(rank1)  # the dist_reduce_fx reductions (sum, max) DDP applies
    expected = {k: float(v) for k, v in single.compute().items()}
    assert {k: float(v) for k, v in rank0.compute().items()} == expected
    assert 0.0 < expected["coverage"] < 1.0 and 0.0 < expected["mmd"] < 1.0

    def sample_fn(count, labels=None, indices=None):
        return fakes[indices]

    values, _ = evaluate_voxel_quality(sample_fn, references[:7], 7, batch_size=3)
    check = VoxelCoverage(references)
    check.update(fakes[:7])
    assert values == {k: float(v) for k, v in check.compute().items()}


# ---------------------------------------------------------------------------------------------- renders, CLI
def test_exposed_faces_and_render() -> None:
    one = np.zeros((3, 3, 3), dtype=bool)
    one[1, 1, 1] = True
    assert exposed_faces(one)[0].shape == (6, 4, 3)
    two = one.copy()
    two[2, 1, 1] = True
    assert len(exposed_faces(two)[0]) == 10  # the shared face is hidden
    volumes = torch.zeros(2, 1, 8, 8, 8)
    volumes[0, 0, 2:6, 2:6, 2:6] = 0.9
    grid = render_volumes(volumes, nrow=2)
    assert grid.dtype == np.uint8 and grid.shape == (160, 320, 3)  # 2 panels of 2 in at 80 dpi
    blue = (grid[..., 2].astype(int) - grid[..., 0].astype(int)) > 60
    assert blue[:, :160].sum() > 100 and blue[:, 160:].sum() == 0  # the empty volume draws nothing
    assert point_cloud(volumes[0]).shape == (64, 3)


@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_voxel_shapes(tmp_path / "data" / "voxel-shapes", train=2, test=2)
    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LIGHTNING_GANS_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["lightning-gans"])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_fit_renders_scores_and_samples_volumes(cli_env: Path) -> None:
    quality = (
        "--trainer.callbacks+=lightning_gans.callbacks.VoxelQualityCallback "
        "--trainer.callbacks.num_samples=10 --trainer.callbacks.at_start=true --trainer.callbacks.batch_size=4"
    ).split()
    main(
        ["fit", "--config", str(REPO / "experiments" / "gan3d_shapes32.yaml"), "--trainer.max_steps=2",
         "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
         "--data.batch_size=4", f"--model.generator.init_args.channels={TINY_G}",
         f"--model.discriminator.init_args.channels={TINY_D}", "--trainer.callbacks=[]",
         "--trainer.callbacks+=lightning_gans.callbacks.VoxelRenderCallback", *quality]
    )  # fmt: skip
    (run,) = (cli_env / "runs" / "gan3d_shapes32").iterdir()
    with Image.open(run / "samples" / "voxels_epoch0001.png") as png:
        assert png.mode == "RGB" and png.size == (640, 640)  # 16 fixed latents: 4×4 panels of 160 px
    clouds = list(run.glob("wandb/offline-run-*/files/media/object3D/samples/voxel_points_*.pts.json"))
    from lightning_gans.workflows.sampling import load_module

    fixed = load_module(run / "checkpoints" / "last.ckpt").sample_fixed()  # the weights the render saw
    non_empty = int((fixed > 0.5).flatten(1).any(1).sum())
    assert len(clouds) == non_empty >= 1  # one W&B Object3D point cloud per non-empty fixed-noise volume
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    scores = [r for r in rows if r.get("kind") == "voxel_quality"]
    assert [r["step"] for r in scores] == [0, 2]  # before training (at_start) and after the last epoch
    for row in scores:
        assert 0.0 <= row["coverage/voxel-iou/10"] <= 1.0 and 0.0 <= row["mmd/voxel-iou/10"] <= 1.0
    out = cli_env / "vox"
    main(["sample", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--n", "3", "--out", str(out)])
    volumes = np.load(out.with_suffix(".npy"))
    assert volumes.shape == (3, 1, 32, 32, 32) and volumes.dtype == np.float32
    assert 0.0 <= volumes.min() and volumes.max() <= 1.0
    with Image.open(out.with_suffix(".png")) as png:
        assert png.size == (320, 320)  # ceil(sqrt(3)) = 2 panels per row, 2 rows


def test_two_process_ddp_metric_equals_one_process(cli_env: Path) -> None:
    """2-rank CPU DDP fit (D-accuracy gate on: the decision is synchronised, nothing hangs) with the voxel metric
    on N = 9 (shards of 5 and 4) vs the same metric of the final checkpoint in one process: identical values.
    (Batches of one volume on both sides: oneDNN convolutions may round differently for other batch sizes, and a
    voxel at 0.5 ± 1e-7 then flips under the threshold.)"""
    import os
    import subprocess

    from datamodules.shapenet import ShapeNetVoxelsDataModule
    from lightning_gans.evaluation import ModuleSampler
    from lightning_gans.workflows.sampling import load_module

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    cmd = [sys.executable, "-m", "lightning_gans.cli", "fit", "--config", str(REPO / "experiments/gan3d_shapes32.yaml")]
    cmd += ["--experiment", "ddp", "--wandb.mode=disabled", "--trainer.enable_progress_bar=false"]
    cmd += ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.max_steps=2"]
    cmd += ["--data.batch_size=2", f"--model.generator.init_args.channels={TINY_G}"]
    cmd += [f"--model.discriminator.init_args.channels={TINY_D}", "--trainer.callbacks=[]"]
    cmd += ["--trainer.callbacks+=lightning_gans.callbacks.VoxelQualityCallback", "--trainer.callbacks.num_samples=9"]
    cmd += ["--trainer.callbacks.batch_size=1"]  # one volume per forward on both sides: identical conv numerics
    proc = subprocess.run(cmd, env=env, cwd=cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (cli_env / "runs" / "ddp").iterdir()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    (ddp,) = [r for r in rows if r.get("kind") == "voxel_quality"]
    module = load_module(run / "checkpoints" / "last.ckpt")
    dm = ShapeNetVoxelsDataModule(folder="voxel-shapes", categories=None, resolution=32)
    references = dm.real_volumes("test")[torch.arange(9)]
    values, _ = evaluate_voxel_quality(ModuleSampler(module, seed=0), references, 9, batch_size=1)
    assert values == {"coverage": ddp["coverage/voxel-iou/9"], "mmd": ddp["mmd/voxel-iou/9"]}
