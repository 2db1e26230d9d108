"""A test-only callback that sends this process a signal after a chosen GAN step (a simulated scheduler)."""

from __future__ import annotations

import os
import signal

import lightning.pytorch as pl


class SignalAtStep(pl.Callback):
    """``os.kill(getpid(), signal)`` once, at the end of the batch after which ``global_step`` is ``steps[rank]``."""

    def __init__(self, steps: list[int], signal_name: str = "SIGUSR1") -> None:
        self.steps = steps
        self.signal = getattr(signal, signal_name)
        self.sent = False

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if not self.sent and trainer.global_step == self.steps[trainer.global_rank % len(self.steps)]:
            self.sent = True
            os.kill(os.getpid(), self.signal)
