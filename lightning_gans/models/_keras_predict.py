"""Keras ``model.predict`` semantics for the *GANs in Action* ch. 7/8 ports.

The books' Keras loops make the discriminator's fakes with ``generator.predict(z)``: inference mode, so
BatchNorm normalises with its moving averages and updates nothing, while the generator's own step trains it
with batch statistics (reference: gans-in-action-ch5-9.md, bug 10). ``eval_mode(net)`` reproduces that for
the span of a discriminator step; ``enabled=False`` keeps the usual PyTorch behaviour (training-mode fakes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(net: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """``net`` in eval mode inside the block (if ``enabled``), restored to its previous mode afterwards."""
    was_training = net.training
    if enabled:
        net.eval()
    try:
        yield net
    finally:
        net.train(was_training)
