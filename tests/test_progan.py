"""ProGAN (Karras et al. 2018): equalised LR, pixel norm, minibatch stddev, fade-in, growth schedule, resume."""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from toy_training import bare_trainer

from lightning_gans.callbacks import ProgressiveGrowing
from lightning_gans.callbacks.progressive import Permutation, ScheduledBatchSampler, growth_at, images_to_reach
from lightning_gans.models import ProGAN
from lightning_gans.networks import ProGANDiscriminator, ProGANGenerator
from lightning_gans.networks.blocks import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, PixelNorm
from lightning_gans.networks.progan import upsample

TINY = {"channel_base": 64, "max_channels": 8}  # 8 channels up to 8×8, 4 at 16×16


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks: one intra-op thread is faster, and far faster on a loaded 2-core machine (no spin-waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _nets(resolution: int = 16, channels: int = 1) -> tuple[ProGANGenerator, ProGANDiscriminator]:
    torch.manual_seed(0)
    g = ProGANGenerator(latent_dim=8, resolution=resolution, channels=channels, **TINY)
    d = ProGANDiscriminator(resolution=resolution, channels=channels, **TINY)
    return g, d


# ------------------------------------------------------------------------------------------------ layers
def test_equalized_lr_stores_unit_normal_and_scales_at_runtime() -> None:
    torch.manual_seed(0)
    conv = EqualizedConv2d(64, 64, 3, padding=1)  # fan_in 576: effective std √2/24 = 0.0589
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.02)
    assert conv.weight.mean().item() == pytest.approx(0.0, abs=0.02)
    assert torch.equal(conv.bias, torch.zeros(64))
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(576))
    assert (conv.weight * conv.scale).std().item() == pytest.approx(math.sqrt(2) / 24, rel=0.02)
    linear = EqualizedLinear(256, 512, gain=1.0)
    assert linear.weight.std().item() == pytest.approx(1.0, abs=0.02)
    assert (linear.weight * linear.scale).std().item() == pytest.approx(1 / 16, rel=0.02)
    # Runtime scaling: changing the stored weight changes the output by weight·scale, in every forward.
    x = torch.randn(2, 64, 5, 5)
    with torch.no_grad():
        conv.weight.mul_(3.0)
        conv.bias.fill_(0.5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * conv.scale, conv.bias, padding=1))
    # Gradient w.r.t. the stored weight = scale · gradient w.r.t. the effective weight.
    w_eff = (conv.weight * conv.scale).detach().requires_grad_(True)
    F.conv2d(x, w_eff, conv.bias.detach(), padding=1).sum().backward()
    conv(x).sum().backward()
    torch.testing.assert_close(conv.weight.grad, w_eff.grad * conv.scale)


def test_pixel_norm_gives_unit_mean_square_per_pixel() -> None:
    x = torch.randn(4, 16, 5, 5) * 7.0 + 3.0
    y = PixelNorm()(x)
    torch.testing.assert_close(y.pow(2).mean(dim=1), torch.ones(4, 5, 5), rtol=0, atol=1e-5)
    # Direction per pixel unchanged (a positive rescaling of each feature vector).
    assert torch.all((y / x).std(dim=1) < 1e-5)


def test_minibatch_stddev_equals_hand_computation() -> None:
    # Two samples, one feature, one pixel: values 0 and 2 → population std 1 → feature √(1 + 1e-8) for both.
    out = MinibatchStdDev()(torch.tensor([0.0, 2.0]).view(2, 1, 1, 1))
    assert out.shape == (2, 2, 1, 1)
    assert out[:, 1].flatten().tolist() == pytest.approx([1.0, 1.0], abs=1e-7)
    # B = 8, G = 4: group slot m ∈ {0, 1} holds samples m, m+2, m+4, m+6 (the book's [G, B/G, …] reshape).
    torch.manual_seed(1)
    x = torch.randn(8, 3, 2, 2)
    out = MinibatchStdDev()(x)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], x)
    for i in range(8):
        members = x[i % 2 :: 2]  # 4 samples
        std = ((members - members.mean(0)) ** 2).mean(0).add(1e-8).sqrt()
        assert torch.allclose(out[i, 3], std.mean().expand(2, 2), atol=1e-6)
    # B = 6: 4 does not divide 6 → groups of 3 (slots i mod 2).
    out6 = MinibatchStdDev()(x[:6])
    members = x[0:6:2]
    std = ((members - members.mean(0)) ** 2).mean(0).add(1e-8).sqrt().mean()
    assert out6[0, 3, 0, 0].item() == pytest.approx(std.item(), abs=1e-6)


