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

import argparse
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_gans.metrics.extractors import (
    ExtractorChecksumError,
    ExtractorWeightsError,
    FeatureExtractor,
    cache_dir,
    file_sha256,
    register_extractor,
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


@register_extractor(NAME, check=check_lenet)
def build_lenet(weights_path: str | Path | None = None) -> LeNetMNIST:
    return LeNetMNIST(weights_path=weights_path)


def _accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum().item()
            for i in range(0, len(images), batch_size)
        )
    return correct / max(1, len(images))


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def train_lenet_mnist(
    data_dir: str | None = None,
    out: Path | None = None,
    epochs: int = 2,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Train :class:`LeNet` on MNIST's train split (Adam, lr 2e-3 with cosine decay), report test accuracy and
    write ``out`` (default ``<cache>/extractors/lenet-mnist.pt``: state dict + metadata) and its ``.sha256``."""
    from tqdm.auto import tqdm

    from datamodules.mnist import MNISTDataModule

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    dm = MNISTDataModule(data_dir=data_dir)
    dm.prepare_data()
    train_x, train_y = dm.real_images("train")
    test_x, test_y = dm.real_images("test")

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = LeNet()
    steps_per_epoch = math.ceil(len(train_x) / batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        bar = tqdm(range(steps_per_epoch), desc=f"{NAME} epoch {epoch + 1}/{epochs}", disable=not progress)
        for step in bar:
            idx = order[step * batch_size : (step + 1) * batch_size]
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        bar.close()
    seconds = time.perf_counter() - start
    accuracy = _accuracy(model, test_x, test_y)
    with torch.no_grad():  # unit mean square of the features over (up to 10k) training images
        mean_square = torch.cat([model.features(chunk) for chunk in train_x[:10000].split(1000)]).pow(2).mean()
        model.feature_scale.fill_(mean_square.rsqrt().item())

    path = Path(out).expanduser() if out is not None else default_weights_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "test_accuracy": accuracy,
        "n_test": len(test_x),
        "n_train": len(train_x),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "feature_scale": model.feature_scale.item(),
        "train_seconds": round(seconds, 1),
        "torch": str(torch.__version__),
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _atomic_write(path, lambda tmp: torch.save({"state_dict": state, "meta": meta}, tmp))
    digest = file_sha256(path)
    _atomic_write(checksum_path(path), lambda tmp: tmp.write_text(f"{digest}  {path.name}\n"))
    if progress:
        print(
            f"{NAME}: test accuracy {100 * accuracy:.2f}% on {len(test_x)} images after {epochs} epoch(s), "
            f"{seconds:.0f} s training → {path} (sha256 {digest[:12]})"
        )
    return path


def train_extractor_command(argv: list[str]) -> None:
    """``lightning-gans train-extractor mnist [--data_dir DIR] [--epochs N] [--out FILE]``."""
    parser = argparse.ArgumentParser(
        prog="lightning-gans train-extractor",
        description=f"Train the {NAME} feature extractor used for MNIST FID/IS/KID and write it to the cache.",
    )
    parser.add_argument("dataset", choices=["mnist"], help="which extractor to train (mnist → lenet-mnist)")
    parser.add_argument("--data_dir", default=None, help="folder holding MNIST/raw/ (default: $LIGHTNING_GANS_DATA)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (default 2)")
    parser.add_argument("--out", type=Path, default=None, help=f"output file (default <cache>/extractors/{NAME}.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_lenet_mnist(data_dir=args.data_dir, out=args.out, epochs=args.epochs, seed=args.seed)
