"""Learning-rate schedules usable from an experiment YAML (``lr_scheduler_g`` / ``lr_scheduler_d``)::

lr_scheduler_g:
  class_path: lightning_gans.schedules.LinearDecayLR
  init_args: {constant_epochs: 100, decay_epochs: 100}
"""

from __future__ import annotations

from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def linear_decay_factor(epoch: int, constant_epochs: int, decay_epochs: int) -> float:
    """1 for the first ``constant_epochs`` epochs (0-based ``epoch``), then 1 − (epoch − constant)/decay: the
    last of the ``decay_epochs`` epochs trains at 1/decay and the rate reaches 0 when training ends.

    CycleGAN (Zhu et al. 2017, §4): 100 epochs at 2e-4, then linear decay to 0 over 100 more. The DiscoGAN
    chapter's ``lr·(epoch_total − epoch)/(epoch_total − epoch_step)`` for epoch ≥ ``epoch_step`` is the same rule
    with constant_epochs = epoch_step = 10 and decay_epochs = 200 − 10 = 190.
    """
    if epoch < constant_epochs:
        return 1.0
    return max(0.0, 1.0 - (epoch - constant_epochs) / decay_epochs)


class LinearDecayLR(LambdaLR):
    """Constant for ``constant_epochs``, then linear decay to 0 over ``decay_epochs`` (step it once per epoch)."""

    def __init__(self, optimizer: Optimizer, constant_epochs: int = 100, decay_epochs: int = 100, last_epoch: int = -1):
        if constant_epochs < 0 or decay_epochs < 1:
            raise ValueError(f"need constant_epochs >= 0 and decay_epochs >= 1, got {constant_epochs}, {decay_epochs}")
        self.constant_epochs, self.decay_epochs = constant_epochs, decay_epochs
        rule = partial(linear_decay_factor, constant_epochs=constant_epochs, decay_epochs=decay_epochs)
        super().__init__(optimizer, rule, last_epoch=last_epoch)
