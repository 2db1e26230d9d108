"""Time of one FID evaluation (N real vs N fake) in lightning-gans vs torchmetrics used directly, and the cache.

Same extractor (``lenet-mnist`` by default: ``make extractor`` first), same real images (the MNIST test split
under ``DATA_DIR``) and the same fake images (pre-generated once by a DCGAN generator, so generation cost is
excluded from both sides):

* **lightning-gans** — ``lightning_gans.evaluation.evaluate_image_quality`` (the ``ImageQualityCallback`` core):
  real pass + fake pass, no cache;
* **torchmetrics** — ``FrechetInceptionDistance(feature=<the same extractor>)`` updated batch by batch;
* **cached** — our second evaluation of a run, real statistics read from the reference cache (no real pass).

Prints a markdown table and the ratios (target: ours / torchmetrics ≤ 1.1). Never asserts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from datamodules.mnist import MNISTDataModule
from lightning_gans.evaluation import EvalSettings, evaluate_image_quality, make_protocol
from lightning_gans.metrics import ReferenceCache, build_extractor
from lightning_gans.networks import DCGANGenerator28
from lightning_gans.outputs import to_uint8

TARGET = 1.1


def fake_images(n: int, batch: int) -> torch.Tensor:
    """``n`` [-1, 1] images from a seeded, untrained DCGAN generator (eval mode)."""
    torch.manual_seed(0)
    generator = DCGANGenerator28().eval()
    with torch.no_grad():
        return torch.cat([generator(torch.randn(min(batch, n - i), 100)) for i in range(0, n, batch)])


def time_ours(
    fakes: torch.Tensor, reals: torch.Tensor, extractor, batch: int, cache: ReferenceCache | None, protocol: dict
) -> tuple[float, float, str]:
    def sample_fn(count: int, labels=None, indices=None) -> torch.Tensor:
        return fakes[indices]

    start = time.perf_counter()
    result = evaluate_image_quality(
        sample_fn, reals, None, extractor, protocol, ["fid"], EvalSettings(batch_size=batch), cache=cache
    )
    return time.perf_counter() - start, result.values["fid"], result.real_source


def time_torchmetrics(fakes: torch.Tensor, reals: torch.Tensor, extractor, batch: int) -> tuple[float, float]:
    start = time.perf_counter()
    fid = FrechetInceptionDistance(feature=extractor, normalize=False)
    for i in range(0, len(reals), batch):
        fid.update(to_uint8(reals[i : i + batch]), real=True)
    for i in range(0, len(fakes), batch):
        fid.update(to_uint8(fakes[i : i + batch]), real=False)
    value = float(fid.compute())
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--extractor", default="lenet-mnist")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None, help="default: $LIGHTNING_GANS_DATA or ./data")
    args = parser.parse_args()

    datamodule = MNISTDataModule(data_dir=args.data_dir, download=False)
    datamodule.setup("test")
    reals = datamodule.real_images("test")[0][: args.n]
    fakes = fake_images(args.n, args.batch_size)
    extractor = build_extractor(args.extractor)
    protocol = make_protocol("mnist", "test", args.n, extractor)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, extractor {args.extractor}, N={args.n}")

    ours, theirs, cached = [], [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cache = ReferenceCache(Path(tmp))
            t_ours, fid_ours, source = time_ours(fakes, reals, extractor, args.batch_size, cache, protocol)
            assert source == "computed", source
            t_cached, fid_cached, source = time_ours(fakes, reals, extractor, args.batch_size, cache, protocol)
            assert source == "cache", source
        t_theirs, fid_theirs = time_torchmetrics(fakes, reals, extractor, args.batch_size)
        ours.append(t_ours)
        cached.append(t_cached)
        theirs.append(t_theirs)
        print(
            f"  repeat {repeat + 1}: ours {t_ours:.2f} s (FID {fid_ours:.4f}), cached {t_cached:.2f} s "
            f"(FID {fid_cached:.4f}), torchmetrics {t_theirs:.2f} s (FID {fid_theirs:.4f})"
        )

    print("\n| evaluation (N real + N fake) | s (median) | min | max |\n|---|---|---|---|")
    for name, values in (
        ("lightning-gans, no cache", ours),
        ("torchmetrics FID directly", theirs),
        ("lightning-gans, reference cache hit", cached),
    ):
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    ratio = statistics.median(ours) / statistics.median(theirs)
    speedup = statistics.median(ours) / statistics.median(cached)
    verdict = "PASS" if ratio <= TARGET else "ABOVE TARGET"
    print(f"\nours / torchmetrics: {ratio:.3f} (target ≤ {TARGET}) → {verdict}")
    print(f"reference cache speed-up on the second evaluation: {speedup:.2f}×")
    print(f"FID agreement: |ours − torchmetrics| = {abs(fid_ours - fid_theirs):.2e}")


if __name__ == "__main__":
    main()
