"""A small edges ↔ digits translation set built from the real MNIST IDX files, for CycleGAN / DiscoGAN runs here.

    python benchmarks/make_mnist_edges.py --data_dir ../shared/data --out /tmp/mnist_edges
    python benchmarks/make_mnist_edges.py --data_dir ../shared/data --out /tmp/mnist_edges_unpaired --layout unpaired

Reads ``<data_dir>/MNIST/raw/`` with ``torchvision.datasets.MNIST`` (no download). The first ``--n_train`` digits
of the MNIST training split (default 10,000) make the training split, the first ``--n_val`` of the test split
(default 1,000) the validation/test split. Each digit becomes two ``--size``² RGB images (default 64×64):

* **B (digit)** — the MNIST digit upscaled 28 → size (bilinear, antialiased), white on black, grey in all three
  channels: what the ``lenet-mnist`` classifier sees after a resize back to 28×28.
* **A (edges)** — its outline, deterministic: ``mask`` = upscaled digit ≥ 128; ``edges = dilate(mask) ∧ ¬mask``
  with a square ``(2·--edge_width + 1)``² structuring element (a max-pool), i.e. an ``--edge_width``-pixel band
  just outside the stroke (default 2 px at 64²). Drawn black on white, like the pix2pix ``edges2*`` sketches.

Layouts (``--layout``):

* ``paired`` (default) — pix2pix side by side: ``OUT/train/*.jpg`` and ``OUT/val/*.jpg``, each size × 2·size
  with A (edges) on the left and B (digit) on the right; read by ``datamodules.paired.PairedDataModule``.
* ``unpaired`` — CycleGAN folders ``OUT/trainA``, ``OUT/trainB``, ``OUT/testA``, ``OUT/testB`` (one square JPG
  per image); read by ``datamodules.unpaired.UnpairedDataModule``. Both domains hold the same digits; the
  datamodule shuffles A and B independently, so training never sees the pairing.
* ``both`` — ``OUT/paired/…`` and ``OUT/unpaired/…``.

Every file is named ``<index in its MNIST split, 5 digits>_<label>.jpg`` (e.g. ``00042_7.jpg``), so a translated
image's source label can be read back from its name (label-preservation check with ``lenet-mnist``). JPEG quality
95, no chroma subsampling.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

LAYOUTS = ("paired", "unpaired", "both")


def load_mnist(data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 N×28×28 digits, int64 N labels) of one MNIST split, from ``<data_dir>/MNIST/raw`` (never downloads)."""
    from torchvision.datasets import MNIST

    try:
        dataset = MNIST(str(data_dir), train=train, download=False)
    except RuntimeError as err:  # torchvision: "Dataset not found. You can use download=True to download it"
        raise FileNotFoundError(
            f"MNIST IDX files not found in {Path(data_dir).resolve() / 'MNIST' / 'raw'} ({err}). Expected "
            "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
            "there; `lightning-gans fit --config experiments/dcgan_mnist.yaml` downloads them, or see docs/data.md."
        ) from None
    return dataset.data, dataset.targets


def digits_and_edges(digits: torch.Tensor, size: int = 64, edge_width: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """(digits, edges) as uint8 N×size×size greyscale: the upscaled digits (white on black) and their outlines
    (black on white): ``dilate(mask, (2·edge_width+1)² square) ∧ ¬mask`` with ``mask`` = digit ≥ 128."""
    if edge_width < 1:
        raise ValueError(f"edge_width must be >= 1 pixel, got {edge_width}")
    x = digits[:, None].float() / 255.0
    up = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    mask = (up >= 0.5).float()
    dilated = F.max_pool2d(mask, kernel_size=2 * edge_width + 1, stride=1, padding=edge_width)
    edges = dilated * (1 - mask)
    digit_u8 = (up * 255).round().to(torch.uint8)[:, 0]
    edges_u8 = ((1 - edges) * 255).to(torch.uint8)[:, 0]
    return digit_u8, edges_u8


def _save(path: Path, grey: np.ndarray) -> None:
    Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(path, quality=95, subsampling=0)


def write_split(
    out: Path, split: str, digits: torch.Tensor, labels: torch.Tensor, layout: str, size: int, edge_width: int
) -> int:
    """Write one split (``train`` or ``val``/``test``) in ``layout`` (``paired`` or ``unpaired``); returns the count."""
    digit, edges = digits_and_edges(digits, size, edge_width)
    digit_np, edges_np = digit.numpy(), edges.numpy()
    if layout == "paired":
        folder = out / ("train" if split == "train" else "val")
        folder.mkdir(parents=True, exist_ok=True)
        for i, label in enumerate(labels.tolist()):
            _save(folder / f"{i:05d}_{label}.jpg", np.concatenate([edges_np[i], digit_np[i]], axis=1))
    else:
        prefix = "train" if split == "train" else "test"
        for domain, images in (("A", edges_np), ("B", digit_np)):
            folder = out / f"{prefix}{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            for i, label in enumerate(labels.tolist()):
                _save(folder / f"{i:05d}_{label}.jpg", images[i])
    return len(labels)


def make_mnist_edges(
    data_dir: Path,
    out: Path,
    n_train: int = 10_000,
    n_val: int = 1_000,
    size: int = 64,
    edge_width: int = 2,
    layout: str = "paired",
) -> dict[str, int]:
    """Build the set (see the module docstring); returns ``{split: number of images}``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    counts = {}
    for split, train, n in (("train", True, n_train), ("val", False, n_val)):
        digits, labels = load_mnist(data_dir, train)
        if not 1 <= n <= len(labels):
            raise ValueError(f"--n_{split} must be in 1..{len(labels)} (the MNIST {split} source), got {n}")
        for kind in ("paired", "unpaired") if layout == "both" else (layout,):
            target = out / kind if layout == "both" else out
            counts[split] = write_split(target, split, digits[:n], labels[:n], kind, size, edge_width)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", type=Path, default=Path("data"), help="data root holding MNIST/raw/")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--layout", choices=LAYOUTS, default="paired")
    parser.add_argument("--n_train", type=int, default=10_000, help="first N digits of MNIST train (default 10000)")
    parser.add_argument("--n_val", type=int, default=1_000, help="first N digits of MNIST test (default 1000)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--edge_width", type=int, default=2, help="outline width in pixels (default 2)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        counts = make_mnist_edges(
            args.data_dir, args.out, args.n_train, args.n_val, args.size, args.edge_width, args.layout
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"make_mnist_edges: error: {err}", file=sys.stderr)
        sys.exit(1)
    print(
        f"wrote {counts['train']} train + {counts['val']} val/test edges↔digit pairs ({args.size}×{args.size}, "
        f"{args.layout} layout) to {args.out} in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
