"""Adversarial losses at known points, and the saturation of the minimax generator loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_gans.losses import LOSSES, get_loss

LOG2 = math.log(2.0)
NAMES = ["non_saturating", "minimax"]


def _grad_g(name: str, logit: float) -> float:
    """d(generator loss)/d(logit) for a single fake with discriminator logit ``logit``."""
    x = torch.tensor([logit], dtype=torch.float64, requires_grad=True)
    get_loss(name).generator(x).backward()
    return x.grad.item()


@pytest.mark.parametrize("name", NAMES)
def test_logit_zero_gives_log2(name: str) -> None:
    """D(x) = sigmoid(0) = 1/2: every BCE term is −log(1/2) = log 2; the minimax G loss log(1 − 1/2) = −log 2."""
    loss = get_loss(name)
    zero = torch.zeros(7)
    assert loss.discriminator_real(zero).item() == pytest.approx(LOG2)
    assert loss.discriminator_fake(zero).item() == pytest.approx(LOG2)
    expected_g = LOG2 if name == "non_saturating" else -LOG2
    assert loss.generator(zero).item() == pytest.approx(expected_g)


@pytest.mark.parametrize("name", NAMES)
def test_confident_discriminator(name: str) -> None:
    """Real at logit +10: −log sigmoid(10) = log(1 + e^−10) ≈ 4.5399e-5; the same for a fake at −10."""
    loss = get_loss(name)
    expected = math.log1p(math.exp(-10.0))
    assert expected == pytest.approx(4.5399e-5, rel=1e-4)
    assert loss.discriminator_real(torch.tensor([10.0])).item() == pytest.approx(expected, rel=1e-4)
    assert loss.discriminator_fake(torch.tensor([-10.0])).item() == pytest.approx(expected, rel=1e-4)
    # ...and a confidently wrong D pays ≈ |logit|: softplus(10) = 10 + log(1 + e^−10).
    assert loss.discriminator_real(torch.tensor([-10.0])).item() == pytest.approx(10.0 + expected, rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_matches_bce_with_logits(name: str) -> None:
    """The D terms are BCE-with-logits against targets 1 (real) and 0 (fake), averaged over the batch."""
    loss = get_loss(name)
    logits = torch.linspace(-30, 30, 61, dtype=torch.float64)
    real = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    fake = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
    torch.testing.assert_close(loss.discriminator_real(logits), real)
    torch.testing.assert_close(loss.discriminator_fake(logits), fake)
    # Large logits stay finite (softplus, not log(sigmoid)).
    big = torch.tensor([-1e4, 1e4])
    assert torch.isfinite(loss.discriminator_real(big)) and torch.isfinite(loss.generator(big))


def test_generator_losses_relation() -> None:
    """non_saturating = −log D(G(z)) = softplus(−l); minimax = log(1 − D(G(z))) = −softplus(l)."""
    logits = torch.linspace(-8, 8, 33, dtype=torch.float64)
    ns, mm = get_loss("non_saturating").generator(logits), get_loss("minimax").generator(logits)
    d = torch.sigmoid(logits)
    torch.testing.assert_close(ns, (-torch.log(d)).mean())
    torch.testing.assert_close(mm, torch.log1p(-d).mean())


def test_generator_gradient_saturation() -> None:
    """Goodfellow et al. 2014 §3: early on D rejects fakes confidently (logit −10). The minimax G loss then
    saturates, d/dl = −sigmoid(l) ≈ −4.54e-5, while the non-saturating one keeps d/dl = −sigmoid(−l) ≈ −1."""
    ns, mm = _grad_g("non_saturating", -10.0), _grad_g("minimax", -10.0)
    assert ns == pytest.approx(-1.0, abs=1e-4)
    assert ns == pytest.approx(-1.0 / (1.0 + math.exp(-10.0)), rel=1e-9)
    assert mm == pytest.approx(-4.54e-5, rel=1e-3)
    assert mm == pytest.approx(-1.0 / (1.0 + math.exp(10.0)), rel=1e-9)
    assert ns < 0 and mm < 0  # both push the fake's logit up
    assert abs(ns) / abs(mm) > 2e4


@pytest.mark.parametrize("name", NAMES)
def test_generator_gradient_at_zero(name: str) -> None:
    assert _grad_g(name, 0.0) == pytest.approx(-0.5)


@pytest.mark.parametrize("name", NAMES)
def test_generator_gradient_sign_everywhere(name: str) -> None:
    """Both G losses decrease as D's logit on the fake rises, at every logit."""
    x = torch.linspace(-20, 20, 81, dtype=torch.float64, requires_grad=True)
    get_loss(name).generator(x).backward()
    assert (x.grad < 0).all()


