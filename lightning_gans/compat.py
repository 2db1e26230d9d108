"""Every access to a Lightning (or torch) internal the project relies on, in one place.

Manual GAN optimisation needs a few things Lightning keeps private: the manual-optimisation step tracker
behind ``global_step`` (to count one GAN step per batch), the logger's step counter, whether LightningCLI is
instantiating a module, the kwargs a ``DDPStrategy`` passes to ``DistributedDataParallel``, and the saved
hyperparameters. Each accessor below reads exactly one of them and, when a Lightning upgrade has moved it, raises
``LightningInternalsMoved`` naming the attribute and the installed version, never falling back silently (a
fallback would change the step counts or checkpoints). ``tests/test_compat.py`` exercises every accessor on a real
``Trainer``, so an upgrade that moves one fails there first.

Written against Lightning 2.6 (``TESTED_WITH``). Bottom layer: imports only Lightning, torch and the stdlib.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import lightning
import lightning.pytorch as pl
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn

TESTED_WITH = "2.6"
__all__ = [
    "TESTED_WITH",
    "LightningInternalsMoved",
    "attached_trainer",
    "defer_sigterm",
    "dynamo_graph_breaks",
    "eager_calls",
    "retainable_compiled_graphs",
    "hpc_checkpoint_path",
    "is_logging_step",
    "built_by_cli",
    "drop_hparams",
    "has_batch_norm",
    "logged_step",
    "optimizer_step_progress",
    "optimizer_steps",
    "set_optimizer_steps",
    "take_grad_scaler",
    "update_hparams",
    "wandb_init_kwargs",
]


class LightningInternalsMoved(RuntimeError):
    """A Lightning internal that ``lightning_gans.compat`` reads is not where Lightning 2.6 kept it."""


def _moved(attribute: str, error: Exception) -> LightningInternalsMoved:
    return LightningInternalsMoved(
        f"lightning-gans reads the Lightning internal `{attribute}` (as of Lightning {TESTED_WITH}), but the "
        f"installed Lightning {lightning.__version__} does not have it ({type(error).__name__}: {error}). "
        "Pin lightning to the version in pyproject.toml, or update lightning_gans/compat.py for the new location."
    )


def attached_trainer(module: pl.LightningModule) -> pl.Trainer | None:
    """The trainer ``module`` is attached to, or None (``module.trainer`` raises instead of returning None)."""
    try:
        return module._trainer
    except AttributeError as error:
        raise _moved("LightningModule._trainer", error) from error


def optimizer_step_progress(trainer: pl.Trainer) -> Any:
    """The manual-optimisation step tracker whose ``total.completed`` *is* ``trainer.global_step``.

    Every ``optimizer.step()`` advances it; ``LoopMechanics`` resets it to one step per batch.
    """
    where = "trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress"
    try:
        progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        trackers = {"total": progress.total, "current": progress.current}
    except AttributeError as error:
        raise _moved(where, error) from error
    for name, tracker in trackers.items():  # set_optimizer_steps writes these: a missing one would be created silently
        for field in ("ready", "completed"):
            if not hasattr(tracker, field):
                raise _moved(f"{where}.{name}.{field}", AttributeError(f"{type(tracker).__name__} has no {field!r}"))
    return progress


def optimizer_steps(progress: Any) -> tuple[int, int]:
    """(total, current-epoch) completed optimizer steps of an ``optimizer_step_progress`` tracker."""
    return progress.total.completed, progress.current.completed


def set_optimizer_steps(progress: Any, total: int, current: int) -> None:
    """Set the tracker (hence ``global_step``) to ``total`` steps, ``current`` of them in this epoch."""
    progress.total.ready = progress.total.completed = total
    progress.current.ready = progress.current.completed = current


def logged_step(trainer: pl.Trainer) -> int:
    """The step Lightning's own ``log`` calls send to the loggers (batches that stepped, including resumed ones).

    Callbacks that call ``logger.log_metrics`` / ``log_image`` directly use it, so their points share the
    x-axis of the training losses.
    """
    try:
        return trainer.fit_loop.epoch_loop._batches_that_stepped
    except AttributeError as error:
        raise _moved("trainer.fit_loop.epoch_loop._batches_that_stepped", error) from error


def hpc_checkpoint_path(trainer: pl.Trainer) -> str:
    """The next ``<default_root_dir>/hpc_ckpt_<n>.ckpt``: the file Lightning resumes from when a SLURM job starts
    again in the same directory (``ckpt_path=None`` under SLURM)."""
    try:
        connector = trainer._checkpoint_connector
        return connector.hpc_save_path(trainer.default_root_dir)
    except AttributeError as error:
        raise _moved("trainer._checkpoint_connector.hpc_save_path", error) from error


def defer_sigterm(trainer: pl.Trainer, replacement: Callable[[], None]) -> None:
    """Take SIGTERM out of Lightning 2.6's collectives under DDP: its epoch loop broadcasts rank 0's SIGTERM flag
    before every batch (a collective and a ``.item()`` host sync per step) and its SIGTERM handler broadcasts from
    inside the handler. Here the loop calls ``replacement`` instead, and SIGTERM only sets the trainer's
    ``received_sigterm`` flag (``replacement`` decides what to do with it). Call after Lightning registered its
    handlers (``Strategy.setup``); Lightning restores the original handlers at teardown."""
    loop = trainer.fit_loop.epoch_loop
    connector = getattr(trainer, "_signal_connector", None)
    if not callable(getattr(loop, "_broadcast_sigterm_tensor", None)) or connector is None:
        raise _moved("epoch_loop._broadcast_sigterm_tensor / trainer._signal_connector", AttributeError("not found"))
    loop._broadcast_sigterm_tensor = replacement
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: setattr(connector, "received_sigterm", True))


def take_grad_scaler(trainer: pl.Trainer) -> Any | None:
    """Take the ``GradScaler`` of the trainer's mixed-precision plugin (16-mixed), leaving the plugin autocast only;
    return it (None when the plugin has none: 32/64/bf16). The module then scales per optimizer
    (``models.precision``). Idempotent: a second call finds the plugin without a scaler and returns None."""
    plugin = trainer.precision_plugin
    if not isinstance(plugin, MixedPrecision):
        return None
    if not hasattr(plugin, "scaler"):
        raise _moved("MixedPrecision.scaler", AttributeError("scaler"))
    scaler, plugin.scaler = plugin.scaler, None
    return scaler


def dynamo_graph_breaks() -> dict[str, int]:
    """torch.compile's graph breaks so far in this process (reason → count; ``torch._dynamo.utils.counters``)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError as error:
        raise _moved("torch._dynamo.utils.counters", error) from error
    return dict(counters["graph_break"])


