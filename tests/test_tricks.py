"""Training tricks: label smoothing, noisy labels, instance noise, feature matching, minibatch discrimination,
packing and discriminator pre-training — values at known points and their effect on the training loop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from toy_training import StepRecorder, bare_trainer, toy_loader, toy_module

from lightning_gans.losses import feature_matching_loss, get_loss
from lightning_gans.models import GAN
from lightning_gans.models.options import Regularisers, Schedule, Tricks
from lightning_gans.networks import (
    DCGANDiscriminator28,
    MinibatchDiscrimination,
    MLPDiscriminator,
    MLPGenerator,
    ProGANDiscriminator,
)
from lightning_gans.tricks import FeatureTap, instance_noise_std, label_targets, pack_samples


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _constant_critic(module: GAN, value: float) -> None:
    """Make every D output ``value`` (one per sample), while keeping the module otherwise intact."""
    module.discriminate = lambda x, batch: torch.full((x.shape[0],), value)  # type: ignore[method-assign]


BATCH = (torch.zeros(6, 2), torch.zeros(6))


# ------------------------------------------------------------------------------------------- label targets
def test_one_sided_label_smoothing_changes_only_the_real_target() -> None:
    """s = 0.1: real target 0.9, so at logit 2 the real term is 0.9·softplus(−2) + 0.1·softplus(2); fakes keep 0."""
    module = toy_module(tricks=Tricks(label_smoothing=0.1))
    _constant_critic(module, 2.0)
    logs = module.discriminator_step(BATCH, "both")
    assert logs["d_real"].item() == pytest.approx(0.9 * softplus(-2.0) + 0.1 * softplus(2.0), rel=1e-6)
    assert logs["d_fake"].item() == pytest.approx(softplus(2.0), rel=1e-6)  # unchanged: −log(1 − σ(2))
    plain = toy_module()
    _constant_critic(plain, 2.0)
    assert plain.discriminator_step(BATCH, "both")["d_real"].item() == pytest.approx(softplus(-2.0), rel=1e-6)
    # The G loss keeps the hard target 1 (one-sided smoothing is a D-side change).
    assert module.generator_step(BATCH)["loss"].item() == pytest.approx(softplus(-2.0), rel=1e-6)


def test_label_smoothing_moves_the_optimal_real_logit_to_logit_0_9() -> None:
    """d/dl BCE(l, 0.9) = σ(l) − 0.9 vanishes at l = log(0.9/0.1): D is pushed to D(x) = 0.9, not 1."""
    loss = get_loss("non_saturating")
    logit = torch.tensor([math.log(9.0)], dtype=torch.float64, requires_grad=True)
    loss.discriminator_real(logit, 0.9).backward()
    assert abs(logit.grad.item()) < 1e-12
    hard = torch.tensor([math.log(9.0)], dtype=torch.float64, requires_grad=True)
    loss.discriminator_real(hard).backward()
    assert hard.grad.item() == pytest.approx(0.9 - 1.0)


def test_noisy_labels_ranges_and_means() -> None:
    """The anime seed's labels: real ~ U(0.8, 1], fake ~ U[0, 0.2), one per sample, fresh every call."""
    like = torch.zeros(20_000)
    torch.manual_seed(0)
    real = label_targets("real", 20_000, like, noisy_labels=0.2)
    fake = label_targets("fake", 20_000, like, noisy_labels=0.2)
    assert real.shape == fake.shape == (20_000,)
    assert 0.8 < real.min() and real.max() <= 1.0 and 0.0 <= fake.min() and fake.max() < 0.2
    assert real.mean().item() == pytest.approx(0.9, abs=0.005) and fake.mean().item() == pytest.approx(0.1, abs=0.005)
    assert not torch.equal(real, label_targets("real", 20_000, like, noisy_labels=0.2))
    assert label_targets("fake", 4, torch.zeros(4), label_smoothing=0.1) is None  # one-sided


