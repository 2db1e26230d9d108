"""Network shapes, the Keras-converted DCGAN details (bias-free G, BN momentum/eps, glorot init), parameter counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_gans.models import DCGAN, GAN, GANModule
from lightning_gans.networks import DCGANDiscriminator28, DCGANGenerator28, MLPDiscriminator, MLPGenerator
from lightning_gans.networks.init import apply_init, keras_init

N = 5


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------- shapes
def test_mlp_mnist_shapes() -> None:
    g, d = MLPGenerator(), MLPDiscriminator()
    x = g(torch.randn(N, 100))
    assert x.shape == (N, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    assert d(x).shape == (N,)


def test_mlp_toy_shapes() -> None:
    """The 2-D toy benchmark config of ``experiments/toy_grid.yaml``: linear output, points of shape (N, 2)."""
    g = MLPGenerator(latent_dim=16, hidden=[128, 128, 128], out_shape=[2], output="linear", init="torch")
    d = MLPDiscriminator(in_shape=[2], hidden=[128, 128, 128], init="torch")
    x = g(torch.randn(N, 16))
    assert x.shape == (N, 2)
    assert not isinstance(g.net[-1], nn.Tanh)  # linear output: points are not squashed into [-1, 1]
    assert d(x).shape == (N,)
    # 3 hidden Dense + LeakyReLU pairs and one output Dense in each network.
    assert sum(isinstance(m, nn.Linear) for m in g.modules()) == 4
    assert sum(isinstance(m, nn.Linear) for m in d.modules()) == 4


def test_mlp_rejects_unknown_output_and_init() -> None:
    with pytest.raises(ValueError, match="tanh"):
        MLPGenerator(output="sigmoid")
    with pytest.raises(ValueError, match="init scheme"):
        MLPDiscriminator(init="he")


def test_dcgan_generator_shape_and_range() -> None:
    g = DCGANGenerator28()
    x = g(torch.randn(N, 100) * 10)  # large z: tanh must still bound the output
    assert x.shape == (N, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    g.eval()  # eval-mode BN (running statistics) works with a batch of one
    assert g(torch.randn(1, 100)).shape == (1, 1, 28, 28)


def test_dcgan_discriminator_logits() -> None:
    d = DCGANDiscriminator28()
    logits = d(torch.rand(N, 1, 28, 28) * 2 - 1)
    assert logits.shape == (N,)
    assert logits.dtype == torch.float32


def test_dcgan_intermediate_sizes() -> None:
    """7×7 → 7×7 (stride 1) → 14×14 → 28×28 in G; 28 → 14 → 7 in D (the TF 'same'-padding sizes)."""
    g = DCGANGenerator28()
    h = g.project(torch.randn(2, 100)).view(-1, 256, 7, 7)
    sizes = []
    for layer in g.net:
        h = layer(h)
        if isinstance(layer, nn.ConvTranspose2d):
            sizes.append(tuple(h.shape[1:]))
    assert sizes == [(128, 7, 7), (64, 14, 14), (1, 28, 28)]
    d = DCGANDiscriminator28()
    h = torch.zeros(2, 1, 28, 28)
    sizes = []
    for layer in d.net:
        h = layer(h)
        if isinstance(layer, nn.Conv2d):
            sizes.append(tuple(h.shape[1:]))
    assert sizes == [(64, 14, 14), (128, 7, 7)]


# ------------------------------------------------------------------------------- Keras-converted details
def test_dcgan_generator_is_bias_free() -> None:
    """The seed's Dense and Conv2DTranspose layers all use ``use_bias=False``; only BatchNorm has a β (bias)."""
    g = DCGANGenerator28()
    layers = [m for m in g.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d, nn.Conv2d))]
    assert len(layers) == 4
    assert all(m.bias is None for m in layers)
    owners = {name.rsplit(".", 1)[0] for name, _ in g.named_parameters() if name.endswith(".bias")}
    modules = dict(g.named_modules())
    assert owners and all(isinstance(modules[o], (nn.BatchNorm1d, nn.BatchNorm2d)) for o in owners)


