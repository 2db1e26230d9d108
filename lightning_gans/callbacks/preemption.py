"""``Preemption``: SIGTERM and SLURM's requeue signal save a checkpoint at a GAN-step boundary, then stop (and requeue).

Lightning's own handlers do the work inside the signal handler: the SLURM one saves a checkpoint wherever the
signal lands (between the D and the G update of a batch, say) and its SIGTERM handler issues a ``broadcast``
from inside the handler, a collective that the other ranks are not waiting for. This callback replaces them for
the duration of ``fit``: the handler only records the request (``GANModule.request_stop``); the request travels
to every rank with the next gradient reduction (no collective of its own, see ``lightning_gans.strategies``) and
is acted on at the end of a batch — at once on one process, on the next logging step (every
``trainer.log_every_n_steps``) with several ranks, so every rank stops after the same GAN step:

1. save a checkpoint: under SLURM ``<run_dir>/hpc_ckpt_<n>.ckpt``, the file Lightning resumes from automatically
   when the requeued job starts in the same run directory (the CLI names SLURM run directories after the job id);
   elsewhere ``<run_dir>/checkpoints/preempted.ckpt``;
2. on the requeue signal under SLURM (``requeue="auto"``), rank 0 runs ``scontrol requeue <job id>``;
3. stop training cleanly (``trainer.should_stop``), exit status 0.

The CLI adds it to every ``fit``; ``signals`` names the signals to handle (SLURM sends ``--signal=USR1@<s>`` to
every task ``s`` seconds before the time limit; batch schedulers and Kubernetes send SIGTERM).
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lightning_gans.compat import hpc_checkpoint_path
from lightning_gans.outputs import run_dir


class Preemption(Callback):
    """Save at a GAN-step boundary and stop on ``signals`` (see module docstring)."""

    def __init__(self, signals: list[str] | None = None, requeue: Literal["auto", "never"] = "auto") -> None:
        names = ["SIGTERM", "SIGUSR1"] if signals is None else signals
        unknown = [n for n in names if not isinstance(getattr(signal, n, None), signal.Signals)]
        if unknown:
            raise ValueError(f"Preemption: unknown signal names {unknown}; use names like SIGTERM, SIGUSR1")
        if requeue not in ("auto", "never"):
            raise ValueError(f"Preemption: requeue must be 'auto' or 'never', got {requeue!r}")
        self.signals = [getattr(signal, n) for n in names]
        self.requeue = requeue
        self.received: signal.Signals | None = None
        self.saved: str | None = None
        self._previous: dict[int, Any] = {}

    # ------------------------------------------------------------------ handlers for the duration of fit
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._module = pl_module
        for sig in self.signals:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker): leave the signal alone
                rank_zero_warn(f"Preemption: cannot handle {sig.name} outside the main thread")

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum)
        request = getattr(self._module, "request_stop", None)
        if callable(request):
            request()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    # ------------------------------------------------------------------ act at a batch boundary
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.saved is not None or not self._agreed(trainer, pl_module):
            return
        slurm = SLURMEnvironment.detect()
        path = hpc_checkpoint_path(trainer) if slurm else str(run_dir(trainer) / "checkpoints" / "preempted.ckpt")
        trainer.save_checkpoint(path)
        self.saved = path
        name = self.received.name if self.received is not None else "a stop request"
        rank_zero_info(f"lightning-gans: {name} at GAN step {trainer.global_step}: saved {path}; stopping")
        if slurm and self.requeue == "auto" and self.received == signal.SIGUSR1 and trainer.is_global_zero:
            _requeue()
        elif not slurm:
            rank_zero_info(f"lightning-gans: resume with --ckpt_path {path}")
        trainer.should_stop = True

    @staticmethod
    def _agreed(trainer: pl.Trainer, pl_module: pl.LightningModule) -> bool:
        """One process: the request itself; several: the request every rank saw in the reduced control flags."""
        if trainer.world_size <= 1:
            return bool(getattr(pl_module, "_stop_requested", False))
        return bool(getattr(pl_module, "stop_agreed", False))


def slurm_job_id() -> str | None:
    """This SLURM job's id as ``scontrol`` takes it: ``<array job>_<task>`` in a job array, else ``SLURM_JOB_ID``
    (None outside SLURM). Stable across a requeue."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    return f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array else os.environ.get("SLURM_JOB_ID")


def _requeue() -> None:
    job = slurm_job_id()
    if not job:
        rank_zero_warn("Preemption: no SLURM_JOB_ID in the environment; not requeued")
        return
    try:
        code = subprocess.call(["scontrol", "requeue", job])
    except FileNotFoundError:
        code = None
    if code == 0:
        rank_zero_info(f"lightning-gans: requeued SLURM job {job}")
    else:
        rank_zero_warn(f"Preemption: `scontrol requeue {job}` failed ({code}); resubmit the job to resume")


__all__ = ["Preemption", "slurm_job_id"]