def test_noisy_labels_in_the_discriminator_step() -> None:
    """At logit 0 every BCE term is log 2 whatever the target; at logit l it is linear in the target t:
    BCE(l, t) = softplus(l) − t·l, so the batch loss equals softplus(l) − l·mean(t) with mean(t) in (0.8, 1]."""
    module = toy_module(tricks=Tricks(noisy_labels=0.2))
    _constant_critic(module, 3.0)
    torch.manual_seed(1)
    d_real = module.discriminator_step(BATCH, "real")["d_real"].item()
    mean_target = (softplus(3.0) - d_real) / 3.0
    assert 0.8 < mean_target <= 1.0 and mean_target != pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tricks": Tricks(label_smoothing=0.1), "loss": "hinge"}, "non_saturating, minimax or lsgan"),
        (
            {
                "tricks": Tricks(noisy_labels=0.2),
                "loss": "wasserstein",
                "regularisers": Regularisers(gradient_penalty=10.0),
            },
            "has none",
        ),
        ({"tricks": Tricks(label_smoothing=0.1, noisy_labels=0.2)}, "choose one"),
        ({"tricks": Tricks(label_smoothing=1.5)}, r"in \(0, 1\)"),
        ({"tricks": Tricks(instance_noise=0.0)}, "instance_noise must be > 0"),
        ({"tricks": Tricks(feature_matching="sometimes")}, "'off', 'replace' or 'add'"),
        ({"tricks": Tricks(pack=0)}, "pack must be >= 1"),
        ({"schedule": Schedule(d_pretrain_steps=-1)}, "d_pretrain_steps"),
    ],
)
def test_rejected_trick_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        toy_module(**kwargs)


def test_lsgan_accepts_a_soft_real_target() -> None:
    """LSGAN with target b = 0.9: ½(D − 0.9)² at D = 2 is 0.605."""
    assert get_loss("lsgan").discriminator_real(torch.tensor([2.0]), 0.9).item() == pytest.approx(0.605)


# ------------------------------------------------------------------------------------------- instance noise
def test_instance_noise_schedule() -> None:
    assert instance_noise_std(None, 10) == 0.0
    assert instance_noise_std(0.5, 10) == 0.5  # constant without annealing
    assert instance_noise_std(0.5, 0, 100) == 0.5
    assert instance_noise_std(0.5, 50, 100) == pytest.approx(0.25)
    assert instance_noise_std(0.5, 100, 100) == 0.0 and instance_noise_std(0.5, 500, 100) == 0.0


def test_instance_noise_reaches_what_the_discriminator_sees() -> None:
    """critic() adds N(0, σ²) to the samples before the discriminate hook: σ = 0.5 → sample std ≈ 0.5."""
    module = toy_module(tricks=Tricks(instance_noise=0.5))
    seen: list[torch.Tensor] = []
    module.discriminate = lambda x, batch: seen.append(x) or x[:, 0]  # type: ignore[method-assign]
    torch.manual_seed(0)
    module.critic(torch.zeros(20_000, 2), None)
    assert seen[0].std().item() == pytest.approx(0.5, rel=0.02)
    plain = toy_module()
    plain.discriminate = lambda x, batch: seen.append(x) or x[:, 0]  # type: ignore[method-assign]
    plain.critic(torch.zeros(5, 2), None)
    assert torch.equal(seen[1], torch.zeros(5, 2))


# ------------------------------------------------------------------------------------------- feature matching
def test_feature_matching_loss_value_and_gradient() -> None:
    """Means (1, 2) vs (0, 0): ‖·‖² = 5. The real side is a detached target; the fake side gets 2(μ_f − μ_r)/N."""
    real = torch.tensor([[0.0, 1.0], [2.0, 3.0]], requires_grad=True)
    fake = torch.zeros(2, 2, requires_grad=True)
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx(5.0)
    loss.backward()
    assert real.grad is None
    torch.testing.assert_close(fake.grad, torch.tensor([[-1.0, -2.0], [-1.0, -2.0]]))