def test_dcgan_batchnorm_keras_constants() -> None:
    """Keras BN momentum 0.99 (weight of the old running value) → PyTorch momentum 0.01; Keras eps 1e-3."""
    bns = [m for m in DCGANGenerator28().modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 3
    for bn in bns:
        assert bn.momentum == pytest.approx(0.01)
        assert bn.eps == pytest.approx(1e-3)


def test_dcgan_leaky_relu_slope() -> None:
    """Keras ``LeakyReLU()`` default slope is 0.3, in both networks."""
    for net in (DCGANGenerator28(), DCGANDiscriminator28()):
        slopes = {m.negative_slope for m in net.modules() if isinstance(m, nn.LeakyReLU)}
        assert slopes == {0.3}


def _glorot_bound(weight: torch.Tensor) -> float:
    """sqrt(6 / (fan_in + fan_out)); for a conv kernel (a, b, k, k) the fans are a·k·k and b·k·k."""
    if weight.dim() == 2:  # Linear: (out, in)
        fan_sum = weight.shape[0] + weight.shape[1]
    else:
        receptive = math.prod(weight.shape[2:])
        fan_sum = (weight.shape[0] + weight.shape[1]) * receptive
    return math.sqrt(6.0 / fan_sum)


@pytest.mark.parametrize("make", [DCGANGenerator28, DCGANDiscriminator28, MLPGenerator, MLPDiscriminator])
def test_keras_init_glorot_uniform_zero_bias(make) -> None:
    net = make()  # init="keras" is the default of every network
    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    assert layers
    for layer in layers:
        bound = _glorot_bound(layer.weight)
        w = layer.weight.detach().abs()
        assert w.max() <= bound + 1e-7
        if layer.weight.numel() >= 1000:  # uniform on [-b, b]: a large layer reaches close to the bound
            assert w.max() >= 0.95 * bound
        if layer.bias is not None:
            assert torch.count_nonzero(layer.bias) == 0


def test_keras_init_differs_from_torch_default() -> None:
    """PyTorch's default Linear init has bound 1/sqrt(fan_in) = 0.1 for 100 → 12544, above glorot's ≈ 0.0218."""
    layer = nn.Linear(100, 12544)
    assert layer.weight.abs().max() > 0.05 and torch.count_nonzero(layer.bias) > 0
    keras_init(layer)
    assert layer.weight.abs().max() <= math.sqrt(6 / (100 + 12544)) + 1e-7
    assert torch.count_nonzero(layer.bias) == 0


def test_dcgan_normal_init() -> None:
    net = apply_init(DCGANGenerator28(init="torch"), "dcgan")
    w = net.project[0].weight
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.05)
    bn = net.project[1]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01) and torch.count_nonzero(bn.bias) == 0


# ----------------------------------------------------------------------------------------- parameter counts
def test_dcgan_generator_parameter_count() -> None:
    """Trainable parameters of the seed's generator (its Keras summary lists the same layer sizes).

    Dense 100 → 7·7·256 = 12544, no bias:  100 · 12544           = 1,254,400
    BatchNorm1d(12544): γ + β               2 · 12544             =    25,088
    ConvT 256 → 128, 5×5, no bias:         256 · 128 · 25        =   819,200
    BatchNorm2d(128):                       2 · 128               =       256
    ConvT 128 → 64, 5×5, no bias:          128 · 64 · 25         =   204,800
    BatchNorm2d(64):                        2 · 64                =       128
    ConvT 64 → 1, 5×5, no bias:            64 · 1 · 25           =     1,600
                                                           total = 2,305,472
    """
    expected = 100 * 12544 + 2 * 12544 + 256 * 128 * 25 + 2 * 128 + 128 * 64 * 25 + 2 * 64 + 64 * 1 * 25
    assert expected == 2_305_472
    assert _n_params(DCGANGenerator28()) == expected


def test_dcgan_discriminator_parameter_count() -> None:
    """Conv 1 → 64, 5×5 + bias:     1 · 64 · 25 + 64     =   1,664
    Conv 64 → 128, 5×5 + bias:      64 · 128 · 25 + 128  = 204,928
    Dense 7·7·128 = 6272 → 1 + bias: 6272 + 1            =   6,273
                                                   total = 212,865
    """
    expected = (1 * 64 * 25 + 64) + (64 * 128 * 25 + 128) + (7 * 7 * 128 + 1)
    assert expected == 212_865
    assert _n_params(DCGANDiscriminator28()) == expected


def test_mlp_parameter_count() -> None:
    """G 100 → 500 → 500 → 784 and D 784 → 500 → 500 → 1, each Dense with a bias."""
    g = (100 * 500 + 500) + (500 * 500 + 500) + (500 * 784 + 784)
    d = (784 * 500 + 500) + (500 * 500 + 500) + (500 * 1 + 1)
    assert _n_params(MLPGenerator()) == g == 693_784
    assert _n_params(MLPDiscriminator()) == d == 643_501


# ------------------------------------------------------------------------------------ model ↔ network wiring
def test_latent_dim_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="latent_dim"):
        GANModule(generator=MLPGenerator(latent_dim=8), discriminator=MLPDiscriminator(), latent_dim=16)
    with pytest.raises(ValueError, match="latent_dim"):
        DCGAN(generator=DCGANGenerator28(latent_dim=100), latent_dim=64)
    with pytest.raises(ValueError, match="latent_dim"):
        GAN(generator=MLPGenerator(latent_dim=100), latent_dim=32)


def test_models_build_default_networks_from_latent_dim() -> None:
    model = DCGAN(latent_dim=64)
    assert model.generator.latent_dim == 64
    assert model.fixed_noise.shape == (16, 64)
    assert model.sample(3).shape == (3, 1, 28, 28)
    gan = GAN(latent_dim=32)
    assert gan.generator.latent_dim == 32
    assert gan.sample(2).shape == (2, 1, 28, 28)


@pytest.mark.parametrize(
    "make", [lambda: DCGANDiscriminator28(spectral_norm=True), lambda: MLPDiscriminator(spectral_norm=True)]
)
def test_spectral_norm_bounds_every_layer_by_one(make) -> None:
    """After a few forward passes (one power iteration each) every weight's largest singular value is 1."""
    torch.manual_seed(0)
    d = make()
    x = torch.randn(8, 1, 28, 28)
    for _ in range(30):
        d(x)
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert float(sigma) == pytest.approx(1.0, abs=2e-2)
    plain = DCGANDiscriminator28()
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())
