"""SRGAN / SRResNet: networks, VGG content network, PSNR/SSIM protocol, paired datamodule, training schedule,
stage-1 initialisation, the quality callback and ``lightning-gans upscale`` (all on small generated data)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from data_factories import write_image_folder
from gloo_ranks import run_forked_ranks
from PIL import Image

from datamodules.super_resolution import Rotated, SuperResolutionDataModule, downscale
from lightning_gans.cli import ConfigError, main
from lightning_gans.evaluation.super_resolution import evaluate_super_resolution
from lightning_gans.metrics.super_resolution import (
    MAX_PSNR,
    SuperResolutionScores,
    bicubic_upscale,
    psnr_per_image,
    rgb_to_y,
)
from lightning_gans.models.srgan import SRGAN
from lightning_gans.networks.srgan import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SRGANDiscriminator,
    SRResNetGenerator,
    VGGFeatures,
    VGGWeightsError,
    vgg_layer_index,
)

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
CPU = ["--trainer.accelerator=cpu", "--trainer.devices=1"]
TINY_G = "--model.generator.init_args.num_blocks=1"


def tiny_generator(channels: int = 1, **kwargs) -> SRResNetGenerator:
    return SRResNetGenerator(channels=channels, features=8, num_blocks=1, upsample_features=16, **kwargs)


# ---------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize("upsample", ["nearest", "pixel_shuffle"])
@pytest.mark.parametrize(("channels", "size"), [(3, (16, 16)), (1, (7, 7)), (3, (5, 9))])
def test_generator_output_is_exactly_4x(upsample: str, channels: int, size: tuple[int, int]) -> None:
    generator = tiny_generator(channels, upsample=upsample, activation="prelu")
    out = generator(torch.randn(2, channels, *size))
    assert out.shape == (2, channels, 4 * size[0], 4 * size[1])
    assert generator.scale == 4 and out.abs().max() <= 1.0  # tanh


def test_chapter_generator_structure() -> None:
    generator = SRResNetGenerator()
    assert len(generator.residual) == 16
    block = generator.residual[0].body  # the chapter's code order: Conv → ReLU → BN(0.8) → Conv → BN(0.8)
    assert [type(m).__name__ for m in block] == ["Conv2d", "ReLU", "BatchNorm2d", "Conv2d", "BatchNorm2d"]
    assert block[2].momentum == pytest.approx(0.2) and block[2].eps == pytest.approx(1e-3)
    ups = [m for m in generator.upsample if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in ups] == [(64, 256), (256, 256)]
    assert generator.head[0].kernel_size == (9, 9) and generator.tail[0].kernel_size == (9, 9)


def test_discriminator_outputs() -> None:
    patch = SRGANDiscriminator(channels=3)
    assert patch(torch.randn(2, 3, 256, 256)).shape == (2, 1, 16, 16)  # the chapter's 16×16 patch map
    assert SRGANDiscriminator(channels=1)(torch.randn(3, 1, 28, 28)).shape == (3, 1, 2, 2)
    global_head = SRGANDiscriminator(channels=3, head="global", image_size=96)
    assert global_head(torch.randn(2, 3, 96, 96)).shape == (2, 1)
    strides = [m.stride[0] for m in patch.body if isinstance(m, torch.nn.Conv2d)]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 2]
    with pytest.raises(ValueError, match="image_size"):
        SRGANDiscriminator(head="global")


# ---------------------------------------------------------------------------------------------- VGG
def test_vgg_layer_cut() -> None:
    assert vgg_layer_index("block3_conv3") == vgg_layer_index("relu3_3") == 15
    assert vgg_layer_index("relu5_4") == 35 and vgg_layer_index("conv1_1") == 0
    chapter = VGGFeatures("block3_conv3", load=False)
    assert len(chapter.features) == 16 and isinstance(chapter.features[-1], torch.nn.ReLU)
    assert chapter.features[-2].out_channels == 256
    assert len(VGGFeatures("relu5_4", load=False).features) == 36
    assert chapter(torch.zeros(1, 3, 32, 32)).shape == (1, 256, 8, 8)
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        vgg_layer_index("block9_conv1")


def test_vgg_imagenet_normalisation() -> None:
    """The chapter's bug: [-1, 1] into VGG. Here -1 → (0 − mean)/std and 1 → (1 − mean)/std; grey → 3 channels."""
    vgg = VGGFeatures("relu1_1", load=False)
    low, high = vgg.normalise(torch.full((1, 1, 2, 2), -1.0)), vgg.normalise(torch.ones(1, 3, 2, 2))
    for c in range(3):
        assert low[0, c, 0, 0].item() == pytest.approx(-IMAGENET_MEAN[c] / IMAGENET_STD[c], rel=1e-5)
        assert high[0, c, 1, 1].item() == pytest.approx((1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], rel=1e-5)


