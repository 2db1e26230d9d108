"""``FitSummary``: a short report printed when ``fit`` ends — the run's final metrics, where its samples, plots
and checkpoint are, and the commands that sample, evaluate or resume it.

Final metrics are the last value of every number in ``<run>/metrics.jsonl`` (what the quality callbacks and
``MetricsJsonl`` wrote), each with the GAN step it was measured at; quality metrics (namespaced ``fid/…``,
``toy/…``) come before the training losses. Printed on global rank 0 only, also after a budget or SIGTERM
stop (the checkpoint shown is then the newest in ``checkpoints/``); nothing is printed after an exception.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from lightning_gans.capabilities import is_sampler, is_translator

META_KEYS = {"epoch", "step", "kind", "protocol", "gan_step"}
MAX_METRICS = 10


def final_metrics(path: Path) -> dict[str, tuple[float, int | None]]:
    """``{name: (last value, step it was logged at)}`` over the numeric fields of a ``metrics.jsonl``."""
    last: dict[str, tuple[float, int | None]] = {}
    if not path.is_file():
        return last
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if not isinstance(row, dict):
            continue
        step = row.get("step") if isinstance(row.get("step"), int) else None
        for key, value in row.items():
            if key in META_KEYS or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                last[key] = (float(value), step)
    return last


def _ordered(metrics: dict[str, tuple[float, int | None]]) -> list[str]:
    """Quality metrics (``ns/name``) first, then the rest, each group in first-logged order; at most ``MAX_METRICS``."""
    quality = [k for k in metrics if "/" in k and not k.startswith("train/")]
    return (quality + [k for k in metrics if k not in quality])[:MAX_METRICS]


def next_commands(module: pl.LightningModule, datamodule: Any, ckpt: str, run: Path) -> list[str]:
    """The project commands that apply to this model's checkpoint (see ``lightning-gans --help``)."""
    commands = []
    if callable(getattr(module, "upscale", None)):
        commands.append(f"lightning-gans upscale --ckpt {ckpt} --input <image or folder> --out {run / 'upscaled'}")
    elif is_translator(module):
        commands.append(
            f"lightning-gans translate --ckpt {ckpt} --input <folder of A images> --direction AtoB "
            f"--out {run / 'translated'}"
        )
    elif is_sampler(module):
        commands.append(f"lightning-gans sample --ckpt {ckpt} --n 64 --out {run / 'final_samples'}")
        if callable(getattr(datamodule, "real_images", None)):  # image data: FID / IS / KID apply
            commands.append(f"lightning-gans eval --ckpt {ckpt} --metrics fid,kid")
        if getattr(module, "encoder", None) is not None and getattr(module, "conditional", False):
            commands.append(f"lightning-gans age --ckpt {ckpt} --input <face image> --out {run / 'ages.png'}")
    config = run / "config.yaml"
    if config.is_file():
        commands.append(f"lightning-gans fit --config {config} --ckpt_path {ckpt}   (resume / train on)")
    return commands


def _newest(folder: Path, pattern: str) -> Path | None:
    files = [p for p in folder.glob(pattern) if p.is_file()] if folder.is_dir() else []
    return max(files, key=lambda p: p.stat().st_mtime) if files else None


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


class FitSummary(Callback):
    """Print the end-of-fit report (module docstring) to stdout on global rank 0."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.failed = False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started, self.failed = time.monotonic(), False

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.failed = True

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Printed at teardown, after the progress bar is closed (its own teardown, idempotent, runs first), so the
        report is the last thing on the terminal."""
        if stage != "fit" or self.failed or not trainer.is_global_zero or trainer.fast_dev_run:
            return
        if trainer.progress_bar_callback is not None:
            trainer.progress_bar_callback.teardown(trainer, pl_module, stage)
        print(self.report(trainer, pl_module), file=sys.stdout, flush=True)

    def report(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str:
        run = Path(trainer.default_root_dir)
        step = getattr(pl_module, "gan_step", trainer.global_step)
        lines = [
            f"lightning-gans: fit finished at GAN step {step} ({trainer.current_epoch} epochs) after "
            f"{_elapsed(time.monotonic() - self.started)}; run directory {run}"
        ]
        metrics = final_metrics(run / "metrics.jsonl")
        by_step: dict[int | None, list[str]] = {}
        for key in _ordered(metrics):
            value, at = metrics[key]
            by_step.setdefault(at, []).append(f"{key} {value:.4g}")
        for at, shown in by_step.items():
            lines.append(f"  final metrics{f' (step {at})' if at is not None else ''}: " + ", ".join(shown))
        samples = _newest(run / "samples", "*.png")
        if samples is not None:
            lines.append(f"  samples/plots: {run / 'samples'} (newest: {samples.name})")
        ckpt = _newest(run / "checkpoints", "*.ckpt")
        lines.append(f"  checkpoint:    {ckpt}" if ckpt else "  checkpoint:    none written")
        lines.append(f"  metrics:       {run / 'metrics.jsonl'} (W&B / CSV logs under {run})")
        if ckpt is not None:
            commands = next_commands(pl_module, trainer.datamodule, str(ckpt), run)
            lines += ["  next:", *(f"    {c}" for c in commands)]
        return "\n".join(lines)
