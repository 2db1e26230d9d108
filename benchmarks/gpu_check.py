"""The GPU check: how fast the framework's GAN steps and one FID evaluation run on a CUDA machine, per precision.

    PYTHONPATH=. python benchmarks/gpu_check.py --out runs/gpu_check.txt        # or: make gpu-check

Times the real training step (the project's LightningModule under a Lightning ``Trainer``; see
``precision_timing``) of DCGAN-MNIST (batch 256, experiments/dcgan_mnist.yaml), DCGAN-CelebA-64 (batch 8,
experiments/dcgan_celeba.yaml) and CycleGAN-256 (batch 1, experiments/cyclegan_horse2zebra.yaml) in fp32,
bf16-mixed, 16-mixed, compiled (``compile=True``), compiled with CUDA graphs (``compile={"mode":
"reduce-overhead"}``) and bf16 + CUDA graphs, plus a 10k-sample FID evaluation; prints one table with ratios to
fp32 eager and the peak memory, to stdout and to ``--out``.

Runs unattended in under 5 minutes: ``--budget`` (270 s) bounds the cells, the most valuable run first, later ones
print "skipped (budget)". Needs only torch, torchvision, lightning and torchmetrics, no network: the models are
built in Python (no YAML), the FID network is torchvision's InceptionV3 with random weights (the same FLOPs as the
FID network; timing only). Without a GPU it prints one line and exits 0. ``--device cpu --quick`` runs the same
code at tiny sizes (``tests/test_gpu_check.py``); ``benchmarks/bench_precision.py`` is the CPU table.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # precision_timing (this folder is not a package)

NO_GPU = (
    "gpu_check: no CUDA device found (torch.cuda.is_available() is False); nothing to time — run this on a GPU "
    "machine. Exiting 0."
)
CONFIG_NAMES = ("fp32", "bf16-mixed", "16-mixed", "compiled", "reduce-overhead", "bf16 + reduce-overhead")
WORKLOAD_KEYS = ("mnist", "celeba", "cyclegan", "fid")
# Execution order, most valuable first (the table is printed in workload order regardless): the eager baselines,
# the FID pass, then compile and CUDA graphs for the launch-bound small nets, 16-mixed, then the big CycleGAN.
PRIORITY = [
    *[(w, "fp32") for w in ("mnist", "celeba", "cyclegan")],
    *[(w, "bf16-mixed") for w in ("mnist", "celeba", "cyclegan")],
    ("fid", "fp32"),
    *[(w, c) for w in ("mnist", "celeba") for c in ("compiled", "reduce-overhead")],
    *[(w, "16-mixed") for w in ("mnist", "celeba", "cyclegan")],
    ("fid", "bf16"),
    ("cyclegan", "compiled"),
    ("cyclegan", "reduce-overhead"),
    *[(w, "bf16 + reduce-overhead") for w in ("mnist", "celeba", "cyclegan")],
]
FORBIDDEN = ("wandb", "torch_fidelity", "jsonargparse", "lightning_gans.config_files", "lightning_gans.cli")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--budget", type=float, default=None, help="seconds for all cells (270; --quick 30)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per cell (3; --quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per cell (20; --quick 2)")
    parser.add_argument("--fid-n", type=int, default=None, help="samples in the FID pass (10000; --quick 8; 0: off)")
    parser.add_argument("--configs", default=",".join(CONFIG_NAMES), help="comma-separated subset")
    parser.add_argument("--workloads", default=",".join(WORKLOAD_KEYS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and step counts (the CPU test path)")
    parser.add_argument("--report-modules", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = {"budget": (270.0, 30.0), "warmup": (3, 1), "steps": (20, 2), "fid_n": (10_000, 8)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for option, known in (("configs", CONFIG_NAMES), ("workloads", WORKLOAD_KEYS)):
        chosen = [c.strip() for c in getattr(args, option).split(",") if c.strip()]
        if set(chosen) - set(known):
            parser.error(f"--{option}: unknown {sorted(set(chosen) - set(known))}; choose from {', '.join(known)}")
        setattr(args, option, chosen)
    return args


def resolve_device(choice: str) -> torch.device | None:
    """cuda / cpu as asked; ``auto`` is cuda when available, else None (nothing to time)."""
    if choice == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else None
    if choice == "cuda" and not torch.cuda.is_available():
        return None
    return torch.device(choice)


# ---------------------------------------------------------------------------------------------- workloads
def _keras_adam(params: Any) -> torch.optim.Optimizer:
    """The DCGAN seeds' optimiser: Adam lr 1e-4 with the Keras epsilon 1e-7 (experiments/dcgan_*.yaml)."""
    return torch.optim.Adam(params, lr=1e-4, eps=1e-7)


