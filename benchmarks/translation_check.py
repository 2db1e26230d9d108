"""The real check of issue 7: does a CycleGAN / DiscoGAN trained on MNIST edges ↔ digits keep the digit?

    python benchmarks/translation_check.py --ckpt runs/cyclegan_mnist_edges/<run>/checkpoints/last.ckpt \
        --dataset /tmp/mnist_edges

Reads the ``val/`` split of the paired edges ↔ digits set written by ``benchmarks/make_mnist_edges.py`` (A = edges,
B = digit; the source digit's label is the last ``_``-separated part of each file name, e.g. ``00042_7.jpg``)
through ``datamodules.paired.PairedDataModule`` at the model's ``image_size``, and prints one JSON line:

* ``label_agreement`` — the fraction of translated edges → digit images (G_AB) whose ``lenet-mnist`` label equals
  the source digit's label, after RGB → grey (the extractor averages the channels) and a bilinear antialiased
  resize to 28×28; ``lenet_on_real_digits`` is the same classifier on the real B digits through the same resize
  (the ceiling), chance is 0.1;
* ``cycle_l1_A`` / ``cycle_l1_B`` — mean over the split of the per-image mean |G_BA(G_AB(a)) − a| (and the B
  cycle), in [-1, 1] pixel units.

The ``lenet-mnist`` weights come from ``~/.cache/lightning-gans/extractors/lenet-mnist.pt`` (``lightning-gans
train-extractor`` makes them) or ``--lenet_weights``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def source_labels(paths: list[Path]) -> torch.Tensor:
    """Digit labels from file names ``<index>_<label>.jpg``; a clear error for other names."""
    labels = []
    for path in paths:
        tail = Path(path).stem.rsplit("_", 1)[-1]
        if not tail.isdigit():
            raise SystemExit(f"{path}: expected a name <index>_<label>.jpg as make_mnist_edges.py writes")
        labels.append(int(tail))
    return torch.tensor(labels)


def to_lenet(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] N×3×S×S → uint8 N×3×28×28 (bilinear, antialiased), the input ``lenet-mnist`` takes."""
    from lightning_gans.outputs import to_uint8

    if images.shape[-1] != 28:
        images = F.interpolate(images, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return to_uint8(images)


@torch.no_grad()
def check(ckpt: Path, dataset: str, batch_size: int, limit: int | None, lenet_weights: str | None) -> dict:
    from datamodules.paired import PairedDataModule
    from lightning_gans.metrics import build_extractor
    from lightning_gans.sampling import load_module

    model = load_module(ckpt)
    if not callable(getattr(model, "translate", None)):
        raise SystemExit(f"{ckpt} holds a {type(model).__name__}, not a translation model (CycleGAN, DiscoGAN)")
    lenet = build_extractor("lenet-mnist", weights_path=lenet_weights)
    data = PairedDataModule(dataset=dataset, image_size=model.hparams.image_size, download=False)
    data.prepare_data()
    data.setup("fit")
    edges, digits = data.domain_dataset("A", "val"), data.domain_dataset("B", "val")
    n = len(edges) if limit is None else min(limit, len(edges))
    labels = source_labels(edges.paths[:n])
    if [Path(p).name for p in edges.paths[:n]] != [Path(p).name for p in digits.paths[:n]]:
        raise SystemExit("val/ A and B lists differ: expected the paired side-by-side layout")
    agree = real_correct = 0
    cycle = {"A": 0.0, "B": 0.0}
    start = time.perf_counter()
    for lo in range(0, n, batch_size):
        idx = range(lo, min(lo + batch_size, n))
        a = torch.stack([edges[i] for i in idx])
        b = torch.stack([digits[i] for i in idx])
        y = labels[lo : lo + len(idx)]
        fake_b = model.translate(a, "AtoB")
        _, logits = lenet.features_and_logits(to_lenet(fake_b))
        agree += int((logits.argmax(1) == y).sum())
        _, logits = lenet.features_and_logits(to_lenet(b))
        real_correct += int((logits.argmax(1) == y).sum())
        cycle["A"] += float((model.translate(fake_b, "BtoA") - a).abs().flatten(1).mean(1).sum())
        fake_a = model.translate(b, "BtoA")
        cycle["B"] += float((model.translate(fake_a, "AtoB") - b).abs().flatten(1).mean(1).sum())
    return {
        "ckpt": str(ckpt),
        "model": type(model).__name__,
        "image_size": model.hparams.image_size,
        "split": "val",
        "n": n,
        "label_agreement": agree / n,
        "lenet_on_real_digits": real_correct / n,
        "cycle_l1_A": cycle["A"] / n,
        "cycle_l1_B": cycle["B"] / n,
        "lenet_weights_id": lenet.weights_id,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, required=True, help="a CycleGAN/DiscoGAN checkpoint (last.ckpt)")
    parser.add_argument("--dataset", default="/tmp/mnist_edges", help="paired edges ↔ digits folder (train/, val/)")
    parser.add_argument("--batch_size", type=int, default=250)
    parser.add_argument("--limit", type=int, default=None, help="first N val images (default: all)")
    parser.add_argument("--lenet_weights", default=None, help="lenet-mnist weights file (default: the cache)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(json.dumps(check(args.ckpt, args.dataset, args.batch_size, args.limit, args.lenet_weights)))


if __name__ == "__main__":
    main()