def test_vgg_weights_loaded_and_missing(tmp_path: Path) -> None:
    source = VGGFeatures("relu2_1", load=False)
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in source.features.state_dict().items()}, path)
    loaded = VGGFeatures("relu2_1", weights_path=str(path))
    assert torch.equal(loaded.features[5].weight, source.features[5].weight)
    assert not any(p.requires_grad for p in loaded.parameters())
    with pytest.raises(VGGWeightsError, match="missing features.7"):
        VGGFeatures("relu2_2", weights_path=str(path))  # the file stops at layer 6
    with pytest.raises(VGGWeightsError) as err:
        VGGFeatures("relu3_3", weights_path=str(tmp_path / "absent.pth"))
    message = str(err.value)
    assert "absent.pth" in message and str(tmp_path) in message and "content_loss=mse" in message


# ---------------------------------------------------------------------------------------------- metrics
def test_psnr_hand_values_and_cap() -> None:
    target = torch.zeros(2, 1, 8, 8)
    assert psnr_per_image(target + 0.1, target).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)  # MSE 0.01
    assert psnr_per_image(target, target).tolist() == [MAX_PSNR, MAX_PSNR]  # identical: infinite, capped


def test_bicubic_baseline_on_a_known_image() -> None:
    """HR: left half white, right half black; LR: constant grey (0 in [-1, 1]), whose bicubic upscale is that grey
    everywhere, quantised to 128. Hand value: MSE = (127² + 128²)/2 / 255², PSNR = −10·log10(MSE) = 6.0205 dB."""
    hr = torch.ones(1, 3, 16, 16)
    hr[..., 8:] = -1.0
    lr = torch.zeros(1, 3, 4, 4)
    scores = SuperResolutionScores(space="rgb")
    scores.update(hr.clone(), bicubic_upscale(lr, 4), hr)
    values = scores.compute()
    hand = -10 * math.log10((127**2 + 128**2) / 2 / 255**2)
    assert hand == pytest.approx(6.0205, abs=1e-4)
    assert values["psnr_bicubic"] == pytest.approx(hand, abs=1e-4)
    assert values["psnr"] == MAX_PSNR and values["ssim"] == pytest.approx(1.0)
    assert 0.0 < values["ssim_bicubic"] < 0.5  # a flat grey keeps no structure of the edge


def test_y_channel() -> None:
    rgb = torch.stack([torch.zeros(3, 1, 1), torch.ones(3, 1, 1)])
    assert rgb_to_y(rgb).flatten().tolist() == pytest.approx([16 / 255, 235 / 255])


def test_evaluation_is_the_mean_over_images_and_shards_add_up(mnist_root: Path) -> None:
    data = SuperResolutionDataModule(source="mnist", data_dir=str(mnist_root), hr_size=28)
    data.setup("fit")
    pairs = data.pairs("test")
    n = 10
    whole = evaluate_super_resolution(lambda lr: bicubic_upscale(lr, 4) * 0.5, pairs, n, 4, "y", 2, batch_size=3)
    # Two "ranks" (rank r takes r, r + 2, …): their count-weighted means combine to the one-process value.
    halves = [
        evaluate_super_resolution(lambda lr: bicubic_upscale(lr, 4) * 0.5, pairs, n, 4, "y", 2, r, 2) for r in range(2)
    ]
    for key in whole:
        assert whole[key] == pytest.approx((halves[0][key] * 5 + halves[1][key] * 5) / 10, rel=1e-9)
    manual = []
    for i in range(n):
        lr, hr = pairs[i]
        metric = SuperResolutionScores("y", 2)
        metric.update(bicubic_upscale(lr[None], 4) * 0.5, bicubic_upscale(lr[None], 4), hr[None])
        manual.append(metric.compute()["psnr"])
    assert whole["psnr"] == pytest.approx(sum(manual) / n, rel=1e-9)