def test_unknown_loss_lists_choices() -> None:
    with pytest.raises(ValueError, match="relativistic") as info:
        get_loss("relativistic")
    message = str(info.value)
    for name in LOSSES:
        assert name in message
    assert "minimax" in message and "non_saturating" in message and "wasserstein" in message


def test_registry_names() -> None:
    assert set(LOSSES) == {"minimax", "non_saturating", "lsgan", "hinge", "wasserstein"}
    for name in LOSSES:
        assert get_loss(name).name == name


# ------------------------------------------------------------------------- LSGAN, hinge, Wasserstein (raw D outputs)
SCORES = torch.tensor([2.0, 0.0, -1.0], dtype=torch.float64)


def test_lsgan_at_known_outputs() -> None:
    """Mao et al. 2017 (a=0, b=1, c=1) at D = (2, 0, −1): D real ½·mean((1, 1, 4)) = 1,
    D fake ½·mean((4, 0, 1)) = 5/6, G ½·mean((D−1)²) = 1."""
    loss = get_loss("lsgan")
    assert loss.discriminator_real(SCORES).item() == pytest.approx(1.0)
    assert loss.discriminator_fake(SCORES).item() == pytest.approx(5.0 / 6.0)
    assert loss.generator(SCORES).item() == pytest.approx(1.0)
    # Optimal targets cost nothing: D(x) = b = 1 on reals, D(G(z)) = a = 0 on fakes; G wants D(G(z)) = c = 1.
    assert loss.discriminator_real(torch.ones(4)).item() == 0.0
    assert loss.discriminator_fake(torch.zeros(4)).item() == 0.0
    assert loss.generator(torch.ones(4)).item() == 0.0


def test_hinge_at_known_outputs() -> None:
    """relu(1 − (2, 0, −1)) = (0, 1, 2) → 1; relu(1 + (2, 0, −1)) = (3, 1, 0) → 4/3; G −mean = −1/3."""
    loss = get_loss("hinge")
    assert loss.discriminator_real(SCORES).item() == pytest.approx(1.0)
    assert loss.discriminator_fake(SCORES).item() == pytest.approx(4.0 / 3.0)
    assert loss.generator(SCORES).item() == pytest.approx(-1.0 / 3.0)
    # Outside the margin (D(x) ≥ 1, D(G(z)) ≤ −1) D pays nothing and gets no gradient.
    x = torch.tensor([1.5, 3.0], requires_grad=True)
    y = torch.tensor([-1.5, -3.0], requires_grad=True)
    (loss.discriminator_real(x) + loss.discriminator_fake(y)).backward()
    assert x.grad.abs().sum() == 0 and y.grad.abs().sum() == 0


def test_wasserstein_at_known_outputs() -> None:
    """Critic E D(G(z)) − E D(x); G −E D(G(z)). mean(2, 0, −1) = 1/3."""
    loss = get_loss("wasserstein")
    assert loss.discriminator_real(SCORES).item() == pytest.approx(-1.0 / 3.0)
    assert loss.discriminator_fake(SCORES).item() == pytest.approx(1.0 / 3.0)
    assert loss.generator(SCORES).item() == pytest.approx(-1.0 / 3.0)
    real, fake = torch.tensor([3.0, 5.0]), torch.tensor([1.0, -1.0])
    # Critic loss = −(estimate of the Wasserstein distance) = −(4 − 0).
    assert (loss.discriminator_real(real) + loss.discriminator_fake(fake)).item() == pytest.approx(-4.0)


@pytest.mark.parametrize("name", ["lsgan", "hinge", "wasserstein"])
def test_generator_gradient_pushes_fake_score_up(name: str) -> None:
    """Below the real target, every G loss decreases as D's output on the fake rises."""
    x = torch.linspace(-5, 0.9, 30, dtype=torch.float64, requires_grad=True)
    get_loss(name).generator(x).backward()
    assert (x.grad < 0).all()