def _dcgan(generator: torch.nn.Module, discriminator: torch.nn.Module, compile: Any) -> Any:  # noqa: A002
    """``DCGAN`` as the seeds' YAML builds it: non-saturating BCE, simultaneous update, Keras Adam for both nets."""
    from lightning_gans.models import DCGAN
    from lightning_gans.models.options import Schedule

    return DCGAN(
        generator=generator,
        discriminator=discriminator,
        latent_dim=100,
        loss="non_saturating",
        schedule=Schedule(update="simultaneous"),
        optimizer_g=_keras_adam,
        optimizer_d=_keras_adam,
        num_fixed_noise=16,
        compile=compile,
    )


def dcgan_mnist(batch: int, label: str = "") -> Any:
    """DCGAN-MNIST (``DCGANGenerator28`` / ``DCGANDiscriminator28``, 28×28 grey)."""
    from precision_timing import Workload

    from lightning_gans.networks.dcgan import DCGANDiscriminator28, DCGANGenerator28

    def build(compile: Any) -> Any:  # noqa: A002
        return _dcgan(DCGANGenerator28(latent_dim=100), DCGANDiscriminator28(), compile)

    return Workload(f"DCGAN-MNIST b{batch}{label}", build, (torch.Size([batch, 1, 28, 28]),))


def dcgan_celeba(batch: int, label: str = "") -> Any:
    """DCGAN-CelebA-64 (``DCGANFacesGenerator`` / ``DCGANFacesDiscriminator``, 64×64 RGB)."""
    from precision_timing import Workload

    from lightning_gans.networks.dcgan_faces import DCGANFacesDiscriminator, DCGANFacesGenerator

    def build(compile: Any) -> Any:  # noqa: A002
        return _dcgan(DCGANFacesGenerator(latent_dim=100), DCGANFacesDiscriminator(), compile)

    return Workload(f"DCGAN-CelebA-64 b{batch}{label}", build, (torch.Size([batch, 3, 64, 64]),), cost=1.5)


def cyclegan(size: int, tiny: bool = False, label: str = "") -> Any:
    """CycleGAN at ``size``² with its default networks (ResNet-9 at 256², ResNet-6 below; 70×70 PatchGAN) and the
    paper's options (LSGAN, λ 10, identity 0.5, pool 50), batch 1; ``tiny``: ResNet-1 with 8 base channels."""
    from precision_timing import Workload

    from lightning_gans.models import CycleGAN
    from lightning_gans.networks.translation import PatchGANDiscriminator, ResnetGenerator

    def build(compile: Any) -> Any:  # noqa: A002
        if not tiny:
            return CycleGAN(image_size=size, compile=compile)
        nets = {k: ResnetGenerator(base_channels=8, num_blocks=1) for k in ("G_AB", "G_BA")}
        nets.update({k: PatchGANDiscriminator(base_channels=8) for k in ("D_A", "D_B")})
        return CycleGAN(image_size=size, compile=compile, **nets)

    shape = torch.Size([1, 3, size, size])
    return Workload(f"CycleGAN-{size} b1{label}", build, {"A": shape, "B": shape}, cost=2.0)