def retainable_compiled_graphs() -> None:
    """Let compiled backward graphs run with ``retain_graph=True`` (the simultaneous update differentiates one
    forward pass twice): turn off AOTAutograd's donated buffers, a memory saving that forbids it. Process-wide."""
    try:
        import torch._functorch.config as functorch_config
    except ImportError as error:
        raise _moved("torch._functorch.config.donated_buffer", error) from error
    if not hasattr(functorch_config, "donated_buffer"):
        raise _moved("torch._functorch.config.donated_buffer", AttributeError("donated_buffer"))
    functorch_config.donated_buffer = False


@contextlib.contextmanager
def eager_calls(module: nn.Module) -> Iterator[None]:
    """Within the block, the parts of ``module`` compiled in place (``nn.Module.compile``) run eagerly: compiled
    graphs do not support a double backward (a gradient penalty's ``create_graph=True``). Their compiled
    callables are kept and restored after the block, so nothing is recompiled."""
    parts = [(m, m._compiled_call_impl) for m in module.modules() if getattr(m, "_compiled_call_impl", None)]
    for part, _ in parts:
        part._compiled_call_impl = None
    try:
        yield
    finally:
        for part, compiled in parts:
            part._compiled_call_impl = compiled


def is_logging_step(trainer: pl.Trainer) -> bool:
    """True during a training batch whose step-level metrics Lightning sends to the loggers (every
    ``log_every_n_steps``-th batch that steps, and the last one when the trainer stops): the same rule as
    Lightning's logger connector, read from the same counter."""
    return (logged_step(trainer) + 1) % max(1, trainer.log_every_n_steps) == 0 or trainer.should_stop


try:
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
except ImportError as _import_error:  # raised where it is used, with the version in the message
    _given_hyperparameters, _GIVEN_HPARAMS_ERROR = None, _import_error
else:
    _GIVEN_HPARAMS_ERROR = None


def built_by_cli() -> bool:
    """True while LightningCLI instantiates a module (it hands the config to ``save_hyperparameters``)."""
    if _given_hyperparameters is None:
        raise _moved("lightning.pytorch.core.mixins.hparams_mixin._given_hyperparameters", _GIVEN_HPARAMS_ERROR)
    return _given_hyperparameters.get() is not None


def drop_hparams(module: pl.LightningModule, names: Iterable[str]) -> None:
    """Remove ``names`` from ``module.hparams`` and ``module.hparams_initial`` after ``save_hyperparameters``
    (``hparams_initial`` returns a copy, so the stored dicts are edited): what ``load_from_checkpoint`` passes
    back to ``__init__``."""
    try:
        stored = (module._hparams, module._hparams_initial)
    except AttributeError as error:
        raise _moved("HyperparametersMixin._hparams / _hparams_initial", error) from error
    for name in names:
        for hparams in stored:
            hparams.pop(name, None)


def update_hparams(module: pl.LightningModule, values: dict[str, Any]) -> None:
    """Set ``values`` in ``module.hparams`` and ``module.hparams_initial`` after ``save_hyperparameters`` (the
    stored dicts, as ``drop_hparams`` edits them)."""
    try:
        stored = (module._hparams, module._hparams_initial)
    except AttributeError as error:
        raise _moved("HyperparametersMixin._hparams / _hparams_initial", error) from error
    for hparams in stored:
        hparams.update(copy.deepcopy(values))


def has_batch_norm(module: nn.Module) -> bool:
    """True when ``module`` contains a BatchNorm layer of any dimension (torch's private ``_BatchNorm`` base)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def wandb_init_kwargs(logger: Any) -> dict[str, Any]:
    """The keyword arguments a ``WandbLogger`` will pass to ``wandb.init`` (``WandbLogger._wandb_init``)."""
    try:
        return logger._wandb_init
    except AttributeError as error:
        raise _moved("WandbLogger._wandb_init", error) from error
