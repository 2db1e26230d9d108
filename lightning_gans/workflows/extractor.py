"""Training the ``lenet-mnist`` feature extractor (the network is :mod:`lightning_gans.metrics.lenet`).

A LeNet-style classifier (LeCun et al. 1998) trained on MNIST's train split, scored on its test split, written
to the extractor cache with a sha256 sidecar; its feature scale is set so that the features have unit mean
square over (up to) 10k training images.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from datamodules.mnist import MNISTDataModule
from lightning_gans.metrics.extractors import file_sha256
from lightning_gans.metrics.lenet import NAME, LeNet, checksum_path, default_weights_path
from lightning_gans.outputs import atomic_write


def _accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum().item()
            for i in range(0, len(images), batch_size)
        )
    return correct / max(1, len(images))


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
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    dm = MNISTDataModule(data_dir=data_dir)
    dm.prepare_data()
    train_x, train_y = dm.real_images("train")
    test_x, test_y = dm.real_images("test")
    model, seconds = fit_lenet(train_x, train_y, epochs, batch_size, seed, progress)
    accuracy = _accuracy(model, test_x, test_y)
    with torch.no_grad():  # unit mean square of the features over (up to 10k) training images
        mean_square = torch.cat([model.features(chunk) for chunk in train_x[:10000].split(1000)]).pow(2).mean()
        model.feature_scale.fill_(mean_square.rsqrt().item())
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
    path = Path(out).expanduser() if out is not None else default_weights_path()
    digest = _save(model, meta, path)
    if progress:
        print(
            f"{NAME}: test accuracy {100 * accuracy:.2f}% on {len(test_x)} images after {epochs} epoch(s), "
            f"{seconds:.0f} s training → {path} (sha256 {digest[:12]})"
        )
    return path


def fit_lenet(
    train_x: Tensor, train_y: Tensor, epochs: int, batch_size: int, seed: int, progress: bool
) -> tuple[LeNet, float]:
    """Adam (lr 2e-3) with a cosine decay over every step; returns the model and the training seconds."""
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
    return model, time.perf_counter() - start


def _save(model: LeNet, meta: dict, path: Path) -> str:
    """Write the state dict + metadata and its ``.sha256`` sidecar atomically; returns the digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: torch.save({"state_dict": state, "meta": meta}, tmp))
    digest = file_sha256(path)
    atomic_write(checksum_path(path), lambda tmp: tmp.write_text(f"{digest}  {path.name}\n"))
    return digest
