"""Stand-ins for image-quality tests: a tiny fixed feature extractor and an elementwise generator.

Both compute in float64, so a sample's features do not depend on which batch (or which DDP rank) it went
through: a 1-process and a 2-process evaluation then see bit-identical per-sample features, and only the
float64 summation order differs. Importing this module registers the extractor ``tiny-test`` (the DDP test
imports it in the CLI's processes through the generator's class path).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_gans.metrics import FeatureExtractor, register_extractor

TINY = "tiny-test"


class TinyExtractor(FeatureExtractor):
    """Fixed random conv (4 maps, k5 s4) → ReLU → linear 16 features → tanh → linear 10 logits, in float64.

    ``calls`` counts the images it has seen (the cache tests assert a skipped real pass with it).
    """

    name = TINY
    num_features = 16
    num_classes = 10
    image_size = 28
    weights_id = "fixed-seed0"

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("conv", torch.randn(4, 1, 5, 5, generator=g, dtype=torch.float64))
        self.register_buffer("fc", torch.randn(4 * 6 * 6, 16, generator=g, dtype=torch.float64) / 12)
        self.register_buffer("head", torch.randn(16, 10, generator=g, dtype=torch.float64))
        self.calls = 0

    def extract(self, images: Tensor) -> tuple[Tensor, Tensor]:
        self.calls += images.shape[0]
        x = images.double().mean(1, keepdim=True) / 127.5 - 1
        features = F.conv2d(x, self.conv, stride=4).relu().flatten(1) @ self.fc
        return features, features.tanh() @ self.head


register_extractor(TINY, overwrite=True)(TinyExtractor)


class ElementwiseGenerator(nn.Module):
    """z (784) → tanh(a·z + b) as a 1×28×28 image, per element in float64 (batch-independent results).

    ``batch_norm=True`` puts a BatchNorm1d on z first: in eval mode (sampling) it is elementwise too, but its
    running statistics are a buffer each DDP rank updates from its own latents — the case rank-0 buffer syncing
    before an evaluation exists for."""

    def __init__(self, latent_dim: int = 784, batch_norm: bool = False) -> None:
        super().__init__()
        if latent_dim != 784:
            raise ValueError("ElementwiseGenerator maps 784 latents to 28×28 pixels")
        self.latent_dim = latent_dim
        self.scale = nn.Parameter(torch.full((784,), 0.7))
        self.shift = nn.Parameter(torch.zeros(784))
        self.norm = nn.BatchNorm1d(784, momentum=0.5) if batch_norm else nn.Identity()

    def forward(self, z: Tensor) -> Tensor:
        out = torch.tanh(self.norm(z).double() * self.scale.double() + self.shift.double())
        return out.float().view(-1, 1, 28, 28)
