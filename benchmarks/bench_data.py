"""``make bench-data``: images/s of the image loaders — decode path vs decoded-cache path, 0/1/2/auto workers —
next to the training-step rate of the matching experiment on this machine, and which one bounds training.

Data: generated JPEGs in the real layouts (nothing is downloaded): CelebA-like 178×218 faces (torchvision layout,
``dcgan_celeba``'s crop box [25, 65, 153, 193] → 64²) and CycleGAN-like 256² pictures (``trainA``/``trainB``,
``cyclegan_horse2zebra``'s resize to 286² → random 256² crop → flip). The pictures are smooth colour fields with
noise and edges, so they decode at a cost close to real photos' (JPEG cost follows size and entropy).

Rows: a loader's images/s after each epoch's first batch (worker start-up excluded), over as many epochs as
make 1.5 s (at most 20); the cache build is timed separately; "per core" divides by the processes doing the
work (workers, or the main process with none).
Then a real DCGAN-CelebA fit (the experiment's networks, batch 8) fed by each path, images/s end to end; and
the experiments' training steps alone (``precision_timing``), which say what a loader must keep up with here.
Prints only, never asserts.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_check, precision_timing (not a package)

import gpu_check  # noqa: E402 - after the path line above
import precision_timing as pt  # noqa: E402

from datamodules._loading import auto_workers, available_cpus  # noqa: E402
from datamodules.celeba import CelebADataModule  # noqa: E402
from datamodules.unpaired import UnpairedDataModule  # noqa: E402

CROP_BOX = [25, 65, 153, 193]
MIN_SECONDS, MAX_EPOCHS = 1.5, 20  # a loader row runs epochs until it has measured this long (or this many)


def picture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth colour field + an ellipse edge + noise (decodes like a photo of the same size)."""
    low = rng.uniform(0, 255, size=(height // 16 + 2, width // 16 + 2, 3)).astype(np.float32)
    field = np.asarray(Image.fromarray(low.astype(np.uint8)).resize((width, height), Image.BICUBIC), np.float32)
    yy, xx = np.mgrid[:height, :width]
    mask = ((yy - height / 2) / (height / 3)) ** 2 + ((xx - width / 2) / (width / 4)) ** 2 < 1
    field[mask] = 0.6 * field[mask] + 80
    field += rng.normal(0, 6, size=field.shape)
    return np.clip(field, 0, 255).astype(np.uint8)


def write_faces(root: Path, n: int) -> Path:
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for name in names:
        Image.fromarray(picture(rng, 218, 178)).save(folder / name, quality=95)
    (root / "celeba" / "list_eval_partition.txt").write_text("".join(f"{name} 0\n" for name in names))
    return root


def write_unpaired(root: Path, n: int) -> Path:
    rng = np.random.default_rng(1)
    for split, count in (("trainA", n), ("trainB", n), ("testA", 2), ("testB", 2)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(picture(rng, 256, 256)).save(root / split / f"{i:05d}.jpg", quality=95)
    return root


def loader_rate(datamodule: pl.LightningDataModule) -> tuple[float, float]:
    """(images/s over one epoch after the first batch, cache build seconds) of ``datamodule``'s train loader."""
    started = time.perf_counter()
    datamodule.prepare_data()
    datamodule.setup("fit")
    build = time.perf_counter() - started
    torch.manual_seed(0)
    count, seconds, epochs = 0, 0.0, 0
    while seconds < MIN_SECONDS and epochs < MAX_EPOCHS:  # fast paths: several epochs, so timer noise is small
        first = None
        for batch in datamodule.train_dataloader():
            images = batch["A"] if isinstance(batch, dict) else batch
            if first is None:
                first = time.perf_counter()
                continue
            count += len(images)
        seconds += time.perf_counter() - first
        epochs += 1
    return count / seconds, build


def loader_rows(name: str, make: Any, workers: list[int | str], cache_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for cached in (False, True):
        for w in workers:
            resolved = auto_workers(available_cpus(), 1, in_memory=cached) if w == "auto" else int(w)
            rate, build = loader_rate(make(num_workers=w, cache=cached, cache_dir=str(cache_dir)))
            busy = min(available_cpus(), resolved) if resolved else 1
            label = f"auto ({resolved})" if w == "auto" else str(w)
            rows.append({"data": name, "path": "cache" if cached else "decode", "workers": label, "rate": rate,
                         "per_core": rate / busy, "build": build})  # fmt: skip
    return rows


class WallTimer(pl.Callback):
    """Wall time between consecutive batch starts (loading included)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        self.starts.append(time.perf_counter())


def fit_rate(make: Any, workers: int | str, cached: bool, cache_dir: Path, steps: int, warmup: int = 2) -> float:
    """Images/s of a real DCGAN-CelebA fit (batch 8) fed by the faces loader, loading included."""
    torch.manual_seed(0)
    model = gpu_check.dcgan_celeba(8).build(False)
    datamodule = make(num_workers=workers, cache=cached, cache_dir=str(cache_dir), batch_size=8)
    timer = WallTimer()
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=warmup + steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    gaps = np.diff(timer.starts[warmup:])
    return 8 / float(statistics.median(gaps))


def table(rows: list[dict[str, Any]], decode0: dict[str, float]) -> str:
    lines = [
        "| data | path | workers | images/s | per core | × decode (0 workers), per core | setup s (cache: build) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = row["per_core"] / decode0[row["data"]]
        build = f"{row['build']:.2f}" if row["path"] == "cache" else "–"
        lines.append(f"| {row['data']} | {row['path']} | {row['workers']} | {row['rate']:,.0f} | "
                     f"{row['per_core']:,.0f} | {ratio:.1f} | {build} |")  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=2000, help="CelebA-like JPEGs (default 2000)")
    parser.add_argument("--unpaired", type=int, default=200, help="CycleGAN-like JPEGs per domain (default 200)")
    parser.add_argument("--workers", default="0,1,2,auto", help="worker counts to try (default 0,1,2,auto)")
    parser.add_argument("--fit_steps", type=int, default=12, help="DCGAN-CelebA fit steps per path (default 12)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--work", default=None, help="folder for the generated data and caches (default: temp)")
    return parser.parse_args(argv)


def _measure(args: argparse.Namespace, work: Path) -> list[str]:
    workers = [w if w == "auto" else int(w) for w in args.workers.split(",")]
    faces_root = write_faces(work / "faces", args.faces)
    unpaired_root = write_unpaired(work / "h2z", args.unpaired)
    cache_dir = work / "cache"

    def faces(**kw: Any) -> CelebADataModule:
        return CelebADataModule(data_dir=str(faces_root), crop_box=CROP_BOX, image_size=64,
                                **{"batch_size": 8, "persistent_workers": False, "drop_last": True, **kw})  # fmt: skip

    def unpaired(**kw: Any) -> UnpairedDataModule:
        return UnpairedDataModule(dataset=str(unpaired_root), image_size=256, load_size=286, batch_size=1,
                                  persistent_workers=False, **kw)  # fmt: skip

    rows = loader_rows("CelebA-like 64² (b8)", faces, workers, cache_dir)
    big = [w for w in workers if w in (0, "auto")]
    rows += loader_rows("CelebA-like 64² (b128)", lambda **kw: faces(batch_size=128, **kw), big, cache_dir)
    rows += loader_rows("CycleGAN-like 256² (b1)", unpaired, workers, cache_dir)
    decode0 = {r["data"]: r["per_core"] for r in rows if r["path"] == "decode" and r["workers"] == "0"}
    fits = {(c, w): fit_rate(faces, w, c, cache_dir, args.fit_steps) for c in (False, True) for w in (0, "auto")}
    dcgan = pt.time_training(gpu_check.dcgan_celeba(8), pt.FP32, torch.device("cpu"), 2, 6 if args.quick else 20)
    cyclegan = pt.time_training(gpu_check.cyclegan(256), pt.FP32, torch.device("cpu"), 1, 1 if args.quick else 3)
    steps = {"CelebA-like 64² (b8)": ("dcgan_celeba", 8 / dcgan.seconds),
             "CycleGAN-like 256² (b1)": ("cyclegan_horse2zebra", 1 / cyclegan.seconds)}  # fmt: skip
    lines = [f"CPUs available: {available_cpus()}; auto workers here: decode {auto_workers(available_cpus(), 1)}, "
             "cache 0", "", table(rows, decode0), "", "| DCGAN-CelebA fit b8, loading included | images/s |",
             "|---|---:|"]  # fmt: skip
    for (cached, w), rate in fits.items():
        lines.append(f"| {'cache' if cached else 'decode'}, {w} workers | {rate:,.0f} |")
    lines += ["", "| data | experiment step alone (fp32, this CPU) | images/s | fastest decode loader | bound |",
              "|---|---|---:|---:|---|"]  # fmt: skip
    for data, (experiment, rate) in steps.items():
        best = max(r["rate"] for r in rows if r["data"] == data and r["path"] == "decode")
        bound = "training (the GPU-less step)" if rate < best else "loading"
        lines.append(f"| {data} | {experiment} | {rate:,.2f} | {best:,.0f} | {bound} |")
    for data in ("CelebA-like 64² (b8)", "CelebA-like 64² (b128)"):
        cache64 = max(r["per_core"] for r in rows if r["data"] == data and r["path"] == "cache")
        lines.append(f"cache vs decode per core, {data}: {cache64 / decode0[data]:.0f}× (target ≥ 20×)")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.faces, args.unpaired, args.fit_steps, args.workers = 64, 8, 4, "0,auto"
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        print("\n".join(_measure(args, work)))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
