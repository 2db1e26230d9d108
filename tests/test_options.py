"""``GANModule``'s option groups (``lightning_gans.models.options``): nested in the CLI, stored as dicts, and the
flat option names of checkpoints written before the grouping still load (``LEGACY_OPTIONS``)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import pytest
import torch
from toy_training import bare_trainer, toy_loader, toy_module

from lightning_gans.cli import main
from lightning_gans.models import GAN, CycleGAN
from lightning_gans.models.options import EMA, GROUPS, LEGACY_OPTIONS, Regularisers, Schedule, Tricks
from lightning_gans.workflows.sampling import load_module

REPO = Path(__file__).resolve().parents[1]
CPU = ["--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.enable_progress_bar=false"]


def _flatten(hparams: dict) -> dict:
    """A checkpoint's grouped hyperparameters in the flat form of the checkpoints written before the grouping."""
    flat = {k: v for k, v in hparams.items() if k not in GROUPS}
    for old, (group, field) in LEGACY_OPTIONS.items():
        if group in hparams:
            flat[old] = hparams[group][field]
    return flat


def _rewrite_flat(ckpt: Path) -> dict:
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"] = _flatten(checkpoint["hyper_parameters"])
    torch.save(checkpoint, ckpt)
    return checkpoint


def test_legacy_map_covers_every_group_field_once() -> None:
    mapped = sorted(LEGACY_OPTIONS.values())
    fields = sorted((name, f.name) for name, kind in GROUPS.items() for f in dataclasses.fields(kind))
    assert mapped == fields
    assert LEGACY_OPTIONS["ema_decay"] == ("ema", "decay") and LEGACY_OPTIONS["n_critic"] == ("schedule", "n_critic")


def test_groups_are_stored_as_dicts_and_read_as_groups() -> None:
    module = toy_module(schedule=Schedule(n_critic=5), ema=EMA(decay=0.9), tricks={"pack": 1})
    assert module.schedule == Schedule(n_critic=5) and module.ema.decay == 0.9 and module.tricks == Tricks()
    assert module.hparams["schedule"] == dataclasses.asdict(Schedule(n_critic=5))
    assert module.hparams_initial["regularisers"] == dataclasses.asdict(Regularisers())


def test_flat_names_are_regrouped_and_unknown_names_refused() -> None:
    module = toy_module(n_critic=3, gradient_penalty=10.0, loss="wasserstein", ema_decay=0.5, ema_warmup=True)
    assert module.schedule.n_critic == 3 and module.regularisers.gradient_penalty == 10.0
    assert module.ema == EMA(decay=0.5, warmup=True)
    assert not set(LEGACY_OPTIONS) & set(module.hparams)  # saved grouped, never flat
    assert module.hparams["schedule"]["n_critic"] == 3
    with pytest.raises(TypeError, match=r"GAN.__init__\(\) got an unexpected keyword argument 'n_critics'"):
        toy_module(n_critics=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_critic'"):
        CycleGAN(image_size=64, n_critic=2)  # not an option of a translation model


def test_checkpoint_with_flat_hyperparameters_loads(tmp_path: Path) -> None:
    """A checkpoint of a module built in Python, its hyperparameters rewritten to the old flat form."""
    module = toy_module(schedule=Schedule(n_critic=2, d_steps="real_then_fake"), ema=EMA(decay=0.9))
    trainer = bare_trainer(tmp_path, max_epochs=1)
    trainer.fit(module, toy_loader(4))
    ckpt = tmp_path / "old.ckpt"
    trainer.save_checkpoint(ckpt)
    flat = _rewrite_flat(ckpt)["hyper_parameters"]
    assert flat["n_critic"] == 2 and flat["ema_decay"] == 0.9 and "schedule" not in flat
    nets = {"generator": module.generator, "discriminator": module.discriminator}
    loaded = GAN.load_from_checkpoint(ckpt, weights_only=False, **nets)
    assert loaded.schedule == module.schedule and loaded.ema == module.ema and loaded.tricks == module.tricks
    assert loaded.hparams["schedule"] == module.hparams["schedule"]
    for key, value in module.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_cli_checkpoint_with_flat_hyperparameters_loads(runs: Path) -> None:
    """A ``lightning-gans fit`` checkpoint (class and networks in its hparams), rewritten flat: ``load_module``."""
    config = REPO / "experiments" / "toy_grid.yaml"
    extra = ["--trainer.max_steps=2", "--data.num_samples=512", "--model.schedule.n_critic=2"]
    main(["fit", "--config", str(config), *CPU, *extra, "--model.ema.decay=0.9"])
    (ckpt,) = runs.glob("toy_grid/*/checkpoints/last.ckpt")
    grouped = load_module(ckpt)
    flat = _rewrite_flat(ckpt)["hyper_parameters"]
    assert flat["n_critic"] == 2 and "schedule" not in flat
    loaded = load_module(ckpt)
    assert type(loaded) is type(grouped)
    assert (loaded.schedule, loaded.regularisers, loaded.tricks) == (
        grouped.schedule,
        grouped.regularisers,
        grouped.tricks,
    )
    assert loaded.ema == EMA(decay=0.9) and loaded.generator_ema is not None
    torch.testing.assert_close(loaded.sample_fixed(), grouped.sample_fixed())


def _cli_output(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(list(args))
    return out.getvalue()


def test_help_and_print_config_show_the_groups_not_the_flat_names(runs: Path) -> None:
    config = str(REPO / "experiments" / "wgan_gp_mnist.yaml")
    printed = _cli_output("fit", "--config", config, "--model.schedule.n_critic=3", "--print_config")
    assert "    schedule:\n      update: alternating\n      d_steps: joint\n      n_critic: 3\n" in printed
    assert "    regularisers:\n      gradient_penalty: 10.0\n" in printed
    assert "\n    n_critic:" not in printed and "legacy" not in printed
    helped = _cli_output("fit", "--config", config, "--model.help", "lightning_gans.models.DCGAN")
    for option in ("schedule.n_critic", "schedule.update {alternating,simultaneous}", "ema.decay", "tricks.pack"):
        assert f"--model.{option}" in helped, option
    assert "--model.n_critic" not in helped and "--model.ema_decay" not in helped and "legacy" not in helped
    assert "D updates per G update" in helped  # the field's docstring
