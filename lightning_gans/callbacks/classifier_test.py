"""``ClassifierTestReport``: at the end of ``fit``, the test accuracy of a classifier-GAN's final weights and of the
checkpoint selected on the validation split — the two numbers a semi-supervised result should report.

The test images are read only here (and by ``lightning-gans test``), after training: selection (``best.ckpt`` by
``val_accuracy``) and early stopping see the validation split only (``SemiSupervisedMNISTDataModule``'s
``validation_fraction``). The selected checkpoint is the ``best_model_path`` of the first checkpoint callback
that monitors ``monitor``. Written to ``metrics.jsonl`` (``kind="test"``: ``test_accuracy/last``,
``test_accuracy/selected``, ``selected_step``) and sent to the loggers; every rank computes the same numbers on the
whole test split (no collective), rank 0 writes them.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lightning_gans.errors import ConfigError
from lightning_gans.outputs import append_metrics


@torch.no_grad()
def test_accuracy(module: pl.LightningModule, loader: torch.utils.data.DataLoader) -> float:
    """Share of ``(images, labels)`` batches of ``loader`` that ``module.classify`` labels correctly (eval mode)."""
    was_training = module.training
    module.eval()
    correct = total = 0
    for images, labels in loader:
        logits = module.classify(images.to(module.device))
        correct += int((logits.argmax(dim=1).cpu() == labels).sum())
        total += len(labels)
    module.train(was_training)
    return correct / total


class ClassifierTestReport(Callback):
    """Test accuracy of the last and of the validation-selected weights at the end of fit (module docstring)."""

    def __init__(self, monitor: str = "val_accuracy") -> None:
        self.monitor = monitor

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not callable(getattr(pl_module, "classify", None)):
            raise ConfigError(
                f"ClassifierTestReport needs a model with classify() (SGAN), got {type(pl_module).__name__}"
            )

    def selected_checkpoint(self, trainer: pl.Trainer) -> Path | None:
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.monitor == self.monitor and callback.best_model_path:
                return Path(callback.best_model_path)
        return None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        loader = trainer.datamodule.test_dataloader()
        values = {"test_accuracy/last": test_accuracy(pl_module, loader)}
        path = self.selected_checkpoint(trainer)
        if path is not None and path.is_file():
            checkpoint = torch.load(path, map_location=pl_module.device, weights_only=False)
            current = {k: v.clone() for k, v in pl_module.state_dict().items()}
            pl_module.load_state_dict(checkpoint["state_dict"])
            values["test_accuracy/selected"] = test_accuracy(pl_module, loader)
            values["selected_step"] = int(checkpoint["global_step"])
            pl_module.load_state_dict(current)
        append_metrics(trainer, values, kind="test", selected_by=self.monitor)
        for logger in trainer.loggers:
            logger.log_metrics({k: v for k, v in values.items() if k != "selected_step"}, step=trainer.global_step)