# ------------------------------------------------------------------------------------------------ fade-in
def test_generator_fade_in_alpha_zero_is_old_network_upsampled_and_one_the_new_path() -> None:
    g, _ = _nets()
    z = torch.randn(4, 8)
    with torch.no_grad():
        old = g(z, level=1, alpha=1.0)
        assert old.shape == (4, 1, 8, 8)
        assert torch.equal(g(z, level=2, alpha=0.0), upsample(old))
        h = g.stem_conv(g.stem_dense(z).view(4, -1, 4, 4))
        h = g.blocks[0](upsample(h))
        new = g.to_rgb[2](g.blocks[1](upsample(h)))
        assert torch.equal(g(z, level=2, alpha=1.0), new)
        assert torch.equal(g(z), new)  # level None: full resolution
        torch.testing.assert_close(g(z, level=2, alpha=0.25), 0.75 * upsample(old) + 0.25 * new)


def test_discriminator_fade_in_alpha_zero_is_old_network_on_downsampled_input() -> None:
    _, d = _nets()
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(d(x, level=2, alpha=0.0), d(F.avg_pool2d(x, 2), level=1, alpha=1.0))
        h_new = d.blocks[1](d.act(d.from_rgb[2](x)))
        h_old = d.act(d.from_rgb[1](F.avg_pool2d(x, 2)))
        assert torch.equal(d(x, level=2, alpha=1.0), d.final(d.blocks[0](h_new)))
        mixed = d.final(d.blocks[0](0.5 * h_old + 0.5 * h_new))
        torch.testing.assert_close(d(x, level=2, alpha=0.5), mixed)
        assert d(x).shape == (4, 1)
    with pytest.raises(ValueError, match="resolutions"):
        d(torch.randn(2, 1, 12, 12))
    with pytest.raises(ValueError, match="power of two"):
        ProGANGenerator(resolution=24)


def test_model_pads_pools_and_blends_reals_and_samples_in_dataset_format() -> None:
    g, d = _nets(resolution=32)
    model = ProGAN(g, d, real_image_size=28, latent_dim=8)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    model.set_growth(3, 1.0)
    full = model.real_samples((x,))
    assert full.shape == (4, 1, 32, 32)
    assert torch.equal(full[..., 2:30, 2:30], x) and torch.all(full[..., :2, :] == -1)
    model.set_growth(2, 0.25)  # 16 px, fading in: reals blend 16 px and 8 px (upsampled)
    current = F.avg_pool2d(full, 2)
    torch.testing.assert_close(model.real_samples((x,)), 0.75 * upsample(F.avg_pool2d(current, 2)) + 0.25 * current)
    assert model.sample(3, native=True).shape == (3, 1, 16, 16)
    samples = model.sample(3)
    assert samples.shape == (3, 1, 28, 28) and samples.abs().max() <= 1
    with pytest.raises(ValueError, match="real_image_size"):
        model.real_samples((torch.zeros(2, 1, 32, 32),))


# ------------------------------------------------------------------------------------------------ schedule
def test_growth_schedule_values() -> None:
    # 100 images per stabilisation phase, 50 per fade-in, levels 0..3.
    expected = {0: (0, 1.0), 99: (0, 1.0), 100: (1, 0.0), 125: (1, 0.5), 150: (1, 1.0), 249: (1, 1.0)}
    expected.update({250: (2, 0.0), 280: (2, 0.6), 400: (3, 0.0), 450: (3, 1.0), 10**6: (3, 1.0)})
    for images, (level, alpha) in expected.items():
        got = growth_at(images, 3, 100, 50)
        assert got[0] == level and got[1] == pytest.approx(alpha), images
    assert images_to_reach(3, 100, 50) == 450 and growth_at(450, 3, 100, 50) == (3, 1.0)
    sizes = iter([2, 2, 3, 3, 3])
    batches = list(iter(ScheduledBatchSampler(Permutation(10), lambda: next(sizes))))
    assert batches == [[0, 1], [2, 3], [4, 5, 6], [7, 8, 9]]  # the size is read at every batch
    with pytest.raises(ValueError, match="batch_sizes"):
        ProgressiveGrowing(images_per_phase=10, batch_sizes={6: 4})


class _Images(pl.LightningDataModule):
    def __init__(self, n: int = 96, size: int = 16, batch_size: int = 8) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.images = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.images), batch_size=self.batch_size, shuffle=True)


class _Recorder(pl.Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.start: tuple[int, float, int, int] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: ProGAN) -> None:
        self.start = (pl_module.level, pl_module.alpha, int(pl_module.images_shown), trainer.global_step)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: ProGAN, batch, batch_idx: int) -> None:
        self.seen.append((pl_module.current_resolution, batch[0].shape[0]))


