"""Critic regularisers (gradient penalty, R1, drift, weight clipping) and their integration in ``GANModule``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from toy_training import StepRecorder
from toy_training import bare_trainer as _trainer
from toy_training import toy_loader as _loader
from toy_training import toy_module as _toy_module

from lightning_gans.cli import RUN_DIR_ENV, main
from lightning_gans.losses import clip_weights, drift_penalty, gradient_penalty, r1_penalty
from lightning_gans.models import GAN
from lightning_gans.models.options import Regularisers, Schedule
from lightning_gans.networks import MLPGenerator

REPO = Path(__file__).resolve().parents[1]


def _linear(*weights: float) -> nn.Linear:
    critic = nn.Linear(len(weights), 1, bias=True)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([weights]))
        critic.bias.fill_(0.7)  # a bias changes no input gradient
    return critic


def _half_square(x: torch.Tensor) -> torch.Tensor:
    """D(x) = ½‖x‖² per sample: ∇x D = x."""
    return 0.5 * x.flatten(1).pow(2).sum(1)


# ------------------------------------------------------------------------------------------- gradient penalty
def test_gradient_penalty_zero_for_unit_norm_linear_critic() -> None:
    """D(x) = wᵀx + b with ‖w‖ = 1: ∇x̂ D = w everywhere, so (‖∇‖ − 1)² = 0 at every interpolate."""
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)
    gp = gradient_penalty(_linear(0.6, 0.8), real, fake, generator=g)
    assert gp.item() == pytest.approx(0.0, abs=1e-12)


def test_gradient_penalty_positive_for_non_unit_norm() -> None:
    """‖w‖ = 5: (5 − 1)² = 16 whatever ε; ‖w‖ = 0.5: (0.5 − 1)² = 0.25."""
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    assert gradient_penalty(_linear(3.0, 4.0), real, fake).item() == pytest.approx(16.0)
    assert gradient_penalty(_linear(0.3, 0.4), real, fake).item() == pytest.approx(0.25)


def test_gradient_penalty_hand_computation_with_fixed_epsilon() -> None:
    """D = ½‖x‖², so ∇x̂ D = x̂. ε = (0.25, 0.5):
    x̂₁ = 0.25·(2, 0) + 0.75·(0, 0) = (0.5, 0), ‖·‖ = 0.5 → (0.5 − 1)² = 0.25;
    x̂₂ = 0.5·(0, 0) + 0.5·(0, 4) = (0, 2),   ‖·‖ = 2   → (2 − 1)² = 1;   mean 0.625."""
    real = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    fake = torch.tensor([[0.0, 0.0], [0.0, 4.0]])
    gp = gradient_penalty(_half_square, real, fake, epsilon=torch.tensor([0.25, 0.5]))
    assert gp.item() == pytest.approx(0.625)
    # Image-shaped batches: ε is per sample, broadcast over C×H×W (same numbers laid out as 1×1×2).
    gp_img = gradient_penalty(
        _half_square, real.view(2, 1, 1, 2), fake.view(2, 1, 1, 2), epsilon=torch.tensor([0.25, 0.5])
    )
    assert gp_img.item() == pytest.approx(0.625)


def test_gradient_penalty_random_epsilon_is_per_sample_and_seedable() -> None:
    real, fake = torch.zeros(64, 3), torch.ones(64, 3)
    a = gradient_penalty(_half_square, real, fake, generator=torch.Generator().manual_seed(3))
    b = gradient_penalty(_half_square, real, fake, generator=torch.Generator().manual_seed(3))
    assert a.item() == b.item()
    # x̂ = (1 − ε)·1, ‖x̂‖ = √3(1 − ε): the draw equals the one the generator gives for ε.
    eps = torch.rand(64, generator=torch.Generator().manual_seed(3))
    assert a.item() == pytest.approx(((3**0.5 * (1 - eps) - 1) ** 2).mean().item(), rel=1e-5)
    assert eps.std() > 0.1  # one ε per sample, not one per batch


def test_gradient_penalty_reaches_only_the_critic() -> None:
    """create_graph=True: the penalty is differentiable in the critic's weights, d/dw (‖w‖−1)² = 2(‖w‖−1)w/‖w‖;
    the samples are detached, so nothing flows back into whatever produced the fakes."""
    critic = _linear(3.0, 4.0)
    producer = nn.Parameter(torch.ones(4, 2))
    fake = producer * 2.0
    gradient_penalty(critic, torch.randn(4, 2), fake).backward()
    torch.testing.assert_close(critic.weight.grad, torch.tensor([[2 * 4 * 0.6, 2 * 4 * 0.8]]))
    assert producer.grad is None


def test_gradient_penalty_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(_half_square, torch.zeros(2, 3), torch.zeros(3, 3))


# ------------------------------------------------------------------------------------------- R1, drift, clip
def test_r1_penalty_hand_computation() -> None:
    """D = ½‖x‖²: ‖∇x D‖² = ‖x‖²; x = (1, 2), (3, 0) → (5 + 9)/2 = 7. Linear ‖w‖ = 5 → 25."""
    real = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    assert r1_penalty(_half_square, real).item() == pytest.approx(7.0)
    assert r1_penalty(_linear(3.0, 4.0), real).item() == pytest.approx(25.0)


def test_drift_penalty_value() -> None:
    """E D(x)² for scores (1, −2, 3): (1 + 4 + 9)/3."""
    assert drift_penalty(torch.tensor([1.0, -2.0, 3.0])).item() == pytest.approx(14.0 / 3.0)


def test_clip_weights_in_place() -> None:
    net = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-2.0, 2.0)
    clip_weights(net, 0.01)
    assert all(p.abs().max() <= 0.01 for p in net.parameters())
    with pytest.raises(ValueError, match="> 0"):
        clip_weights(net, 0.0)


# ------------------------------------------------------------------------------------------- module integration
def test_discriminator_step_adds_weighted_penalties() -> None:
    torch.manual_seed(0)
    module = _toy_module(loss="wasserstein", regularisers=Regularisers(gradient_penalty=10.0, r1_gamma=4.0, drift=1e-3))
    batch = (torch.randn(8, 2), torch.zeros(8))
    logs = module.discriminator_step(batch, "both")
    assert {"d_real", "d_fake", "d_gp", "d_r1", "d_drift"} <= set(logs)
    expected = logs["d_real"] + logs["d_fake"] + 10.0 * logs["d_gp"] + 2.0 * logs["d_r1"] + 1e-3 * logs["d_drift"]
    torch.testing.assert_close(logs["loss"], expected)
    # real_then_fake: the GP needs fakes (fake step), R1 and drift need D(x) (real step).
    assert {"d_r1", "d_drift"} <= set(module.discriminator_step(batch, "real")) and "d_gp" not in set(
        module.discriminator_step(batch, "real")
    )
    fake_logs = module.discriminator_step(batch, "fake")
    assert "d_gp" in fake_logs and "d_r1" not in fake_logs and "d_drift" not in fake_logs
    # Off by default: no penalty keys, loss = real + fake.
    plain = _toy_module(loss="wasserstein").discriminator_step(batch, "both")
    assert set(plain) == {"d_real", "d_fake", "loss"}


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_weight_clip_after_every_critic_step(tmp_path: Path, update: str) -> None:
    """A short WGAN fit with weight_clip=0.01: after every batch all critic parameters lie in [−c, c]."""
    c = 0.01
    module = _toy_module(loss="wasserstein", regularisers=Regularisers(weight_clip=c), schedule=Schedule(update=update))
    assert max(float(p.abs().max()) for p in module.discriminator.parameters()) > c  # clipping has work to do

    class CheckClipped(pl.Callback):
        batches = 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            assert all(p.abs().max() <= c for p in pl_module.discriminator.parameters())
            self.batches += 1

    check = CheckClipped()
    _trainer(tmp_path, max_epochs=1, callbacks=[check]).fit(module, _loader(4))
    assert check.batches == 4
    assert any(float(p.abs().max()) == pytest.approx(c) for p in module.discriminator.parameters())


def test_n_critic_five_critic_steps_per_generator_step(tmp_path: Path) -> None:
    """n_critic=5 over 10 batches: the optimizer steps go D D D D D G D D D D D G."""
    recorder = StepRecorder()
    trainer = _trainer(tmp_path, max_epochs=1, callbacks=[recorder])
    penalty = Regularisers(gradient_penalty=10.0)
    module = _toy_module(loss="wasserstein", schedule=Schedule(n_critic=5), regularisers=penalty)
    trainer.fit(module, _loader(10))
    assert recorder.order == "DDDDDG" * 2
    assert trainer.global_step == 10
    assert {"d_gp", "d_loss", "g_loss"} <= set(trainer.callback_metrics)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gradient_penalty": 10.0, "weight_clip": 0.01}, "set only one"),
        ({"gradient_penalty": -1.0}, "gradient_penalty must be > 0"),
        ({"r1_gamma": 0.0}, "r1_gamma must be > 0"),
        ({"weight_clip": -0.01}, "weight_clip must be > 0"),
        ({"drift": 0.0}, "drift must be > 0"),
    ],
)
def test_rejected_regulariser_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _toy_module(regularisers=Regularisers(**kwargs))


def test_gradient_penalty_warns_about_batchnorm_in_critic() -> None:
    critic = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1), nn.Flatten(0))
    with pytest.warns(UserWarning, match="BatchNorm"):
        GAN(
            generator=MLPGenerator(latent_dim=4, hidden=[8], out_shape=[2], output="linear"),
            discriminator=critic,
            latent_dim=4,
            regularisers=Regularisers(gradient_penalty=10.0),
        )


# ------------------------------------------------------------------------------------------- experiments
# lsgan_mnist/hinge_mnist set no regulariser: test_cli's generic fast_dev_run over experiments/*.yaml covers them.
@pytest.mark.parametrize("experiment", ["wgan_mnist", "wgan_gp_mnist"])
def test_experiment_short_fit(
    experiment: str, mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(mnist_root))
    monkeypatch.setenv("LIGHTNING_GANS_RUNS", str(runs))
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["lightning-gans"])
    monkeypatch.chdir(tmp_path)
    config = REPO / "experiments" / f"{experiment}.yaml"
    main(
        ["fit", "--config", str(config), "--wandb.mode=disabled", "--trainer.accelerator=cpu", "--trainer.devices=1"]
        + ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
        + ["--trainer.callbacks=[]", "--trainer.max_steps=2", "--trainer.max_epochs=-1", "--data.batch_size=16"]
    )
    (run,) = (runs / experiment).iterdir()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2
    hp = ckpt["hyper_parameters"]
    critic = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("discriminator.")}
    if experiment == "wgan_mnist":
        assert hp["regularisers"]["weight_clip"] == 0.01 and hp["schedule"]["n_critic"] == 5
        assert all(v.abs().max() <= 0.01 for v in critic.values())
    if experiment == "wgan_gp_mnist":
        assert hp["regularisers"]["gradient_penalty"] == 10.0 and hp["schedule"]["n_critic"] == 5
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = set().union(*rows)
    assert {"d_loss", "d_real", "d_fake"} & logged
    assert ("d_gp" in logged) == (experiment == "wgan_gp_mnist")