def workloads(quick: bool) -> dict[str, Any]:
    """The three training workloads at the experiments' sizes, or tiny ones for ``--quick``."""
    if quick:
        return {
            "mnist": dcgan_mnist(8, " (quick)"),
            "celeba": dcgan_celeba(2, " (quick)"),
            "cyclegan": cyclegan(32, tiny=True, label=" (quick, tiny nets)"),
        }
    return {"mnist": dcgan_mnist(256), "celeba": dcgan_celeba(8), "cyclegan": cyclegan(256)}


# ---------------------------------------------------------------------------------------------- FID
class FidPass:
    """One FID evaluation as timed here: ``n`` DCGAN-CelebA-64 samples generated in batches, resized to 299,
    2048-d pool features of torchvision's InceptionV3 (random weights: the FID network's FLOPs, timing only),
    fp64 Σx / Σxxᵀ accumulated by the project's ``FrechetDistance`` and the distance to reference statistics
    (from a second, untimed pass over random images, as a cached reference would be). ``--quick``: 75 px
    input and the first 64 feature dimensions, so the CPU test stays seconds long."""

    def __init__(self, device: torch.device, n: int, quick: bool) -> None:
        from torchvision.models import inception_v3

        from lightning_gans.networks.dcgan_faces import DCGANFacesGenerator

        self.device, self.n, self.batch = device, n, 4 if quick else 250
        self.size, self.dims = (75, 64) if quick else (299, 2048)
        torch.manual_seed(0)
        self.generator = DCGANFacesGenerator(latent_dim=100).eval().to(device)
        net = inception_v3(weights=None, aux_logits=False, init_weights=False)
        net.fc = torch.nn.Identity()  # the 2048-d pool features, as FID uses them
        self.inception = net.eval().to(device)
        self.reference: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def _features(self, images: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
        x = torch.nn.functional.interpolate((images.clamp(-1, 1) + 1) / 2, size=self.size, mode="bilinear")
        with self._autocast(dtype):
            return self.inception(x)[:, : self.dims].float()

    def _autocast(self, dtype: torch.dtype | None) -> Any:
        return torch.autocast(self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    @torch.no_grad()
    def _fill(self, fid: Any, real: bool, dtype: torch.dtype | None) -> None:
        for start in range(0, self.n, self.batch):
            count = min(self.batch, self.n - start)
            if real:
                images = torch.rand(count, 3, 64, 64, device=self.device) * 2 - 1
            else:
                with self._autocast(dtype):
                    images = self.generator(torch.randn(count, 100, device=self.device)).float()
            fid.update(self._features(images, dtype), real=real)

    def time(self, dtype: torch.dtype | None) -> Any:
        """Seconds for the fake pass plus the distance (reference statistics computed once, untimed)."""
        from precision_timing import Measurement, peak_mib, reset_peak, synchronize

        from lightning_gans.metrics.scores import FrechetDistance

        fid = FrechetDistance(self.dims).to(self.device)
        if self.reference is None:
            self._fill(fid, real=True, dtype=None)
            self.reference = fid.real_statistics()
        fid.set_real_statistics(*self.reference)
        reset_peak(self.device)
        synchronize(self.device)
        start = time.perf_counter()
        self._fill(fid, real=False, dtype=dtype)
        synchronize(self.device)
        features_s = time.perf_counter() - start
        float(fid.compute())  # the value means nothing with random weights: only its cost counts
        total = time.perf_counter() - start
        note = f"{self.n} fakes, batch {self.batch}, {self.size} px, {self.dims}-d: features {features_s:.2f} s"
        note += f" + Fréchet distance {total - features_s:.2f} s"
        return Measurement(total, peak_mib(self.device), note)


# ---------------------------------------------------------------------------------------------- the run
def configs_for_check() -> dict[str, Any]:
    """The columns by name; here 16-mixed is CUDA-only (on CPU Lightning would run it as bf16)."""
    from dataclasses import replace

    import precision_timing as pt

    columns = (pt.FP32, pt.BF16, replace(pt.FP16, cuda_only=True), pt.COMPILED, pt.REDUCE_OVERHEAD)
    return {c.name: c for c in (*columns, pt.BF16_REDUCE_OVERHEAD)}


def training_cell(workload: Any, config: Any, device: torch.device, args: argparse.Namespace, budget: Any) -> Any:
    """One training cell's measurement, or the text that stands in for it."""
    import precision_timing as pt

    if config.cuda_only and device.type != "cuda":
        return "n/a (cuda only)"
    if config.compile and args.quick and device.type == "cpu":
        return "skipped (--quick on CPU: compiling takes minutes)"
    label = f"{workload.name} / {config.name}"
    work = lambda: pt.time_training(workload, config, device, args.warmup, args.steps)  # noqa: E731
    return pt.run_cell(label, work, budget, config.reserve_s * workload.cost, device)


def plan(args: argparse.Namespace, loads: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """The table's rows in display order (workload, then column), keyed like ``PRIORITY``; none of them run yet."""
    import precision_timing as pt

    rows: dict[tuple[str, str], Any] = {}
    for key in ("mnist", "celeba", "cyclegan"):
        if key in args.workloads:
            rows.update({(key, c): pt.Row(loads[key].name, c) for c in CONFIG_NAMES if c in args.configs})
    if "fid" in args.workloads and args.fid_n > 0:
        name = f"FID eval, {args.fid_n} samples{' (quick)' if args.quick else ''}"
        if "fp32" in args.configs:
            rows["fid", "fp32"] = pt.Row(name, "fp32", unit="s")
        if "bf16-mixed" in args.configs:
            rows["fid", "bf16"] = pt.Row(name, "bf16 autocast", unit="s")
    return rows


def fid_reserve(fp32_row: Any, quick: bool) -> float:
    """Budget an FID cell needs before it starts: 40 s, or 1.2× the fp32 pass once that ran. Its Fréchet distance
    is one long native ``eigvals`` call that SIGALRM cannot interrupt, so it must not start late."""
    import precision_timing as pt

    base = 5.0 if quick else 40.0
    measured = fp32_row.result if fp32_row is not None else None
    return max(base, 1.2 * measured.seconds) if isinstance(measured, pt.Measurement) else base


def run(args: argparse.Namespace, device: torch.device) -> str:
    """Every selected cell in ``PRIORITY`` order within the budget; the table text."""
    import precision_timing as pt

    budget = pt.Budget(args.budget)
    loads, configs = workloads(args.quick), configs_for_check()
    rows = plan(args, loads)
    fid: list[FidPass] = []  # built on first use (the network costs a few seconds)

    def fid_cell(dtype: torch.dtype | None) -> Any:
        if not fid:
            fid.append(FidPass(device, args.fid_n, args.quick))
        return fid[0].time(dtype)

    with pt.quiet():
        for key, column in PRIORITY:
            row = rows.get((key, column))
            if row is None:
                continue
            if key == "fid":
                dtype = torch.bfloat16 if column == "bf16" else None
                reserve = fid_reserve(rows.get(("fid", "fp32")), args.quick)
                row.result = pt.run_cell(f"FID / {column}", lambda d=dtype: fid_cell(d), budget, reserve, device)
            else:
                row.result = training_cell(loads[key], configs[column], device, args, budget)
    return pt.format_table(list(rows.values()), pt.header_lines("gpu_check", device))


def report_modules() -> None:
    """(hidden ``--report-modules``) the forbidden modules this run imported, on stderr: the test's check."""
    found = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    print(f"gpu_check: forbidden modules imported: {', '.join(found) or 'none'}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    if device is None:
        print(NO_GPU)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(NO_GPU + "\n")
        return 0
    import precision_timing as pt  # here, not at the top: the no-GPU answer should not wait for Lightning

    pt.write_report(run(args, device), args.out)
    if args.report_modules:
        report_modules()
    return 0


if __name__ == "__main__":
    sys.exit(main())
