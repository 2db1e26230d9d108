"""Timing code shared by ``benchmarks/gpu_check.py`` (CUDA) and ``benchmarks/bench_precision.py`` (CPU).

What is timed is the framework's real training step: the project's LightningModule run by a
``lightning.pytorch.Trainer`` with the precision and ``compile`` option under test, on synthetic in-memory
batches (a ``DataLoader`` over a ``TensorDataset`` of whole batches, already on the device, so neither collation
nor host-to-device copies are in the step). A callback times every batch from ``on_train_batch_start`` to
``on_train_batch_end`` (``torch.cuda.synchronize()`` at both ends on a GPU); a cell is the median over the steps
after warm-up (warm-up absorbs cuDNN autotuning, torch.compile and CUDA-graph recording). Peak memory is
``torch.cuda.max_memory_allocated`` over the whole fit, warm-up included ("-" on CPU).

Every cell is guarded: an exception becomes ``error: <Type: first line>`` in its cell (traceback on stderr) and
the run goes on. A ``Budget`` skips cells that would start too late and interrupts (SIGALRM) one that overruns.

Imports only torch, torchvision, lightning, torchmetrics and the project's models / FID statistics: nothing on
this path imports wandb, torch-fidelity, jsonargparse or PyYAML of its own (Lightning itself needs PyYAML).
"""

from __future__ import annotations

import gc
import logging
import signal
import statistics
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import lightning
import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

GRACE_S = 10.0  # how far past the budget a running cell may go before SIGALRM interrupts it


# ---------------------------------------------------------------------------------------------- configurations
@dataclass(frozen=True)
class Config:
    """One column of the matrix: a Trainer precision plus the model's ``compile`` option."""

    name: str
    precision: str = "32-true"
    compile: bool | dict[str, Any] = False
    cuda_only: bool = False
    warmup_extra: int = 0  # compiled graphs (and CUDA-graph recording) need a few more warm-up steps
    reserve_s: float = 10.0  # not started with less budget left (times the workload's cost factor)


FP32 = Config("fp32")
BF16 = Config("bf16-mixed", precision="bf16-mixed")
FP16 = Config("16-mixed", precision="16-mixed")
COMPILED = Config("compiled", compile=True, warmup_extra=3, reserve_s=45.0)
REDUCE_OVERHEAD = Config(
    "reduce-overhead", compile={"mode": "reduce-overhead"}, cuda_only=True, warmup_extra=5, reserve_s=45.0
)
BF16_REDUCE_OVERHEAD = Config(
    "bf16 + reduce-overhead", "bf16-mixed", {"mode": "reduce-overhead"}, cuda_only=True, warmup_extra=5, reserve_s=45
)


def trainer_precision(config: Config, device: torch.device) -> dict[str, Any]:
    """Trainer kwargs for ``config``. On CPU, ``precision="16-mixed"`` would silently run bf16 (Lightning refuses
    fp16 autocast there), so fp16 autocast on CPU goes through an explicit ``MixedPrecision`` plugin."""
    if config.precision == "16-mixed" and device.type == "cpu":
        from lightning.pytorch.plugins.precision import MixedPrecision

        return {"plugins": [MixedPrecision("16-mixed", "cpu")]}
    return {"precision": config.precision}


# ---------------------------------------------------------------------------------------------- workloads
@dataclass
class Workload:
    """A row group: ``build(compile)`` returns a fresh LightningModule, ``batch`` is one batch's shapes."""

    name: str
    build: Callable[[bool | dict[str, Any]], pl.LightningModule]
    batch: tuple[torch.Size, ...] | dict[str, torch.Size]
    cost: float = 1.0  # scales the configs' ``reserve_s``


def _as_domains(sample: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``TensorDataset`` item (a, b) as the unpaired translation batch ``{"A": a, "B": b}``."""
    return {"A": sample[0], "B": sample[1]}


def synthetic_loader(shapes: tuple | dict, device: torch.device, n_batches: int = 4) -> DataLoader:
    """``n_batches`` different random batches in [-1, 1] (a tensor tuple, or ``{"A", "B"}`` for translation),
    stored whole on ``device`` and served uncollated (``batch_size=None``)."""
    gen = torch.Generator().manual_seed(0)
    parts = [shapes["A"], shapes["B"]] if isinstance(shapes, dict) else list(shapes)
    stacks = [(torch.rand(n_batches, *shape, generator=gen) * 2 - 1).to(device) for shape in parts]
    collate = _as_domains if isinstance(shapes, dict) else None
    return DataLoader(TensorDataset(*stacks), batch_size=None, shuffle=False, collate_fn=collate)


# ---------------------------------------------------------------------------------------------- measurement
@dataclass
class Measurement:
    """One cell: ``seconds`` (median per step, or the whole pass for FID), peak MiB (None on CPU), a note."""

    seconds: float
    peak_mib: float | None = None
    note: str = ""


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


class StepTimer(pl.Callback):
    """Duration of every training batch, device-synchronised at both ends."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.durations: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        synchronize(self.device)
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        synchronize(self.device)
        self.durations.append(time.perf_counter() - self._start)


def graph_breaks() -> int:
    """torch.compile graph breaks so far in this process (0 when dynamo's counters are not where expected)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return 0
    return sum(counters["graph_break"].values())


def time_training(workload: Workload, config: Config, device: torch.device, warmup: int, steps: int) -> Measurement:
    """Median step time of ``workload`` trained by a Trainer under ``config`` (see module docstring)."""
    if config.compile:
        torch._dynamo.reset()  # fresh caches: no recompile limits carried over from earlier cells
    torch.manual_seed(0)
    model = workload.build(config.compile)
    warmup += config.warmup_extra
    timer = StepTimer(device)
    trainer = pl.Trainer(
        accelerator=device.type,
        devices=1,
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        **trainer_precision(config, device),
    )
    breaks = graph_breaks()
    reset_peak(device)
    trainer.fit(model, train_dataloaders=synthetic_loader(workload.batch, device))
    measured = timer.durations[warmup:]
    if len(measured) < steps:
        raise RuntimeError(f"only {len(timer.durations)} of {warmup + steps} steps ran")
    note = f"median of {len(measured)} steps after {warmup} warm-up"
    if config.compile:
        note += f"; graph breaks: {graph_breaks() - breaks}"
    return Measurement(statistics.median(measured), peak_mib(device), note)


# ---------------------------------------------------------------------------------------------- guarded cells
class BudgetExceeded(Exception):
    """Raised by SIGALRM inside a cell that ran past the budget (plus ``GRACE_S``)."""


class Budget:
    """Seconds left for the whole run; ``limit()`` interrupts a cell at the deadline plus grace (main thread).

    SIGALRM is handled between Python bytecodes: one long native call (a big ``eigvals``) finishes first."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    @contextmanager
    def limit(self) -> Iterator[None]:
        if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
            yield
            return

        def interrupt(signum: int, frame: Any) -> None:
            raise BudgetExceeded("stopped at the time budget")

        previous = signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, max(self.left() + GRACE_S, 0.1))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def short_error(error: BaseException) -> str:
    """``error: <Type: first line>``, at most 100 characters: the text of a failed cell."""
    lines = str(error).strip().splitlines()
    text = f"error: {type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text.replace("|", "/")[:100]


