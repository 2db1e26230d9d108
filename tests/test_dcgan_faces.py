"""64×64 face DCGANs: the TF2 faces seed (CelebA) and GAN Projects ch. 4 (anime) — shapes, layers, configs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lightning_gans.cli import GANLightningCLI
from lightning_gans.networks.dcgan_faces import (
    AnimeDiscriminator,
    AnimeGenerator,
    DCGANFacesDiscriminator,
    DCGANFacesGenerator,
)

REPO = Path(__file__).resolve().parents[1]


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _output_sizes(net: nn.Module, kind: type, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Output shapes (without the batch) of every ``kind`` layer in forward order."""
    sizes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:]))) for m in net.modules()]
    hooks = [h for h, m in zip(hooks, net.modules(), strict=True) if isinstance(m, kind) or h.remove()]
    with torch.no_grad():
        net.eval()(x)
    for h in hooks:
        h.remove()
    return sizes


@pytest.mark.parametrize("generator", [DCGANFacesGenerator, AnimeGenerator])
def test_generators_make_64px_rgb_in_tanh_range(generator: type) -> None:
    torch.manual_seed(0)
    images = generator().train()(torch.randn(3, 100))
    assert images.shape == (3, 3, 64, 64)
    assert images.abs().max() <= 1.0 and images.std() > 0.01


@pytest.mark.parametrize("discriminator", [DCGANFacesDiscriminator, AnimeDiscriminator])
def test_discriminators_return_one_logit_per_image(discriminator: type) -> None:
    logits = discriminator()(torch.rand(3, 3, 64, 64) * 2 - 1)
    assert logits.shape == (3,) and logits.dtype == torch.float32


def test_faces_seed_architecture() -> None:
    g, d = DCGANFacesGenerator(), DCGANFacesDiscriminator()
    # G: Dense 100→4·4·1024 (no bias) + BN, ConvT 1024→512→256→128 (k5, BN) and 128→3, all bias-free.
    assert (
        _count(g)
        == (100 * 16384 + 2 * 16384)
        + sum(a * b * 25 + 2 * b for a, b in ((1024, 512), (512, 256), (256, 128)))
        + 128 * 3 * 25
    )
    assert _count(g) == 18_885_760
    assert _output_sizes(g, nn.ConvTranspose2d, torch.randn(2, 100)) == [
        (512, 8, 8),
        (256, 16, 16),
        (128, 32, 32),
        (3, 64, 64),
    ]
    # D: Conv 3→64→512→128 (k5 s2, biases) → Dense 8192→1.
    assert _count(d) == sum(a * b * 25 + b for a, b in ((3, 64), (64, 512), (512, 128))) + 8192 + 1 == 2_471_297
    assert _output_sizes(d, nn.Conv2d, torch.randn(2, 3, 64, 64)) == [(64, 32, 32), (512, 16, 16), (128, 8, 8)]
    assert {m.negative_slope for m in [*g.modules(), *d.modules()] if isinstance(m, nn.LeakyReLU)} == {0.3}
    assert [m.p for m in d.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3, 0.3]
    assert {(m.momentum, m.eps) for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)} == {
        (0.01, 1e-3)
    }


def test_anime_architecture() -> None:
    g, d = AnimeGenerator(), AnimeDiscriminator()
    # G: Dense 100→2048, Dense 2048→16384 + BN(16384), Conv k5 256→128→64→3 (with biases), no BN in the convs.
    dense = (100 * 2048 + 2048) + (2048 * 16384 + 16384) + 2 * 16384
    assert _count(g) == dense + sum(a * b * 25 + b for a, b in ((256, 128), (128, 64), (64, 3))) == 34_839_427
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 0
    assert _output_sizes(g, nn.Conv2d, torch.randn(2, 100)) == [(128, 16, 16), (64, 32, 32), (3, 64, 64)]
    # D: Conv 128 k5 same, 256 k3 valid, 512 k3 valid, each → MaxPool 2; Dense 18432→1024→1.
    convs = (3 * 128 * 25 + 128) + (128 * 256 * 9 + 256) + (256 * 512 * 9 + 512)
    assert _count(d) == convs + (18432 * 1024 + 1024) + (1024 + 1) == 20_361_473
    assert _output_sizes(d, nn.MaxPool2d, torch.randn(2, 3, 64, 64)) == [(128, 32, 32), (256, 15, 15), (512, 6, 6)]
    assert {m.negative_slope for m in [*g.modules(), *d.modules()] if isinstance(m, nn.LeakyReLU)} == {0.2}
    assert isinstance(list(g.net)[-1], nn.Tanh)


def _experiment(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GANLightningCLI:
    monkeypatch.setenv("LIGHTNING_GANS_RUNS", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["lightning-gans"])
    args = ["--config", str(REPO / "experiments" / f"{name}.yaml"), "--wandb.mode=disabled"]
    return GANLightningCLI(args=[*args, "--trainer.accelerator=cpu"], run=False)


def test_experiment_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    celeba = _experiment("dcgan_celeba", tmp_path, monkeypatch)
    assert isinstance(celeba.model.generator, DCGANFacesGenerator)
    assert celeba.model.schedule.update == "simultaneous"
    for optimizer in celeba.model.configure_optimizers()[0]:  # ([G, D], schedulers)
        assert isinstance(optimizer, torch.optim.Adam)
        assert optimizer.defaults["lr"] == 1e-4 and optimizer.defaults["eps"] == 1e-7
    assert celeba.datamodule.crop_box == [25, 65, 153, 193] and celeba.datamodule.batch_size == 8
    assert celeba.datamodule.image_size == 64 and celeba.datamodule.limit is None

    anime = _experiment("dcgan_anime", tmp_path, monkeypatch)
    assert isinstance(anime.model.discriminator, AnimeDiscriminator)
    assert anime.model.tricks.noisy_labels == 0.2 and anime.model.schedule.d_steps == "real_then_fake"
    for optimizer in anime.model.configure_optimizers()[0]:
        assert isinstance(optimizer, torch.optim.SGD)
        assert (optimizer.defaults["lr"], optimizer.defaults["momentum"], optimizer.defaults["nesterov"]) == (
            5e-4,
            0.9,
            True,
        )
    assert anime.datamodule.batch_size == 128 and anime.datamodule.hparams.folder == "anime-faces"
