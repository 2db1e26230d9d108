"""``lenet-mnist``: a LeNet-style digit classifier (LeCun et al. 1998) as the feature extractor for MNIST.

Conv 32 k5 → ReLU → MaxPool 2 → Conv 64 k5 → ReLU → MaxPool 2 → Dense 128 → ReLU → Dense 10. Features are
the 128-d output of the penultimate Dense layer (before its ReLU, so no dimension is identically zero) times a
fixed scalar ``feature_scale``, set after training so the features' mean square over the training images is 1:
the raw activations have xᵀx/d ≈ 45, where the KID kernel (xᵀy/d + 1)³ is dominated by its cubic term and the
estimate's spread exceeds its mean; at xᵀy/d of order 1 it works in the regime it was designed for (FID just
scales by the square of the constant). Logits are the 10 class scores. Inputs: uint8 N×1×28×28 (RGB → mean
over channels), scaled to [-1, 1] exactly as ``MNISTDataModule`` does (``x / 127.5 - 1``). InceptionV3 features
are a poor fit for 28×28 grey digits; a domain classifier is the usual substitute for MNIST FID/IS.

Weights: ``lightning-gans train-extractor mnist [--data_dir DIR]`` writes ``<cache>/extractors/lenet-mnist.pt``
(state dict + metadata) and ``lenet-mnist.sha256``; loading verifies the checksum.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from lightning_gans.metrics.extractors import (
    ExtractorChecksumError,
    ExtractorWeightsError,
    FeatureExtractor,
    cache_dir,
    file_sha256,
)

NAME = "lenet-mnist"
TRAIN_COMMAND = "lightning-gans train-extractor mnist [--data_dir DIR]"


class LeNet(nn.Module):
    """The classifier; ``features`` maps [-1, 1] images N×1×28×28 to the 128-d embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5),  # 24×24
            nn.ReLU(),
            nn.MaxPool2d(2),  # 12×12
            nn.Conv2d(32, 64, 5),  # 8×8
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4×4
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 128),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(128, 10))
        self.register_buffer("feature_scale", torch.tensor(1.0))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def default_weights_path() -> Path:
    return cache_dir() / "extractors" / f"{NAME}.pt"


def checksum_path(weights: Path) -> Path:
    return weights.with_suffix(".sha256")


def _verify(path: Path, required: bool) -> str:
    """The file's sha256, after checking it against the ``.sha256`` sidecar (required for the default file)."""
    sidecar = checksum_path(path)
    actual = file_sha256(path)
    retrain = f"Retrain with `{TRAIN_COMMAND}` (or `make extractor`), which rewrites both files."
    if not sidecar.is_file():
        if required:
            raise ExtractorChecksumError(f"{NAME}: checksum file {sidecar} is missing for {path}. {retrain}")
        return actual
    tokens = sidecar.read_text().split()
    expected = tokens[0] if tokens else ""
    if actual != expected:
        raise ExtractorChecksumError(
            f"{NAME}: {path} does not match its checksum in {sidecar} (sha256 {actual[:12]}… != "
            f"{expected[:12] or 'empty'}…): the file is corrupted or was replaced. {retrain}"
        )
    return actual


def resolve_weights(weights_path: str | Path | None = None) -> tuple[Path, str]:
    """(weights file, its sha256): checked to exist and to match its sidecar checksum."""
    path = Path(weights_path).expanduser() if weights_path is not None else default_weights_path()
    if not path.is_file():
        out = f" --out {path}" if weights_path is not None else ""
        obtain = f"Produce it with `{TRAIN_COMMAND}{out}` (or `make extractor`; ~2 CPU minutes)."
        raise ExtractorWeightsError.for_file(NAME, path, obtain, "run the training command once")
    return path, _verify(path, required=weights_path is None)


def check_lenet(weights_path: str | Path | None = None) -> None:
    """Cheap check: the weights file exists and matches its checksum (the file is < 1 MB)."""
    resolve_weights(weights_path)


class LeNetMNIST(FeatureExtractor):
    name = NAME
    num_features = 128
    num_classes = 10
    image_size = 28
    resize = "none"

    def __init__(self, weights_path: str | Path | None = None) -> None:
        super().__init__()
        path, digest = resolve_weights(weights_path)
        payload = torch.load(path, map_location="cpu", weights_only=True)
        self.net = LeNet()
        self.net.load_state_dict(payload["state_dict"])
        self.meta: dict = payload.get("meta", {})
        self.weights_path = path
        self.weights_id = digest[:12]

    def extract(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        if tuple(images.shape[-2:]) != (28, 28):
            raise ValueError(f"{NAME}: expects 28×28 images (no resizing), got {tuple(images.shape[-2:])}")
        x = images.float()
        if x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)
        x = x.div_(127.5).sub_(1.0)  # MNISTDataModule's scaling, bit for bit
        features = self.net.features(x)
        return features * self.net.feature_scale, self.net.head(features)


def build_lenet(weights_path: str | Path | None = None) -> LeNetMNIST:
    return LeNetMNIST(weights_path=weights_path)