def _fit(tmp_path: Path, max_steps: int, ckpt: Path | None = None) -> tuple[ProGAN, _Recorder, pl.Trainer]:
    g, d = _nets()
    model = ProGAN(g, d, latent_dim=8)
    growing = ProgressiveGrowing(images_per_phase=16, batch_sizes={4: 8, 8: 4})
    recorder = _Recorder()
    trainer = bare_trainer(
        tmp_path, max_steps=max_steps, callbacks=[growing, recorder], reload_dataloaders_every_n_epochs=1
    )
    trainer.fit(model, datamodule=_Images(), ckpt_path=ckpt, weights_only=False)
    return model, recorder, trainer


def test_schedule_grows_to_target_with_batch_size_per_resolution_and_resumes_mid_fade(tmp_path: Path) -> None:
    # Phases of 16 images: 4 px for 16 images (2 batches of 8), then 8 px and 16 px fade in and stabilise (batches
    # of 4); 16 px is fully faded in after images_to_reach(2) = 64 images = 2·8 + 12·4, i.e. after 14 steps.
    model, rec, _ = _fit(tmp_path / "straight", max_steps=14)
    assert (model.current_resolution, model.alpha, int(model.images_shown)) == (16, 1.0, 64)
    assert [size for _, size in rec.seen] == [8, 8] + [4] * 12  # the batch size follows the resolution at once
    assert [r for r, _ in rec.seen] == [4, 4] + [8] * 8 + [16] * 4

    # Interrupt mid-fade after 11 steps: 16 + 9·4 = 52 images, 4 into the 16-image fade-in of 16 px → α = 0.25.
    part, _, trainer = _fit(tmp_path / "part", max_steps=11)
    assert (part.current_resolution, int(part.images_shown), part.alpha) == (16, 52, 0.25)
    ckpt = tmp_path / "mid.ckpt"
    trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=False)
    assert saved["state_dict"]["fade_in_alpha"].item() == pytest.approx(0.25)
    resumed, rec2, trainer2 = _fit(tmp_path / "resumed", max_steps=14, ckpt=ckpt)
    assert rec2.start == (2, 0.25, 52, 11)  # level, α, images shown and step restored before the first batch
    assert rec2.seen == [(16, 4)] * 3
    assert trainer2.global_step == 14
    assert (int(resumed.images_shown), resumed.level, resumed.alpha) == (64, 2, 1.0)


# ------------------------------------------------------------------------------------------------ DDP
def _ddp_progan_worker(rank: int, world: int, port: int, out: str, use_distributed_sampler: bool) -> None:
    """One rank of a 2-process ``gan_ddp`` fit with per-resolution batch sizes; saves its batches and weights."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world))
    os.environ.update(NODE_RANK="0", LOCAL_RANK=str(rank), RANK=str(rank))
    g, d = _nets()
    model = ProGAN(g, d, latent_dim=8)
    data = _Images()
    images = data.images
    data.train_dataloader = lambda: DataLoader(
        TensorDataset(images, torch.arange(len(images))), batch_size=8, shuffle=True
    )
    seen: list[tuple[int, int, list[int], int]] = []

    class Batches(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append((pl_module.current_resolution, batch[0].shape[0], batch[1].tolist(), trainer.current_epoch))

    growing = ProgressiveGrowing(images_per_phase=16, batch_sizes={4: 8, 8: 4})
    trainer = pl.Trainer(
        accelerator="cpu", devices=world, strategy="gan_ddp", max_steps=8, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=out, callbacks=[growing, Batches()],
        reload_dataloaders_every_n_epochs=1, use_distributed_sampler=use_distributed_sampler,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"seen": seen, "state": state, "images_shown": int(model.images_shown)}, Path(out) / f"rank{rank}.pt")


@pytest.mark.parametrize("use_distributed_sampler", [True, False])
def test_per_resolution_batch_sizes_under_ddp_are_per_process_on_disjoint_shards(
    tmp_path: Path, use_distributed_sampler: bool
) -> None:
    """2 ranks, batch sizes {4: 8, 8: 4} per process, phases of 16 images: the first step trains 2 × 8 = 16 images
    at 4 px (the whole first phase), then every step 2 × 4: 8 px fades in and stabilises over 32 images (4 steps), then
    16 px. Each rank reads its own shard: within an epoch (96 images, 48 per rank) no index is read twice or by both
    ranks, in the order of the shuffled ``DistributedSampler`` Lightning would inject (reshuffled by ``set_epoch``),
    and both end with identical weights. The callback shards the data itself, so also without Lightning's sampler."""
    from gloo_ranks import run_forked_ranks

    assert run_forked_ranks(_ddp_progan_worker, 2, str(tmp_path), use_distributed_sampler) == [0, 0]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for rank in ranks:
        assert [(res, size) for res, size, _, _ in rank["seen"]] == [(4, 8)] + [(8, 4)] * 4 + [(16, 4)] * 3
        assert rank["images_shown"] == 16 + 7 * 8  # all ranks' images
    epochs = {e for *_, e in ranks[0]["seen"]}
    assert epochs == {0, 1}  # an epoch is as many batches as the length at its start (48 / 8 = 6)
    for epoch in epochs:
        reads = [[i for *_, idx, e in r["seen"] if e == epoch for i in idx] for r in ranks]
        assert all(len(r) == len(set(r)) for r in reads)  # each rank: one pass over its shard
        assert not set(reads[0]) & set(reads[1])  # the shards are disjoint
        for rank, read in enumerate(reads):
            sampler = DistributedSampler(range(96), 2, rank, shuffle=True, seed=int(os.getenv("PL_GLOBAL_SEED", "0")))
            sampler.set_epoch(epoch)
            assert read == list(sampler)[: len(read)]  # shuffled, and the epoch reached the sampler
    assert all(torch.equal(v, ranks[1]["state"][k]) for k, v in ranks[0]["state"].items())


