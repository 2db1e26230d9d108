"""Semi-supervised GAN networks for 28×28 digits: *GANs in Action* ch. 7 (Salimans et al. 2016, §5).

G (ch. 7, reused by the ch. 8 CGAN): z (100) → Dense 7·7·256 → reshape → ConvT 128 k3 s2 → BN → LReLU(0.01) →
ConvT 64 k3 s1 → BN → LReLU → ConvT 1 k3 s2 → tanh.
D body: Conv 32 k3 s2 → LReLU(0.01) → Conv 64 k3 s2 → BN → LReLU → Conv 128 k3 s2 → BN → LReLU → Dropout 0.5 →
Flatten (4·4·128 = 2048; the book's "3×3×128" shape comments are wrong) → Dense 10 class logits l.
Two heads on the same body and the same weights: supervised softmax(l), and unsupervised real/fake
D(x) = Z/(Z+1) with Z = Σ_k exp(l_k) (Salimans' K+1-class trick with the fake logit fixed at 0), which is
exactly sigmoid(logsumexp(l)): ``unsupervised_logit`` returns logsumexp(l) for BCE-with-logits, where the
book's ``1 − 1/(Z+1)`` overflows for large logits.

Keras → PyTorch (reference: gans-in-action-ch5-9.md, bugs 15–16): BN momentum 0.99 → ``momentum=0.01``, eps
1e-3; glorot-uniform kernels, zero biases; ``same`` k3 s2 convs → ``padding=1`` (same output size, the TF
padding is (0, 1) on even inputs: a one-pixel shift), ConvT k3 s2 → ``padding=1, output_padding=1``.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_gans.networks.init import apply_init


def conv_block(
    in_channels: int, out_channels: int, batch_norm: bool, negative_slope: float, bn_momentum: float, bn_eps: float
) -> list[nn.Module]:
    """Conv k3 s2 'same' → [BN] → LeakyReLU: the unit of the ch. 7/8 discriminators (28 → 14 → 7 → 4)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum))
    layers.append(nn.LeakyReLU(negative_slope))
    return layers


class SGANGenerator28(nn.Module):
    """The ch. 7 generator (also the body of the ch. 8 CGAN generator): z → 1×28×28 in [-1, 1]."""

    def __init__(
        self,
        latent_dim: int = 100,
        negative_slope: float = 0.01,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
        init: str = "keras",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim

        def bn(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels, eps=bn_eps, momentum=bn_momentum)

        self.project = nn.Linear(latent_dim, 7 * 7 * 256)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 3, stride=2, padding=1, output_padding=1),  # 14×14
            bn(128),
            nn.LeakyReLU(negative_slope),
            nn.ConvTranspose2d(128, 64, 3, stride=1, padding=1),  # 14×14
            bn(64),
            nn.LeakyReLU(negative_slope),
            nn.ConvTranspose2d(64, 1, 3, stride=2, padding=1, output_padding=1),  # 28×28
            nn.Tanh(),
        )
        apply_init(self, init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, 256, 7, 7))