# ---------------------------------------------------------------------------------------------- data
def test_mnist_pairs(mnist_root: Path) -> None:
    data = SuperResolutionDataModule(source="mnist", data_dir=str(mnist_root), hr_size=28, batch_size=8)
    data.setup("fit")
    assert data.eval_split == "test" and len(data.pairs("test")) == 64 and len(data.pairs("train")) == 256
    lr, hr = data.pairs("test")[3]
    assert lr.shape == (1, 7, 7) and hr.shape == (1, 28, 28)
    digit = data.source.real_images("test")[0][3]
    assert torch.allclose(hr, digit, atol=1e-6)  # 28² HR is the digit itself
    picture = ((hr + 1) * 127.5).round().to(torch.uint8)
    assert torch.allclose(lr, downscale(picture, 4).float() / 127.5 - 1, atol=1e-6)
    lr_batch, hr_batch = next(iter(data.train_dataloader()))
    assert lr_batch.shape == (8, 1, 7, 7) and hr_batch.shape == (8, 1, 28, 28)


def test_flip_is_joint(mnist_root: Path) -> None:
    data = SuperResolutionDataModule(source="mnist", data_dir=str(mnist_root), hr_size=28)
    train, test = data.pairs("train", train=True), data.pairs("train")
    torch.manual_seed(0)
    flipped = 0
    for i in range(20):
        lr, hr = train[i]
        lr_plain, hr_plain = test[i]
        if torch.equal(hr, hr_plain.flip(-1)) and not torch.equal(hr, hr_plain):
            flipped += 1
            assert torch.equal(lr, lr_plain.flip(-1))
        else:
            assert torch.equal(hr, hr_plain) and torch.equal(lr, lr_plain)
    assert 3 <= flipped <= 17  # p = 0.5


def test_celeba_and_image_folder_sources(data_root: Path, tmp_path: Path) -> None:
    celeba = SuperResolutionDataModule(source="celeba", data_dir=str(data_root), hr_size=64)
    celeba.setup("fit")
    assert [len(celeba.pairs(s)) for s in ("train", "valid", "test")] == [12, 4, 4]
    lr, hr = celeba.pairs("test")[0]
    assert lr.shape == (3, 16, 16) and hr.shape == (3, 64, 64)
    crops = SuperResolutionDataModule(source="celeba", data_dir=str(data_root), hr_size=96, hr_transform="random_crop")
    assert crops.pairs("train", train=True)[0][1].shape == (3, 96, 96)
    with pytest.raises(ValueError, match="random_crop"):
        SuperResolutionDataModule(
            source="celeba", data_dir=str(data_root), hr_size=256, hr_transform="random_crop"
        ).pairs("train")
    folder = write_image_folder(tmp_path / "pictures")
    images = SuperResolutionDataModule(source="image_folder", source_args={"folder": str(folder)}, hr_size=32)
    train, held_out = images._files("train").files, images._files("holdout").files
    assert len(held_out) == 1 and len(train) + 1 == len(images.source._load())
    assert not set(train) & set(held_out) and images.eval_split == "holdout"
    rotated = Rotated(images.pairs("train"), 3)
    assert torch.equal(rotated[0][1], images.pairs("train")[3][1])


def test_separate_generator_batches(mnist_root: Path) -> None:
    data = SuperResolutionDataModule(
        source="mnist",
        data_dir=str(mnist_root),
        hr_size=28,
        batch_size=4,
        separate_generator_batch=True,
        shuffle=False,
        flip=False,
    )
    data.setup("fit")
    loaders = data.train_dataloader()
    d_batch, g_batch = next(iter(loaders["discriminator"])), next(iter(loaders["generator"]))
    assert torch.equal(g_batch[1][0], data.pairs("train")[128][1])  # rotated by half of the 256 images
    assert not torch.equal(d_batch[1], g_batch[1])


