"""``TrainingBudget``: stop training after a fixed amount of CPU time (or wall time) spent in training steps.

A budget in *CPU time of the training steps* makes recipes comparable on shared or busy machines: the process's
CPU time (``time.process_time``: user + system time of all its threads) is summed between
``on_train_batch_start`` and ``on_train_batch_end`` only, so evaluation passes, sample grids, checkpointing and
other processes competing for the cores do not eat into it. With one thread, one CPU-minute is one minute of an
otherwise idle core. ``clock: wall`` counts wall time between the same hooks instead (GPU runs, where the
CPU clock says little). Under DDP every rank measures its own time and training stops on all ranks as soon as
any rank is over budget; the ranks agree with one boolean reduction on logging steps only (every
``trainer.log_every_n_steps``), so there is no collective on the other steps and a DDP run may overshoot the
budget by up to that many steps.

    trainer:
      callbacks:
        - class_path: lightning_gans.callbacks.TrainingBudget
          init_args: {minutes: 15}

The spent time is logged as ``budget/train_<clock>_s``, saved in checkpoints (a resumed run continues the same
budget) and written to ``metrics.jsonl`` (``kind="budget"``) when training ends.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from lightning_gans.compat import is_logging_step
from lightning_gans.outputs import append_metrics

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


class TrainingBudget(Callback):
    """Stop once the training steps have used ``minutes`` of ``clock`` ("cpu" or "wall") time."""

    def __init__(self, minutes: float, clock: str = "cpu") -> None:
        super().__init__()
        if minutes <= 0:
            raise ValueError(f"TrainingBudget: minutes must be > 0, got {minutes}")
        if clock not in CLOCKS:
            raise ValueError(f"TrainingBudget: clock must be one of {sorted(CLOCKS)}, got {clock!r}")
        self.minutes, self.clock = minutes, clock
        self.spent_s = 0.0
        self.exhausted_at_step: int | None = None
        self._start: float | None = None

    @property
    def name(self) -> str:
        return f"budget/train_{self.clock}_s"

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._start = CLOCKS[self.clock]()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self._start is None:
            return
        self.spent_s += CLOCKS[self.clock]() - self._start
        self._start = None
        over = self.spent_s >= 60.0 * self.minutes
        if trainer.world_size > 1:  # ranks agree on logging steps only: no collective on the other steps
            over = is_logging_step(trainer) and trainer.strategy.reduce_boolean_decision(over, all=False)
        if over and not trainer.should_stop:
            self.exhausted_at_step = trainer.global_step
            trainer.should_stop = True
            rank_zero_info(
                f"TrainingBudget: {self.spent_s / 60:.2f} {self.clock}-minutes spent in training steps "
                f"(budget {self.minutes:g}): stopping at step {trainer.global_step}"
            )
        pl_module.log(self.name, self.spent_s, on_step=True, on_epoch=False, logger=True, sync_dist=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        append_metrics(
            trainer,
            {self.name: round(self.spent_s, 3)},
            kind="budget",
            minutes=self.minutes,
            clock=self.clock,
            exhausted=self.exhausted_at_step is not None,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"spent_s": self.spent_s}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.spent_s = float(state_dict.get("spent_s", 0.0))
