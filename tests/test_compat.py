"""``lightning_gans.compat`` on a real Trainer: every Lightning internal the project reads is where it expects it.

When a Lightning upgrade moves one of them, a test here fails with ``LightningInternalsMoved`` naming the
attribute and the installed version, before any training run counts its steps wrong.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import lightning
import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.cli import LightningCLI
from toy_training import StepRecorder, bare_trainer, toy_loader, toy_module

from lightning_gans.compat import (
    LightningInternalsMoved,
    attached_trainer,
    built_by_cli,
    drop_hparams,
    has_batch_norm,
    logged_step,
    optimizer_step_progress,
    optimizer_steps,
    set_optimizer_steps,
    take_grad_scaler,
    update_hparams,
)


class StepProbe(pl.Callback):
    """(global_step, logged_step) after every training batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        self.seen.append((trainer.global_step, logged_step(trainer)))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A toy GAN fitted on 3 batches: one D and one G optimizer step per batch (6 optimizer steps)."""
    torch.manual_seed(0)
    module = toy_module()
    recorder, probe = StepRecorder(), StepProbe()
    trainer = bare_trainer(tmp_path_factory.mktemp("compat"), max_epochs=1, callbacks=[recorder, probe])
    trainer.fit(module, toy_loader(n_batches=3))
    return SimpleNamespace(module=module, trainer=trainer, recorder=recorder, probe=probe)


def test_optimizer_step_progress_is_global_step_and_counts_gan_steps(fitted: SimpleNamespace) -> None:
    assert fitted.recorder.order == "DGDGDG"  # 6 optimizer steps ...
    progress = optimizer_step_progress(fitted.trainer)
    assert optimizer_steps(progress) == (3, 3)  # ... counted as 3 GAN steps
    assert progress.total.ready == progress.current.ready == 3
    assert fitted.trainer.global_step == 3
    set_optimizer_steps(progress, 7, 1)  # the tracker *is* what global_step reads
    try:
        assert fitted.trainer.global_step == 7 and optimizer_steps(progress) == (7, 1)
        assert progress.total.ready == 7 and progress.current.ready == 1
    finally:
        set_optimizer_steps(progress, 3, 3)


def test_logged_step_counts_batches(fitted: SimpleNamespace) -> None:
    # Inside on_train_batch_end Lightning has not yet counted the batch for its loggers; afterwards it has.
    assert fitted.probe.seen == [(1, 0), (2, 1), (3, 2)]
    assert logged_step(fitted.trainer) == 3


def test_attached_trainer(fitted: SimpleNamespace) -> None:
    assert attached_trainer(fitted.module) is fitted.trainer
    assert attached_trainer(toy_module()) is None


class Probe(pl.LightningModule):
    """Records ``built_by_cli()`` at construction."""

    def __init__(self, width: int = 2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.seen = built_by_cli()


def test_built_by_cli_only_inside_lightning_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Probe().seen is False
    monkeypatch.setattr(sys, "argv", ["lightning-gans"])  # LightningCLI warns about pytest's own arguments
    args = ["--trainer.accelerator=cpu", "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}"]
    options = {"run": False, "save_config_callback": None, "seed_everything_default": False}
    cli = LightningCLI(Probe, args=[*args, "--model.width=3"], **options)
    assert cli.model.seen is True and cli.model.hparams.width == 3
    assert built_by_cli() is False  # the context ends with the instantiation


def test_drop_hparams_edits_hparams_and_hparams_initial() -> None:
    module = Probe(width=5)
    module.hparams_initial.pop("width")  # a copy: does not edit the stored dict
    assert module.hparams_initial["width"] == 5
    drop_hparams(module, ["width", "absent"])
    assert "width" not in module.hparams and "width" not in module.hparams_initial


def test_update_hparams_edits_hparams_and_hparams_initial() -> None:
    module = Probe(width=5)
    update_hparams(module, {"width": 6, "group": {"a": 1}})
    assert module.hparams["width"] == 6 and module.hparams_initial["group"] == {"a": 1}
    module.hparams["group"]["a"] = 2  # copies: the initial values stay what was set
    assert module.hparams_initial["group"] == {"a": 1}


def test_take_grad_scaler_leaves_the_plugin_autocast_only(tmp_path: Path) -> None:
    from lightning.pytorch.plugins.precision import MixedPrecision

    fp16 = bare_trainer(tmp_path, plugins=[MixedPrecision("16-mixed", "cpu")])
    scaler = fp16.precision_plugin.scaler
    assert isinstance(scaler, torch.amp.GradScaler)
    assert take_grad_scaler(fp16) is scaler and fp16.precision_plugin.scaler is None
    assert take_grad_scaler(fp16) is None  # idempotent
    assert fp16.precision_plugin.state_dict() == {}  # nothing of Lightning's left to save or restore
    assert take_grad_scaler(bare_trainer(tmp_path, precision="bf16-mixed")) is None
    assert take_grad_scaler(bare_trainer(tmp_path)) is None


def test_eager_calls_runs_a_compiled_module_eagerly_and_restores_it() -> None:
    from lightning_gans.compat import dynamo_graph_breaks, eager_calls

    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    net[0].compile(backend="eager")
    compiled = net[0]._compiled_call_impl
    with eager_calls(net):
        assert net[0]._compiled_call_impl is None
        x = torch.ones(1, 2, requires_grad=True)
        (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)  # a double backward needs eager
    assert net[0]._compiled_call_impl is compiled
    assert isinstance(dynamo_graph_breaks(), dict)


def test_has_batch_norm() -> None:
    assert has_batch_norm(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)))
    assert has_batch_norm(torch.nn.BatchNorm3d(1)) and has_batch_norm(torch.nn.SyncBatchNorm(1))
    assert not has_batch_norm(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2)))


@pytest.mark.parametrize(
    ("call", "attribute"),
    [
        (lambda: logged_step(SimpleNamespace(fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace()))), "_batches"),
        (lambda: optimizer_step_progress(SimpleNamespace(fit_loop=SimpleNamespace())), "optim_step_progress"),
        (lambda: drop_hparams(SimpleNamespace(), ["x"]), "_hparams_initial"),
        (lambda: update_hparams(SimpleNamespace(), {"x": 1}), "_hparams_initial"),
        (lambda: attached_trainer(SimpleNamespace()), "LightningModule._trainer"),
    ],
)
def test_a_moved_internal_fails_loudly_with_version_and_attribute(call, attribute: str) -> None:
    with pytest.raises(LightningInternalsMoved, match=attribute) as info:
        call()
    assert f"Lightning {lightning.__version__}" in str(info.value)


def test_a_moved_progress_field_fails_loudly() -> None:
    tracker = SimpleNamespace(completed=0)  # no ``ready``: set_optimizer_steps would create it silently
    progress = SimpleNamespace(total=tracker, current=tracker)
    loop = SimpleNamespace(manual_optimization=SimpleNamespace(optim_step_progress=progress))
    with pytest.raises(LightningInternalsMoved, match=r"optim_step_progress\.total\.ready"):
        optimizer_step_progress(SimpleNamespace(fit_loop=SimpleNamespace(epoch_loop=loop)))
