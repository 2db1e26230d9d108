"""``make bench-precision``: the GPU check's table for what runs on this CPU, as ratios to fp32 eager.

The main row is DCGAN-MNIST at batch 64 (experiments/dcgan_mnist_recommended.yaml; the seed's YAML uses 256), the
framework's real step (``precision_timing``: the project's ``DCGAN`` under a Lightning ``Trainer`` on synthetic
batches), in fp32, bf16-mixed, 16-mixed and compiled (``compile=True``, inductor's C++ backend). On CPU Lightning
runs ``precision="16-mixed"`` as bf16, so the 16-mixed column here is real fp16 autocast through an explicit
``MixedPrecision("16-mixed", "cpu")`` plugin (the framework's per-optimizer loss scalers included). A second,
labelled row group is DCGAN-CelebA-64 at its real batch of 8 (fewer steps; fp32 and compiled only). CPU autocast
is ~20× slower than fp32 here, so its cells time a third of the steps after one warm-up step (the note says so).
CUDA graphs need a GPU: ``benchmarks/gpu_check.py``. Prints only, never asserts; ``ARGS="--quick"`` is a smoke run.
About 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_check, precision_timing (not a package)

import gpu_check  # noqa: E402 - after the path line above
import precision_timing as pt  # noqa: E402

CONFIGS = {c.name: c for c in (pt.FP32, pt.BF16, pt.FP16, pt.COMPILED)}
WORKLOADS = ("mnist", "celeba")
CELEBA_CONFIGS = ("fp32", "compiled")  # its autocast steps take ~20 s each here: the MNIST row shows that ratio


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--budget", type=float, default=None, help="seconds for all cells (300; --quick 60)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per cell (3; --quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed DCGAN-MNIST steps per cell (10; --quick 2)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ",".join(CONFIGS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of mnist,celeba")
    parser.add_argument("--quick", action="store_true", help="batch 8, 2 steps, no CelebA row (a smoke run)")
    args = parser.parse_args(argv)
    for name, full, quick in (("budget", 300.0, 60.0), ("warmup", 3, 1), ("steps", 10, 2)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for option, known in (("configs", CONFIGS), ("workloads", WORKLOADS)):
        chosen = [c.strip() for c in getattr(args, option).split(",") if c.strip()]
        if set(chosen) - set(known):
            parser.error(f"--{option}: unknown {sorted(set(chosen) - set(known))}; choose from {', '.join(known)}")
        setattr(args, option, chosen)
    return args


def workloads(args: argparse.Namespace) -> list[tuple[Any, int, list[str]]]:
    """(workload, timed steps, columns): DCGAN-MNIST b64 first, then DCGAN-CelebA-64 b8 (a third of the steps)."""
    if args.quick:
        return [(gpu_check.dcgan_mnist(8, " (quick)"), args.steps, args.configs)] if "mnist" in args.workloads else []
    chosen = []
    if "mnist" in args.workloads:
        chosen.append((gpu_check.dcgan_mnist(64), args.steps, args.configs))
    if "celeba" in args.workloads:
        columns = [c for c in args.configs if c in CELEBA_CONFIGS]
        chosen.append((gpu_check.dcgan_celeba(8, " (fewer steps)"), max(1, args.steps // 3), columns))
    return chosen


def run(args: argparse.Namespace) -> str:
    """Every cell in table order (the main row first) within the budget; the table text."""
    device, budget, rows = torch.device("cpu"), pt.Budget(args.budget), []
    with pt.quiet():
        for workload, full_steps, columns in workloads(args):
            for name in columns:
                config = CONFIGS[name]
                slow = config.precision != "32-true" and not args.quick  # CPU autocast: ~20x the fp32 step
                steps, warmup = (max(2, full_steps // 3), 1) if slow else (full_steps, args.warmup)
                row = pt.Row(workload.name, name)
                work = lambda w=workload, c=config, n=steps, k=warmup: pt.time_training(w, c, device, k, n)  # noqa: E731
                label = f"{workload.name} / {name}"
                row.result = pt.run_cell(label, work, budget, config.reserve_s * workload.cost, device)
                rows.append(row)
    header = pt.header_lines("bench_precision (CPU)", device)
    header.append("16-mixed = fp16 autocast via MixedPrecision('16-mixed', 'cpu'); compiled = torch.compile (inductor)")
    return pt.format_table(rows, header)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pt.write_report(run(args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
