"""Per-step time of ``DCGAN`` (dcgan_mnist config) in lightning-gans vs. a plain PyTorch loop (same math).

Both sides train the same seeded networks on one fixed in-memory batch served by equivalent DataLoaders:
simultaneous update (one forward, ``autograd.grad`` for G and D before either Adam step), non-saturating
BCE-with-logits, Adam lr 1e-4 eps 1e-7. "step" = batch start → batch end (the framework's is taken by a
Callback on ``on_train_batch_start``/``on_train_batch_end``, so Trainer startup is excluded); "wall" = first
measured batch start → last batch end, divided by the number of measured steps (adds the loop overhead between
batches). Each repeat's value is the mean over its measured steps; the table shows median/min/max over
repeats, which alternate plain-first / framework-first. Prints only, never asserts: ``make bench ARGS="…"``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import time
import warnings
from typing import Any

import lightning
import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_gans.models import DCGAN
from lightning_gans.models.options import Schedule

LATENT_DIM = 100
TARGET = 1.05


def make_loader(batch: torch.Tensor, n_batches: int) -> DataLoader:
    """``n_batches`` times the same batch, uncollated (``batch_size=None``): no per-sample stacking cost."""
    data = TensorDataset(batch.unsqueeze(0).expand(n_batches, *batch.shape))
    # Own generator: creating the iterator must not draw from the global RNG (keeps both runs' noise equal).
    return DataLoader(data, batch_size=None, generator=torch.Generator().manual_seed(0))


def adam(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-4, eps=1e-7)


def summarise(starts: list[float], ends: list[float], warmup: int) -> tuple[float, float]:
    """(mean step ms, wall ms/step) over the measured (post-warmup) batches."""
    s, e = starts[warmup:], ends[warmup:]
    step = 1e3 * statistics.fmean(b - a for a, b in zip(s, e))
    return step, 1e3 * (e[-1] - s[0]) / len(s)


def run_plain(gen: nn.Module, disc: nn.Module, loader: DataLoader, warmup: int) -> tuple[float, float]:
    opt_g, opt_d = adam(gen.parameters()), adam(disc.parameters())
    g_params, d_params = list(gen.parameters()), list(disc.parameters())
    starts: list[float] = []
    ends: list[float] = []
    for (x,) in loader:
        starts.append(time.perf_counter())
        fake = gen(torch.randn(x.shape[0], LATENT_DIM))
        real_logits, fake_logits = disc(x), disc(fake)
        d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        g_loss = F.softplus(-fake_logits).mean()
        g_grads = torch.autograd.grad(g_loss, g_params, retain_graph=True)
        d_grads = torch.autograd.grad(d_loss, d_params)
        for p, g in zip(g_params + d_params, g_grads + d_grads):
            p.grad = g
        opt_g.step()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        ends.append(time.perf_counter())
    return summarise(starts, ends, warmup)


class StepTimer(pl.Callback):
    """Timestamps of every training batch's start and end."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.ends.append(time.perf_counter())


def run_framework(model: DCGAN, loader: DataLoader, warmup: int, total: int) -> tuple[float, float]:
    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=total,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(model, train_dataloaders=loader)
    if len(timer.ends) != total:
        print(f"warning: framework ran {len(timer.ends)} batches, expected {total}")
    return summarise(timer.starts, timer.ends, warmup)


def max_abs_diff(a: list[nn.Module], b: list[nn.Module]) -> float:
    """Largest |difference| between the two implementations' final weights and buffers (0 = same math)."""
    pairs = zip((t for m in a for t in m.state_dict().values()), (t for m in b for t in m.state_dict().values()))
    return max((x.double() - y.double()).abs().max().item() for x, y in pairs)


def fmt_row(name: str, values: list[float]) -> str:
    return f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} |"


def verdict(ratio: float) -> str:
    return "PASS" if ratio <= TARGET else "ABOVE TARGET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="measured steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per run")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="runs per implementation (median reported)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)

    print(f"torch {torch.__version__} | lightning {lightning.__version__} | threads {torch.get_num_threads()}")
    print(f"(interop {torch.get_num_interop_threads()}) | batch {args.batch_size} | warmup {args.warmup} | ", end="")
    print(f"measured {args.steps} | repeats {args.repeats}")
    total = args.warmup + args.steps
    batch = torch.rand(args.batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    results: dict[str, list[float]] = {k: [] for k in ("plain", "framework", "plain_wall", "framework_wall")}
    diffs: list[float] = []
    t_start = time.perf_counter()
    for rep in range(args.repeats):
        torch.manual_seed(rep)
        simultaneous = Schedule(update="simultaneous")
        model = DCGAN(latent_dim=LATENT_DIM, schedule=simultaneous, optimizer_g=adam, optimizer_d=adam)
        gen, disc = copy.deepcopy(model.generator), copy.deepcopy(model.discriminator)
        order = ("plain", "framework") if rep % 2 == 0 else ("framework", "plain")
        for impl in order:
            loader = make_loader(batch, total)
            torch.manual_seed(1000 + rep)
            if impl == "plain":
                step, wall = run_plain(gen, disc, loader, args.warmup)
            else:
                step, wall = run_framework(model, loader, args.warmup, total)
            results[impl].append(step)
            results[f"{impl}_wall"].append(wall)
            print(f"  repeat {rep + 1}/{args.repeats} {impl:<9}: step {step:7.1f} ms, wall {wall:7.1f} ms/step")
        diffs.append(max_abs_diff([model.generator, model.discriminator], [gen, disc]))
        print(f"  repeat {rep + 1}/{args.repeats} max |weight difference| framework vs plain: {diffs[-1]:.2e}")
    elapsed = time.perf_counter() - t_start

    print("\n| implementation | ms/step (median) | min | max |\n|---|---|---|---|")
    print(fmt_row("plain PyTorch (step)", results["plain"]))
    print(fmt_row("lightning-gans (step)", results["framework"]))
    print(fmt_row("plain PyTorch (wall, incl. loop)", results["plain_wall"]))
    print(fmt_row("lightning-gans (wall, incl. loop)", results["framework_wall"]))
    print()
    for label, key in (("step", ""), ("wall", "_wall")):
        ratio = statistics.median(results[f"framework{key}"]) / statistics.median(results[f"plain{key}"])
        print(f"framework/plain ({label}): {ratio:.3f}  (target ≤ {TARGET:.2f}) → {verdict(ratio)}")
    same = max(diffs) <= 1e-4
    print(f"same math (final weights agree, max diff {max(diffs):.1e} ≤ 1e-4): {'yes' if same else 'NO'}")
    if not same:
        print("  → the framework did not train like the plain loop: the timings compare different computations")
    print(f"benchmark loop time: {elapsed:.1f} s")


if __name__ == "__main__":
    main()
