"""When an every-N-epochs callback should fire."""

from __future__ import annotations

import lightning.pytorch as pl


def is_last_epoch(trainer: pl.Trainer) -> bool:
    """True in the epoch that ends training (max_epochs, max_steps reached, or a requested stop)."""
    max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
    return bool(
        trainer.should_stop
        or (max_epochs is not None and max_epochs >= 0 and trainer.current_epoch + 1 >= max_epochs)
        or (max_steps is not None and max_steps >= 0 and trainer.global_step >= max_steps)
    )


def epoch_due(trainer: pl.Trainer, every_n_epochs: int) -> bool:
    """Every ``every_n_epochs`` epochs (counted from 1), and always in the last one."""
    return (trainer.current_epoch + 1) % every_n_epochs == 0 or is_last_epoch(trainer)
