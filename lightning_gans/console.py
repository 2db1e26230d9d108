"""The one place that silences third-party console noise the user cannot act on (called by the CLI at start).

Each filter names the message and why it is dropped; anything not listed here still reaches the console.
What remains for a ``fit``: the run directory, the device lines, the model summary, the progress bar, W&B's
offline-run path and the project's own messages.
"""

from __future__ import annotations

import logging
import warnings

# (message regex, category, why it is dropped)
WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    (
        "LightningCLI's args parameter is intended",
        UserWarning,
        "the CLI passes the argv it expanded (experiment defaults) on purpose; Lightning assumes a mistake",
    ),
    (
        "You passed in a `val_dataloader` but have no `validation_step`",
        UserWarning,
        "datamodules offer a validation split for evaluation callbacks; GAN modules have no validation loop",
    ),
    (
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        Warning,
        "raised inside Lightning's own _pytree helper under torch >= 2.9; nothing to change on our side",
    ),
    (
        r"It is recommended to use `self.log\('[^']+/[^']+', \.\.\., sync_dist=True\)`",
        Warning,
        "namespaced metrics (fid/…, is/…, toy/…) come from evaluation callbacks that reduce them exactly across "
        "ranks themselves and log the global value with sync_dist=False; Lightning cannot know",
    ),
    (
        "The anonymous setting has no effect",
        Warning,
        "Lightning's WandbLogger always passes anonymous=None to wandb.init (wandb >= 0.2x deprecates it)",
    ),
)
# Lightning info lines that advertise rather than inform.
LOG_PREFIXES = ("💡 Tip:",)


class _DropPrefixes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(LOG_PREFIXES)


def quiet_console() -> None:
    """Install the warning filters and the Lightning log filter above (idempotent)."""
    for message, category, _why in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning"):
        logger = logging.getLogger(name)
        targets = [logger, *logger.handlers]
        for target in targets:
            if not any(isinstance(f, _DropPrefixes) for f in target.filters):
                target.addFilter(_DropPrefixes())