def release(device: torch.device) -> None:
    """Free what a finished cell left behind (its model, optimizer state, cached blocks)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_cell(
    label: str, work: Callable[[], Measurement], budget: Budget, reserve_s: float, device: torch.device
) -> Measurement | str:
    """``work()``'s measurement, or the text its cell shows instead: skipped/stopped (budget) or a short error."""
    if budget.left() < reserve_s:
        return "skipped (budget)"
    print(f"[timing] {label} ({budget.left():.0f} s of budget left)", file=sys.stderr, flush=True)
    try:
        with budget.limit():
            return work()
    except BudgetExceeded:
        return "stopped (budget)"
    except Exception as error:  # one broken configuration must not cost the others
        traceback.print_exc(file=sys.stderr)
        return short_error(error)
    finally:
        release(device)


@contextmanager
def quiet() -> Iterator[None]:
    """Lightning's per-Trainer info lines and known benign warnings off; errors still reach stderr."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning_gans")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"lightning\..*")
        warnings.filterwarnings("ignore", message=r".*(does not have many workers|Tensor Cores).*")
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


# ---------------------------------------------------------------------------------------------- table
@dataclass
class Row:
    """One table row: a workload × configuration cell; its ratio divides by the ``baseline`` row's time."""

    workload: str
    config: str
    result: Measurement | str | None = None  # None: not run (deselected)
    unit: str = "ms/step"  # or "s" (a whole pass)
    baseline: str = "fp32"
    tags: dict[str, Any] = field(default_factory=dict)


def _time_text(row: Row) -> str:
    m = row.result
    if not isinstance(m, Measurement):
        return m or "not run"
    return f"{m.seconds * 1e3:.2f} ms/step" if row.unit == "ms/step" else f"{m.seconds:.2f} s"


def format_table(rows: list[Row], header: list[str]) -> str:
    """The header lines and one markdown-style table: time, ratio to the workload's fp32 eager, peak MiB, note."""
    times = {(r.workload, r.config): r.result for r in rows if isinstance(r.result, Measurement)}
    lines = [*header, "", "| workload | configuration | time | ratio to fp32 | peak MiB | note |"]
    lines.append("|---|---|---|---|---|---|")
    for row in rows:
        m, base = row.result, times.get((row.workload, row.baseline))
        measured = isinstance(m, Measurement)
        ratio = f"{m.seconds / base.seconds:.2f}" if measured and base is not None else "-"
        peak = f"{m.peak_mib:.0f}" if measured and m.peak_mib is not None else "-"
        note = m.note if measured else ""
        lines.append(f"| {row.workload} | {row.config} | {_time_text(row)} | {ratio} | {peak} | {note} |")
    lines += ["", "ratio = time / the same workload's fp32 eager time (below 1.00 is faster)."]
    return "\n".join(lines) + "\n"


def header_lines(title: str, device: torch.device) -> list[str]:
    """Device name and the versions and switches that decide the numbers."""
    import torchmetrics
    import torchvision

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name = f"{props.name} ({props.total_memory / 2**30:.0f} GiB, sm_{props.major}{props.minor})"
        stack = f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        name, stack = f"CPU, {torch.get_num_threads()} threads", "no CUDA"
    cudnn = torch.backends.cudnn
    return [
        f"{title} — {name}",
        f"torch {torch.__version__}, lightning {lightning.__version__}, torchvision {torchvision.__version__}, "
        f"torchmetrics {torchmetrics.__version__}; {stack}; python {sys.version.split()[0]}",
        f"fp32 = torch defaults: float32_matmul_precision={torch.get_float32_matmul_precision()}, "
        f"cudnn.allow_tf32={cudnn.allow_tf32}, cudnn.benchmark={cudnn.benchmark}",
    ]


def write_report(text: str, out: str | None) -> None:
    """The table on stdout and, with ``--out``, the same text in that file (parent folders created)."""
    from pathlib import Path

    sys.stdout.write(text)
    sys.stdout.flush()
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