def test_feature_tap_takes_the_penultimate_features_by_default() -> None:
    """Default layer: the input of D's last parameterised layer (here the 16-unit hidden output)."""
    disc = MLPDiscriminator(in_shape=[2], hidden=[16, 8])
    x = torch.randn(5, 2)
    with FeatureTap(disc) as tap:
        disc(x)
    torch.testing.assert_close(tap.features[0], disc.net[:-1](x))
    assert tap.features[0].shape == (5, 8)
    with FeatureTap(disc, "net.2") as named:  # the output of a named submodule
        disc(x)
    torch.testing.assert_close(named.features[0], disc.net[:3](x))
    disc(x)
    assert len(tap.features) == 1  # the hook is removed on exit
    with pytest.raises(ValueError, match="not a submodule"):
        FeatureTap(disc, "net.99")


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_feature_matching_generator_step(mode: str) -> None:
    """The G loss is ‖E f(x) − E f(G(z))‖² (+ the adversarial loss with "add"), computed by hand here."""
    module = toy_module(tricks=Tricks(feature_matching=mode))
    real = torch.randn(8, 2)
    batch = (real, torch.zeros(8))
    torch.manual_seed(3)
    logs = module.generator_step(batch)
    torch.manual_seed(3)
    fake = module.generate(batch)
    features = module.discriminator.net[:-1]
    expected = (features(real).mean(0) - features(fake).mean(0)).pow(2).sum()
    if mode == "add":
        expected = expected + F.softplus(-module.discriminator(fake)).mean()
    assert logs["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["g_fm"].item() == pytest.approx((features(real).mean(0) - features(fake).mean(0)).pow(2).sum().item())


def test_feature_matching_trains(tmp_path: Path) -> None:
    module = toy_module(tricks=Tricks(feature_matching="replace"))
    trainer = bare_trainer(tmp_path, max_epochs=1)
    trainer.fit(module, toy_loader(4))
    assert trainer.global_step == 4 and {"g_fm", "g_adv"} <= set(trainer.callback_metrics)


# ------------------------------------------------------------------------------------------- minibatch discrimination
def test_minibatch_discrimination_values() -> None:
    """Identical samples: every c_b = exp(0) = 1, so o_b = N. Far-apart samples: only j = i counts, o_b = 1."""
    layer = MinibatchDiscrimination(in_features=3, num_kernels=4, kernel_dim=2)
    same = torch.ones(5, 3)
    out = layer(same)
    assert out.shape == (5, 3 + 4) and layer.out_features == 7
    torch.testing.assert_close(out[:, :3], same)
    torch.testing.assert_close(out[:, 3:], torch.full((5, 4), 5.0))
    with torch.no_grad():
        layer.T.fill_(1.0)
    far = torch.tensor([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0]])
    torch.testing.assert_close(layer(far)[:, 3:], torch.ones(2, 4))
    # Two samples at L1 distance d per kernel: c = exp(−d), o = 1 + exp(−d). T = 1 → M rows are sums: d = 2·0.5.
    near = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    torch.testing.assert_close(layer(near)[:, 3:], torch.full((2, 4), 1.0 + math.exp(-1.0)))


def test_minibatch_discrimination_in_discriminators() -> None:
    mlp = MLPDiscriminator(in_shape=[2], hidden=[16], minibatch_kernels=5)
    assert mlp(torch.randn(7, 2)).shape == (7,)
    assert isinstance(mlp.net[-2], MinibatchDiscrimination) and mlp.net[-1].in_features == 16 + 5
    conv = DCGANDiscriminator28(minibatch_kernels=10, minibatch_kernel_dim=3)
    x = torch.randn(4, 1, 28, 28)
    assert conv(x).shape == (4,)
    # The batch matters: D's output for sample 0 changes when the rest of the batch changes.
    conv.eval()
    other = torch.cat([x[:1], torch.randn(3, 1, 28, 28)])
    assert not torch.allclose(conv(x)[0], conv(other)[0])