# ---------------------------------------------------------------------------------------------- model
def test_srgan_step_schedule_and_losses(mnist_root: Path) -> None:
    """One GAN step = D real, D fake, G (three optimizer steps) with global_step + 1; G loss = content + 1e-3·adv."""
    model = SRGAN(generator=tiny_generator(), discriminator=SRGANDiscriminator(channels=1), content_loss="mse")
    data = SuperResolutionDataModule(
        source="mnist", data_dir=str(mnist_root), hr_size=28, batch_size=4, separate_generator_batch=True
    )
    steps: list[str] = []
    trainer = pl.Trainer(
        max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    original = model.configure_optimizers

    def counting():
        (opt_g, opt_d), schedulers = original()
        for name, opt in (("g", opt_g), ("d", opt_d)):
            opt.register_step_post_hook(lambda *a, name=name: steps.append(name))
        return [opt_g, opt_d], schedulers

    model.configure_optimizers = counting
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 2 and steps == ["d", "d", "g"] * 2
    metrics = trainer.callback_metrics
    expected = metrics["g_content"] + 1e-3 * metrics["g_adversarial"]  # epoch means: the same linear relation
    assert metrics["g_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_d_losses_at_known_points() -> None:
    hr = torch.zeros(2, 1, 28, 28)
    batch = (torch.zeros(2, 1, 7, 7), hr)
    for d_loss, real, fake in (("mse", 0.5 * 0.25, 0.5 * 0.25), ("bce", math.log(2), math.log(2))):
        discriminator = SRGANDiscriminator(channels=1)
        for p in discriminator.head[-1].parameters():
            torch.nn.init.zeros_(p)  # logits 0 → sigmoid 0.5
        model = SRGAN(tiny_generator(), discriminator, content_loss="mse", d_loss=d_loss)
        logs = model.discriminator_step(batch)
        assert logs["d_real"].item() == pytest.approx(real, rel=1e-5)
        assert logs["d_fake"].item() == pytest.approx(fake, rel=1e-5)


def test_srresnet_has_one_optimizer_and_rejects_a_discriminator(mnist_root: Path) -> None:
    model = SRGAN(generator=tiny_generator(), adversarial=False, content_loss="mse")
    data = SuperResolutionDataModule(source="mnist", data_dir=str(mnist_root), hr_size=28, batch_size=8)
    trainer = pl.Trainer(
        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 3 and len(trainer.optimizers) == 1
    with pytest.raises(ValueError, match="leave the discriminator out"):
        SRGAN(tiny_generator(), SRGANDiscriminator(channels=1), adversarial=False)
    with pytest.raises(ValueError, match="needs a discriminator"):
        SRGAN(tiny_generator(), adversarial=True)


def test_vgg_content_loss_uses_the_configured_layer(tmp_path: Path) -> None:
    source = VGGFeatures("relu2_2", load=False)
    path = tmp_path / "vgg.pth"
    torch.save({f"features.{k}": v for k, v in source.features.state_dict().items()}, path)
    model = SRGAN(tiny_generator(3), adversarial=False, content_loss="vgg", vgg_layer="relu2_2", vgg_weights=str(path))
    model.setup("fit")
    sr, hr = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    expected = torch.nn.functional.mse_loss(source(sr), source(hr))
    assert model.content(sr, hr).item() == pytest.approx(expected.item(), rel=1e-5)
    assert not any(k.startswith("content") for k in model.state_dict())  # VGG stays out of checkpoints


# ---------------------------------------------------------------------------------------------- CLI
def _fit(runs: Path, experiment: str, *extra: str) -> Path:
    main(["fit", "--config", str(REPO / "experiments" / f"{experiment}.yaml"), *CPU, *QUIET, *extra])
    dirs = sorted(p for p in (runs / experiment).iterdir() if p.is_dir())
    return dirs[-1]


def test_missing_vgg_weights_stop_fit_with_one_error(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    with pytest.raises(SystemExit) as exit_info:
        _fit(runs, "srgan_mnist", "--model.content_loss=vgg", "--trainer.max_steps=1", TINY_G, "--trainer.callbacks=[]")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "vgg19-dcbb9e9d.pth" in err and "empty_torch_home" in err and "content_loss=mse" in err
    assert "Traceback" not in err


def test_two_stages_callback_and_upscale(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    stage1 = _fit(
        runs,
        "srresnet_mnist",
        "--trainer.max_steps=2",
        "--trainer.limit_train_batches=2",
        "--data.batch_size=4",
        TINY_G,
        "--trainer.callbacks=[]",
        "--trainer.callbacks+=lightning_gans.callbacks.SuperResolutionCallback",
        "--trainer.callbacks.num_samples=20",
    )
    rows = [json.loads(line) for line in (stage1 / "metrics.jsonl").read_text().splitlines()]
    quality = [r for r in rows if r["kind"] == "super_resolution"][-1]
    assert quality["n"] == 20 and quality["split"] == "test" and quality["space"] == "y"
    assert {"psnr/y/20", "ssim/y/20", "psnr_bicubic/y/20", "ssim_bicubic/y/20"} <= set(quality)
    with Image.open(stage1 / "samples" / "sr_grid_epoch0001.png") as grid:
        assert grid.size == (4 * 30 + 2, 8 * 30 + 2)  # LR | bicubic | SR | HR, 8 rows of 28² + 2 px padding
    ckpt = stage1 / "checkpoints" / "last.ckpt"

    # Stage 2 starts from stage 1's generator.
    model = SRGAN(
        SRResNetGenerator(channels=1, num_blocks=1, activation="prelu", upsample="pixel_shuffle"),
        SRGANDiscriminator(channels=1),
        content_loss="mse",
        init_generator_from=str(ckpt),
    )
    model.setup("fit")
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert torch.equal(model.generator.head[0].weight, saved["generator.head.0.weight"])
    with pytest.raises(ConfigError, match="does not match"):
        SRGAN(tiny_generator(), adversarial=False, content_loss="mse", init_generator_from=str(ckpt)).setup("fit")
    stage2 = _fit(
        runs,
        "srgan_mnist",
        "--trainer.max_steps=1",
        "--data.batch_size=4",
        TINY_G,
        f"--model.init_generator_from={ckpt}",
        "--trainer.callbacks=[]",
    )
    assert (stage2 / "checkpoints" / "last.ckpt").is_file()

    pictures = tmp_path / "lowres"
    (pictures / "sub").mkdir(parents=True)
    Image.fromarray(np.full((10, 12), 200, np.uint8)).save(pictures / "a.png")
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(pictures / "sub" / "b.jpg")
    (pictures / "broken.png").write_bytes(b"not a png")
    main(["upscale", "--ckpt", str(ckpt), "--input", str(pictures), "--out", str(tmp_path / "up"), "--bicubic"])
    out = capsys.readouterr().out
    assert "wrote 4 images" in out and "broken.png" in out
    with Image.open(tmp_path / "up" / "a.png") as a, Image.open(tmp_path / "up" / "sub" / "b_bicubic.png") as b:
        assert a.size == (48, 40) and a.mode == "L" and b.size == (20, 24)
    main(["upscale", "--ckpt", str(ckpt), "--input", str(pictures / "a.png"), "--out", str(tmp_path / "one")])
    assert (tmp_path / "one" / "a.png").is_file()


# ---------------------------------------------------------------------------------------------- DDP exactness
def _pairs(n: int = 11) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(5)
    return [
        (torch.rand(3, 4, 4, generator=generator) * 2 - 1, torch.rand(3, 16, 16, generator=generator) * 2 - 1)
        for _ in range(n)
    ]


def _darker(lr: torch.Tensor) -> torch.Tensor:
    return bicubic_upscale(lr, 4) * 0.8


def _sr_ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        values = evaluate_super_resolution(_darker, _pairs(), 11, 4, "rgb", 1, rank, world, batch_size=2)
        torch.save(values, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process(tmp_path: Path) -> None:
    """Uneven shards (6 / 5 pairs), real torchmetrics sum-sync over gloo: both ranks report the 1-process scores."""
    assert run_forked_ranks(_sr_ddp_worker, 2, str(tmp_path)) == [0, 0]
    single = evaluate_super_resolution(_darker, _pairs(), 11, 4, "rgb", 1)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got == pytest.approx(single, rel=1e-12)


def test_nearest_upsample_conv_is_exactly_upsample_then_conv() -> None:
    """The chapter's UpSampling2D → Conv2D, computed at low resolution: same outputs and gradients (float64)."""
    from lightning_gans.networks.srgan import NearestUpsampleConv

    torch.manual_seed(0)
    fast = NearestUpsampleConv(5, 7).double()
    reference = torch.nn.Sequential(torch.nn.Upsample(scale_factor=2), torch.nn.Conv2d(5, 7, 3, padding=1)).double()
    reference[1].load_state_dict(fast.state_dict())
    x = torch.randn(2, 5, 6, 9, dtype=torch.float64, requires_grad=True)
    out, expected = fast(x), reference(x)
    assert out.shape == (2, 7, 12, 18) and torch.allclose(out, expected, atol=1e-12)
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), (x, fast.weight, fast.bias))
    expected_grads = torch.autograd.grad((expected * weights).sum(), (x, reference[1].weight, reference[1].bias))
    for got, want in zip(grads, expected_grads):
        assert torch.allclose(got, want, atol=1e-10)