def _rank_loader(growing: ProgressiveGrowing, data: pl.LightningDataModule, rank: int) -> DataLoader:
    """The datamodule's re-batched train loader as ``rank`` of 2 builds it (a stand-in trainer)."""
    original = data.train_dataloader
    shard = {"num_replicas": 2, "rank": rank}
    growing._wrap_dataloader(SimpleNamespace(datamodule=data, world_size=2, distributed_sampler_kwargs=shard))
    loader = data.train_dataloader()
    data.train_dataloader = original
    return loader


def test_rebatched_loader_reads_disjoint_complete_shards_per_rank_at_the_new_batch_size() -> None:
    data = _Images(n=22, size=4, batch_size=3)
    data.train_dataloader = lambda: DataLoader(TensorDataset(torch.arange(22)), batch_size=3, shuffle=True)
    growing = ProgressiveGrowing(images_per_phase=16, batch_sizes={4: 4, 8: 2})
    growing._module = SimpleNamespace(current_resolution=4)
    loaders = [_rank_loader(growing, data, rank) for rank in (0, 1)]
    for loader in loaders:  # Lightning injects no sampler of its own: the loader reports the rank's shard
        assert isinstance(loader.sampler, DistributedSampler) and loader.sampler is loader.batch_sampler.sampler
        assert loader.sampler.shuffle and loader.sampler.num_replicas == 2
    assert [loader.sampler.rank for loader in loaders] == [0, 1]
    orders = []
    for epoch in (0, 1):
        reads = []
        for loader in loaders:
            _set_sampler_epoch(loader, epoch)  # what Lightning's fit loop calls at every epoch
            growing._module.current_resolution = 4
            batches = []
            for (batch,) in loader:
                batches.append(batch.tolist())
                growing._module.current_resolution = 8  # the resolution changes after the first batch
            assert [len(b) for b in batches] == [4, 2, 2, 2, 1]  # 11 per rank: 4 at 4 px, then 2 per batch
            reads.append([i for b in batches for i in b])
        assert not set(reads[0]) & set(reads[1]) and sorted(reads[0] + reads[1]) == list(range(22))
        orders.append(reads)
    assert orders[0] != orders[1]  # set_epoch reached the sampler: a new shuffle


def test_rebatched_loader_keeps_the_datamodules_distributed_sampler_and_refuses_a_wrong_one() -> None:
    dataset = TensorDataset(torch.arange(10))
    data = _Images(n=10, size=4, batch_size=3)
    growing = ProgressiveGrowing(images_per_phase=16, batch_sizes={4: 4})
    growing._module = SimpleNamespace(current_resolution=4)
    own = {r: DistributedSampler(dataset, 2, r, shuffle=False) for r in (0, 1)}
    loaders = []
    for rank in (0, 1):
        data.train_dataloader = lambda rank=rank: DataLoader(dataset, batch_size=3, sampler=own[rank])
        loaders.append(_rank_loader(growing, data, rank))
    assert [loader.sampler for loader in loaders] == [own[0], own[1]]
    assert [[b.tolist() for (b,) in loader] for loader in loaders] == [[[0, 2, 4, 6], [8]], [[1, 3, 5, 7], [9]]]
    data.train_dataloader = lambda: DataLoader(dataset, batch_size=3, sampler=own[0])
    with pytest.raises(ValueError, match="rank 0 of 2, this process is rank 1 of 2"):
        _rank_loader(growing, data, 1)
    data.train_dataloader = lambda: DataLoader(dataset, batch_size=3)  # unshuffled: sharded as Lightning would
    assert _rank_loader(growing, data, 1).sampler.shuffle  # Lightning shuffles every training shard it injects