class TwoHeadDiscriminator(nn.Module):
    """The shared-body two-head D: ``body`` → features f; ``head(f)`` = ``classifier(before_head(f))`` → class
    logits l (supervised softmax(l)); ``unsupervised_logit(l)`` = logsumexp(l), the real/fake logit."""

    body: nn.Module
    before_head: nn.Module
    classifier: nn.Module

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The body's output: the features feature matching uses."""
        return self.body(x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits l from body ``features``."""
        return self.classifier(self.before_head(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits l (N, num_classes): the supervised head is softmax(l)."""
        return self.head(self.features(x))

    @staticmethod
    def unsupervised_logit(logits: torch.Tensor) -> torch.Tensor:
        """Real/fake logit logsumexp(l) (N,): sigmoid of it is the book's Z/(Z+1), Z = Σ exp(l_k), without overflow."""
        return torch.logsumexp(logits, dim=1)


class SGANDiscriminator28(TwoHeadDiscriminator):
    """The ch. 7 discriminator: ``forward`` gives the 10 class logits l (supervised head: softmax(l));
    ``unsupervised_logit(l)`` the real/fake logit logsumexp(l); ``features(x)`` the flattened body output
    (2048-d, before dropout) for feature matching."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        negative_slope: float = 0.01,
        dropout: float = 0.5,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
        init: str = "keras",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        block = dict(negative_slope=negative_slope, bn_momentum=bn_momentum, bn_eps=bn_eps)
        self.body = nn.Sequential(
            *conv_block(in_channels, 32, batch_norm=False, **block),  # 14×14
            *conv_block(32, 64, batch_norm=True, **block),  # 7×7
            *conv_block(64, 128, batch_norm=True, **block),  # 4×4
            nn.Flatten(),
        )
        self.before_head = nn.Dropout(dropout)  # features: the flattened body (2048-d), before dropout
        self.classifier = nn.Linear(4 * 4 * 128, num_classes)
        apply_init(self, init)


# ---------------------------------------------------------------------------------------------- Salimans et al. 2016
class GaussianNoise(nn.Module):
    """Adds N(0, σ²) noise in training mode only (Salimans et al. 2016's MNIST discriminator)."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.std * torch.randn_like(x) if self.training and self.std > 0 else x


def _weight_norm(layer: nn.Linear) -> nn.Module:
    """Weight normalisation (Salimans & Kingma 2016): w = g·v/‖v‖ per output unit."""
    return nn.utils.parametrizations.weight_norm(layer)


class SalimansGenerator28(nn.Module):
    """Salimans et al. 2016's MNIST generator (their code, ``train_mnist_feature_matching.py``): z (100) → Dense
    500 → softplus → BN → Dense 500 → softplus → BN → weight-normed Dense 784 → 28×28. Their output is a sigmoid
    on [0, 1] pixels; here tanh for the project's [-1, 1] images (tanh(x/2) = 2·sigmoid(x) − 1: the same family)."""

    def __init__(self, latent_dim: int = 100, hidden: int = 500) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.Softplus(),
            nn.BatchNorm1d(hidden),
            nn.Linear(hidden, hidden),
            nn.Softplus(),
            nn.BatchNorm1d(hidden),
            _weight_norm(nn.Linear(hidden, 28 * 28)),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 28, 28)


class SalimansDiscriminator28(TwoHeadDiscriminator):
    """Salimans et al. 2016's MNIST discriminator (§5.1, their code): Gaussian noise σ 0.3 on the input pixels,
    weight-normed Dense 1000-500-250-250-250, each → ReLU → Gaussian noise σ 0.5, then a weight-normed Dense 10
    (the class logits l). ``features(x)``: the last hidden layer's output (250-d, before its noise), the layer
    their feature matching uses; the heads as ``SGANDiscriminator28`` (softmax(l), logsumexp(l)).

    Not carried over: their data-dependent initialisation of the weight-norm scales (here PyTorch's default
    initialisation, then g = ‖v‖) and the mean-only batch normalisation of their other models."""

    def __init__(
        self,
        num_classes: int = 10,
        hidden: list[int] = [1000, 500, 250, 250, 250],  # noqa: B006 - jsonargparse needs a literal default
        input_noise: float = 0.3,
        hidden_noise: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(input_noise)]
        width = 28 * 28
        for i, units in enumerate(hidden):
            if i > 0:
                layers.append(GaussianNoise(hidden_noise))
            layers += [_weight_norm(nn.Linear(width, units)), nn.ReLU()]
            width = units
        self.body = nn.Sequential(*layers)  # features: the last hidden layer's ReLU output, before its noise
        self.before_head = GaussianNoise(hidden_noise)
        self.classifier = _weight_norm(nn.Linear(width, num_classes))
