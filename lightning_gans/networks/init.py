"""Weight initialisation schemes.

The book seeds are Keras/TF programs: Dense and Conv layers start from ``glorot_uniform`` weights and zero
biases, which differs from PyTorch's Kaiming-uniform default. ``keras_init`` reproduces the seeds' start.
"""

from __future__ import annotations

from torch import nn

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def keras_init(module: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases for every Dense/Conv layer in ``module`` (Keras defaults)."""
    for layer in module.modules():
        if isinstance(layer, _LAYERS):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def dcgan_normal_init(module: nn.Module) -> nn.Module:
    """Radford et al. 2016: N(0, 0.02) conv/dense weights, BN γ ~ N(1, 0.02), β = 0."""
    for layer in module.modules():
        if isinstance(layer, _LAYERS):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)
    return module


INITS = {"keras": keras_init, "dcgan": dcgan_normal_init, "torch": lambda m: m}


def apply_init(module: nn.Module, scheme: str) -> nn.Module:
    if scheme not in INITS:
        raise ValueError(f"Unknown init scheme {scheme!r}; choose one of {sorted(INITS)}")
    return INITS[scheme](module)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every Dense/Conv weight in ``module``: each weight is divided
    by its largest singular value (one power iteration per forward pass), bounding the layer's Lipschitz constant
    by 1. Meant for discriminators; apply after the initialisation (it re-parametrises the initialised weight)."""
    for layer in list(module.modules()):
        if isinstance(layer, _LAYERS):
            nn.utils.parametrizations.spectral_norm(layer)
    return module