def test_minibatch_discrimination_in_the_progan_discriminator() -> None:
    """ProGANDiscriminator(minibatch_kernels=B): B features of the 4×4 block's c₀ outputs before the score; off by
    default, where the network (and its checkpoint keys) are the paper's."""
    tiny = {"resolution": 16, "channels": 1, "channel_base": 64, "max_channels": 8}
    torch.manual_seed(0)
    plain = ProGANDiscriminator(**tiny)
    torch.manual_seed(0)
    md = ProGANDiscriminator(**tiny, minibatch_kernels=6, minibatch_kernel_dim=3)
    assert not any(isinstance(m, MinibatchDiscrimination) for m in plain.modules())
    layer, score = md.final[-2], md.final[-1]
    assert isinstance(layer, MinibatchDiscrimination) and (layer.in_features, layer.num_kernels) == (8, 6)
    assert score.weight.shape == (1, 8 + 6) and plain.final[-1].weight.shape == (1, 8)
    assert {"final.6.weight", "final.6.bias"} <= set(plain.state_dict())  # the default layout is unchanged
    assert set(md.state_dict()) - set(plain.state_dict()) == {"final.6.T", "final.7.weight", "final.7.bias"}
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        assert md(x, level=2).shape == (4, 1)
        other = torch.cat([x[:1], torch.randn(3, 1, 16, 16)])
        assert not torch.allclose(md(x, level=2)[0], md(other, level=2)[0])  # the batch matters


# ------------------------------------------------------------------------------------------- packing (PacGAN)
def test_pack_samples_concatenates_consecutive_samples() -> None:
    x = torch.arange(16.0).view(8, 2)
    packed = pack_samples(x, 4)
    assert packed.shape == (2, 8)
    torch.testing.assert_close(packed[0], torch.arange(8.0))  # samples 0..3 side by side
    images = torch.randn(6, 3, 4, 4)
    packed_images = pack_samples(images, 2)
    assert packed_images.shape == (3, 6, 4, 4)
    torch.testing.assert_close(packed_images[1, 3:], images[3])
    with pytest.raises(ValueError, match="divisible by 4"):
        pack_samples(torch.zeros(6, 2), 4)


def test_pack_trains_with_a_packed_discriminator(tmp_path: Path) -> None:
    """pack = 2: D gets 4-wide inputs and returns one score per pair (batch 8 → 4 scores)."""
    module = GAN(
        generator=MLPGenerator(latent_dim=4, hidden=[16], out_shape=[2], output="linear"),
        discriminator=MLPDiscriminator(in_shape=[4], hidden=[16]),
        latent_dim=4,
        tricks=Tricks(pack=2),
    )
    assert module.critic(torch.randn(8, 2), None).shape == (4,)
    trainer = bare_trainer(tmp_path, max_epochs=1)
    trainer.fit(module, toy_loader(3))
    assert trainer.global_step == 3


# ------------------------------------------------------------------------------------------- D pre-training
@pytest.mark.parametrize(("pretrain", "n_critic", "order"), [(3, 1, "DDDDGDGDG"), (2, 2, "DDDDGDDG")])
def test_discriminator_pretraining_steps(tmp_path: Path, pretrain: int, n_critic: int, order: str) -> None:
    """The first ``d_pretrain_steps`` batches train D only; then the usual schedule (n_critic D steps per G)."""
    recorder = StepRecorder()
    batches = order.count("D")
    trainer = bare_trainer(tmp_path, max_epochs=1, callbacks=[recorder])
    trainer.fit(toy_module(schedule=Schedule(d_pretrain_steps=pretrain, n_critic=n_critic)), toy_loader(batches))
    assert recorder.order == order
    assert trainer.global_step == batches
