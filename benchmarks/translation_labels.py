"""Does a translation checkpoint keep the digit? Label preservation and cycle L1 on the MNIST edges↔digits set.

    python benchmarks/translation_labels.py --ckpt runs/<exp>/<run>/checkpoints/last.ckpt --data /tmp/mnist_edges

For the first ``--n`` test images (``val/`` of a paired set, ``testA``/``testB`` of an unpaired one, as written by
``benchmarks/make_mnist_edges.py``; source labels from the names ``<index>_<label>.jpg``), through the datamodules'
test transform at the model's ``image_size``:

* **label agreement A→B** — the fraction of translated outlines G_AB(a) that the ``lenet-mnist`` classifier labels
  as their source digit (chance: 10 %);
* **label agreement B→A→B** — the same for the reconstructions G_AB(G_BA(b)) of the real digits;
* **real-B accuracy** — the classifier on the real test digits themselves (the ceiling of the two above);
* **cycle L1** per domain — the mean over images of the per-image mean |G_BA(G_AB(a)) − a| (A) and
  |G_AB(G_BA(b)) − b| (B) in [-1, 1] units (``TranslationQualityCallback``'s definition).

Digits go to the classifier as ``TranslationQualityCallback(resize_to=28)`` sends them: bilinear, antialiased
resize to 28×28, then uint8. Prints one markdown table row and a JSON line. Never asserts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from datamodules._translation import DomainImages
from datamodules.paired import PairedDataModule
from datamodules.unpaired import UnpairedDataModule
from lightning_gans.outputs import to_uint8
from lightning_gans.workflows.translate import load_translator, model_image_size

Classifier = Callable[[torch.Tensor], torch.Tensor]  # uint8 N×3×28×28 → logits N×10


def labels_from_names(dataset: DomainImages) -> torch.Tensor:
    """The source labels encoded in ``<index>_<label>.<ext>`` file names."""
    labels = []
    for path in dataset.paths:
        label = path.stem.rsplit("_", 1)[-1]
        if not label.isdigit():
            raise ValueError(f"{path.name}: expected <index>_<label>.jpg names (benchmarks/make_mnist_edges.py)")
        labels.append(int(label))
    return torch.tensor(labels)


def load_test_domains(data: Path, image_size: int) -> tuple[DomainImages, DomainImages]:
    """(A, B) test images of a paired (``val/``) or unpaired (``testA``/``testB``) MNIST edges set."""
    if (data / "val").is_dir():
        dm = PairedDataModule(str(data), image_size=image_size, download=False)
    else:
        dm = UnpairedDataModule(str(data), image_size=image_size, load_size=None, download=False)
    return dm.domain_dataset("A", "test"), dm.domain_dataset("B", "test")


def to_classifier(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images → uint8 28×28 (bilinear, antialiased), as ``TranslationQualityCallback(resize_to=28)``."""
    if images.shape[-1] != 28:
        images = F.interpolate(images, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return to_uint8(images)


@torch.no_grad()
def evaluate(
    translate: Callable[[torch.Tensor, str], torch.Tensor],
    domain_a: DomainImages,
    domain_b: DomainImages,
    classify: Classifier,
    n: int | None = None,
    batch_size: int = 100,
) -> dict[str, float]:
    """The four numbers of the module docstring over the first ``n`` images of each domain (all if None)."""
    labels_a, labels_b = labels_from_names(domain_a), labels_from_names(domain_b)
    n_a, n_b = (len(d) if n is None else min(n, len(d)) for d in (domain_a, domain_b))
    sums = dict.fromkeys(("agree_AtoB", "agree_BtoAtoB", "real_B", "cycle_l1_A", "cycle_l1_B"), 0.0)
    for start in range(0, max(n_a, n_b), batch_size):
        if start < n_a:
            a = torch.stack([domain_a[i] for i in range(start, min(start + batch_size, n_a))])
            fake_b = translate(a, "AtoB")
            sums["agree_AtoB"] += (classify(to_classifier(fake_b)).argmax(1) == labels_a[start : start + len(a)]).sum()
            sums["cycle_l1_A"] += (translate(fake_b, "BtoA") - a).abs().flatten(1).mean(1).sum()
        if start < n_b:
            b = torch.stack([domain_b[i] for i in range(start, min(start + batch_size, n_b))])
            truth = labels_b[start : start + len(b)]
            cycled = translate(translate(b, "BtoA"), "AtoB")
            sums["real_B"] += (classify(to_classifier(b)).argmax(1) == truth).sum()
            sums["agree_BtoAtoB"] += (classify(to_classifier(cycled)).argmax(1) == truth).sum()
            sums["cycle_l1_B"] += (cycled - b).abs().flatten(1).mean(1).sum()
    counts = {"agree_AtoB": n_a, "cycle_l1_A": n_a, "real_B": n_b, "agree_BtoAtoB": n_b, "cycle_l1_B": n_b}
    return {key: float(value) / counts[key] for key, value in sums.items()} | {"n_A": n_a, "n_B": n_b}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="CycleGAN/DiscoGAN checkpoint (lightning-gans fit)")
    parser.add_argument("--data", type=Path, required=True, help="make_mnist_edges.py output (paired or unpaired)")
    parser.add_argument("--n", type=int, default=None, help="first N test images per domain (default: all)")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--weights", default=None, help="lenet-mnist weights file (default: the extractor cache)")
    args = parser.parse_args(argv)
    from lightning_gans.metrics import build_extractor

    start = time.perf_counter()
    try:
        model, data_hparams = load_translator(args.ckpt)
        domain_a, domain_b = load_test_domains(args.data, model_image_size(model, data_hparams, None))
        extractor = build_extractor("lenet-mnist", weights_path=args.weights)
        result = evaluate(
            model.translate,
            domain_a,
            domain_b,
            lambda x: extractor.features_and_logits(x)[1],
            args.n,
            args.batch_size,
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"translation_labels: error: {err}", file=sys.stderr)
        sys.exit(1)
    print("| checkpoint | n | label agreement A→B | B→A→B | real-B accuracy | cycle L1 A | cycle L1 B |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.ckpt} | {result['n_A']} | {100 * result['agree_AtoB']:.1f} % | {100 * result['agree_BtoAtoB']:.1f} % "
        f"| {100 * result['real_B']:.1f} % | {result['cycle_l1_A']:.4f} | {result['cycle_l1_B']:.4f} |"
    )
    print(json.dumps({"ckpt": str(args.ckpt), "seconds": round(time.perf_counter() - start, 1), **result}))


if __name__ == "__main__":
    main()
