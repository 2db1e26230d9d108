"""The ``lightning-gans`` command line, run in-process through ``lightning_gans.cli.main``.

Every fit here is tiny (a few batches of the 256-image IDX factory or a few hundred toy points) and writes
into a per-test temporary ``LIGHTNING_GANS_RUNS``; W&B is disabled except in the offline-mode test.
"""

from __future__ import annotations

import faulthandler
import json
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.strategies import SingleDeviceStrategy
from PIL import Image

from lightning_gans import cli
from lightning_gans.cli import ConfigError, GANLightningCLI, _many, main
from lightning_gans.strategies import GANDDPStrategy

REPO = Path(__file__).resolve().parents[1]
# Globbed at collection time: a new experiment YAML is smoke-tested without touching this file.
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
CPU = ["--trainer.accelerator=cpu", "--trainer.devices=1"]


@pytest.fixture()
def trainers(monkeypatch: pytest.MonkeyPatch) -> list[pl.Trainer]:
    """Trainers built by ``main()`` (which returns nothing), in creation order."""
    seen: list[pl.Trainer] = []

    class RecordingCLI(GANLightningCLI):
        def instantiate_trainer(self, **kwargs):
            trainer = super().instantiate_trainer(**kwargs)
            seen.append(trainer)
            return trainer

    monkeypatch.setattr(cli, "GANLightningCLI", RecordingCLI)
    return seen


def _run_dir(runs: Path, experiment: str) -> Path:
    dirs = sorted(p for p in (runs / experiment).iterdir() if p.is_dir())
    assert len(dirs) == 1, dirs
    return dirs[0]


# The MNIST experiments evaluate FID on 10k real test images with lenet-mnist; the factory MNIST has 64, so
# short fits here keep only the sample grid (the quality callback has its own tests in test_image_quality.py).
GRID_ONLY = ["--trainer.callbacks=[]", "--trainer.callbacks+=lightning_gans.callbacks.SampleGridCallback"]


def _fit(runs: Path, experiment: str, *extra: str) -> Path:
    callbacks = GRID_ONLY if experiment.endswith("_mnist") else []
    main(["fit", "--config", str(REPO / "experiments" / f"{experiment}.yaml"), *CPU, *QUIET, *callbacks, *extra])
    return _run_dir(runs, experiment)


# ------------------------------------------------------------------------------------ every experiment
# Batch of the one-batch run: 16 (enough for minibatch-stddev groups and BatchNorm), smaller for the 256² GPU
# experiments whose networks make a 16-image CPU step cost minutes (the wiring is what is tested here).
FAST_DEV_BATCH = {"srgan_celeba": 2, "srresnet_celeba": 2}


@pytest.mark.parametrize("config", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_experiment_fast_dev_run(config: Path, runs: Path, trainers: list[pl.Trainer]) -> None:
    batch = f"--data.batch_size={FAST_DEV_BATCH.get(config.stem, 16)}"
    main(["fit", "--config", str(config), "--trainer.fast_dev_run=true", *CPU, *QUIET, batch])
    (trainer,) = trainers
    assert trainer.state.finished
    assert trainer.fit_loop.epoch_loop.batch_progress.total.completed == 1  # fast_dev_run: one batch
    # One GAN step per batch, however many optimizer steps the schedule took.
    assert trainer.global_step == 1
    assert Path(trainer.default_root_dir).parent == runs / config.stem
    assert not list(runs.rglob("*.ckpt"))  # fast_dev_run checkpoints nothing


# ---------------------------------------------------------------------------------------------- sample
def test_sample_dcgan(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _fit(runs, "dcgan_mnist", "--trainer.max_steps=2", "--data.batch_size=4")
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    out = tmp_path / "s"
    main(["sample", "--ckpt", str(ckpt), "--n", "10", "--out", str(out)])
    assert "wrote" in capsys.readouterr().out
    images = np.load(out.with_suffix(".npz"))["images"]
    assert images.dtype == np.uint8 and images.shape == (10, 1, 28, 28)
    with Image.open(out.with_suffix(".png")) as png:
        png.load()
        # 10 images → ceil(sqrt(10)) = 4 columns, 3 rows of 28 px with 2 px padding: 4·30+2 × 3·30+2.
        assert png.size == (122, 92) and png.mode == "RGB"
    # Same seed, same samples.
    main(["sample", "--ckpt", str(ckpt), "--n", "10", "--out", str(tmp_path / "again")])
    np.testing.assert_array_equal(np.load(tmp_path / "again.npz")["images"], images)


def test_sample_toy(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ring8 (not the grid default): the scatter plot must use the mixture the checkpoint was trained on."""
    import datamodules.toy

    run = _fit(runs, "toy_grid", "--trainer.max_steps=2", "--data.num_samples=512", "--data.dataset=ring8")
    plotted: list[str] = []
    real_scatter = datamodules.toy.scatter_plot

    def recording_scatter(samples, name, *args, **kwargs):
        plotted.append(name)
        return real_scatter(samples, name, *args, **kwargs)

    monkeypatch.setattr(datamodules.toy, "scatter_plot", recording_scatter)
    out = tmp_path / "toy"
    main(["sample", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--n", "10", "--out", str(out)])
    arrays = np.load(out.with_suffix(".npz"))
    assert list(arrays) == ["samples"]
    assert arrays["samples"].dtype == np.float32 and arrays["samples"].shape == (10, 2)
    assert np.isfinite(arrays["samples"]).all()
    with Image.open(out.with_suffix(".png")) as png:
        png.load()
        assert png.mode == "RGB" and png.size == (400, 400)  # 4×4 in at 100 dpi scatter plot
    assert plotted == ["ring8"]


def test_sample_missing_checkpoint(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nowhere" / "last.ckpt"
    with pytest.raises(SystemExit) as info:
        main(["sample", "--ckpt", str(missing), "--n", "10", "--out", str(tmp_path / "s")])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err
    assert not (tmp_path / "s.npz").exists()


def test_sample_rejects_non_positive_n(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sample", "--ckpt", str(tmp_path / "x.ckpt"), "--n", "0", "--out", str(tmp_path / "s")])
    assert info.value.code == 2
    assert "--n must be >= 1" in capsys.readouterr().err


# ------------------------------------------------------------------------------ rejected configurations
@pytest.mark.parametrize(
    ("option", "advice"),
    [
        ("--trainer.gradient_clip_val=1.0", "--model.regularisers.gradient_clip_d"),
        ("--trainer.accumulate_grad_batches=2", "--data.batch_size"),
    ],
    ids=["gradient_clip_val", "accumulate_grad_batches"],
)
def test_rejected_trainer_options(
    option: str, advice: str, runs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def no_fit(*args, **kwargs):
        raise AssertionError("Trainer.fit must not run with a rejected option")

    monkeypatch.setattr(pl.Trainer, "fit", no_fit)
    with pytest.raises(SystemExit) as info:
        _fit(runs, "gan_mnist", option, "--data.batch_size=16")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert option.split("=")[0] in err and advice in err and "manual optimisation" in err
    assert "Traceback" not in err
    assert not runs.exists()  # refused before the run directory (and any checkpoint) was made


def test_rejection_allows_defaults() -> None:
    check = GANLightningCLI._reject_manual_optimisation_conflicts
    check({})
    check({"gradient_clip_val": None, "accumulate_grad_batches": 1})
    with pytest.raises(ConfigError, match="gradient_clip_g"):
        check({"gradient_clip_val": 0.5})
    with pytest.raises(ConfigError, match="accumulate_grad_batches=4"):
        check({"accumulate_grad_batches": 4})


def test_bad_wandb_mode(runs: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        _fit(runs, "toy_grid", "--wandb.mode=sometimes")
    assert info.value.code == 2
    assert "--wandb.mode must be offline, online or disabled" in capsys.readouterr().err


def test_wandb_mode_dryrun_is_offline(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """wandb writes WANDB_MODE=dryrun (its old name for offline) during an offline run; a later fit in the same
    process (the benchmarks' stages) must read it as offline, not stop at the mode check."""
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    run = _fit(runs, "toy_grid", "--trainer.max_steps=1")
    assert list((run / "wandb").glob("offline-run-*"))


def test_missing_mnist(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    empty = tmp_path / "empty_data"
    empty.mkdir()
    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(empty))
    with pytest.raises(SystemExit) as info:
        _fit(runs, "gan_mnist", "--data.download=false")
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "MNIST/raw" in err and "train-images-idx3-ubyte" in err and "download=False" in err
    assert str(empty.resolve()) in err
    assert "Traceback" not in err
    assert not list(runs.rglob("*.ckpt"))


# --------------------------------------------------------------------------------------- DDP strategy
@pytest.mark.parametrize(
    ("devices", "many"),
    [("2", True), (2, True), ([0, 1], True), ("0,1", True), ("auto", False), (1, False), ("1", False), ([0], False)]
    + [(-1, True), ("-1", True), (None, False)],
)
def test_many_devices(devices, many: bool) -> None:
    assert _many(devices) is many


@pytest.mark.parametrize(
    ("extra", "start_method"),
    [
        (["--trainer.strategy=ddp", "--trainer.devices=2"], "popen"),
        (["--trainer.devices=2"], "popen"),  # strategy auto + several devices → gan_ddp
        (["--trainer.strategy=ddp_spawn", "--trainer.devices=2"], "spawn"),
        (["--trainer.strategy=ddp_find_unused_parameters_true", "--trainer.devices=2"], "popen"),
        (["--trainer.strategy=gan_ddp_spawn", "--trainer.devices=2"], "spawn"),
        (["--trainer.devices=1"], None),
    ],
    ids=["ddp", "auto-2-devices", "ddp_spawn", "ddp-find-unused", "gan_ddp_spawn", "one-device"],
)
def test_ddp_names_map_to_gan_ddp(extra: list[str], start_method: str | None, runs: Path) -> None:
    """The trainer is only built (run=False): no process is launched before ``fit``."""
    config = str(REPO / "experiments" / "toy_grid.yaml")
    trainer = GANLightningCLI(args=["--config", config, "--trainer.accelerator=cpu", *QUIET, *extra], run=False).trainer
    if start_method is None:
        assert isinstance(trainer.strategy, SingleDeviceStrategy)
        return
    assert type(trainer.strategy) is GANDDPStrategy
    assert trainer.strategy._ddp_kwargs == {}  # nothing for a DDP wrapper: there is none
    assert trainer.strategy._start_method == start_method
    assert trainer.num_devices == 2


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_other_parallel_strategies_are_refused_naming_gan_ddp(strategy: str, runs: Path) -> None:
    config = str(REPO / "experiments" / "toy_grid.yaml")
    args = ["--config", config, "--trainer.accelerator=cpu", "--trainer.devices=2", f"--trainer.strategy={strategy}"]
    with pytest.raises(
        ConfigError, match=f"--trainer.strategy={strategy} cannot train a GAN module; use --trainer.strategy=gan_ddp"
    ):
        GANLightningCLI(args=[*args, *QUIET], run=False)


# ------------------------------------------------------------------------------------- run directory
def test_run_directory_contents(runs: Path, capsys: pytest.CaptureFixture) -> None:
    run = _fit(runs, "toy_grid", "--trainer.max_epochs=1", "--data.num_samples=512")  # 512/256 = 2 batches
    assert run.parent == runs / "toy_grid"

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["class_path"] == "lightning_gans.models.GAN"
    assert config["data"]["class_path"] == "datamodules.toy.ToyDataModule"
    assert config["data"]["init_args"]["num_samples"] == 512  # command-line overrides are resolved in
    assert config["trainer"]["max_epochs"] == 1
    assert config["experiment"] == "toy_grid"  # a re-run from this file lands in runs/toy_grid/, not runs/config/
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:  # the saved config re-parses
        main(["fit", "--config", str(run / "config.yaml"), "--print_config"])
    assert info.value.code == 0
    assert "class_path: lightning_gans.models.GAN" in capsys.readouterr().out

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2  # one step per batch

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    toy = [r for r in rows if "toy/num_modes" in r]
    assert len(toy) == 1
    assert toy[0]["toy/num_modes"] == 25 and 0 <= toy[0]["toy/modes_covered"] <= 25
    assert isinstance(toy[0]["toy/modes_covered"], int)
    assert any(r.get("kind") == "train_epoch" and "d_loss" in r and "g_loss" in r for r in rows)

    assert list((run / "samples").glob("*.png"))
    header = (run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"toy/modes_covered", "d_loss", "g_loss"} <= set(header)  # epoch means under the plain names

    # The saved config is re-runnable as is (README), into a new run of the same experiment.
    main(["fit", "--config", str(run / "config.yaml"), "--trainer.max_steps=1", *QUIET])
    assert sorted(p.name for p in runs.iterdir()) == ["toy_grid"]
    rerun = [p for p in (runs / "toy_grid").iterdir() if p != run]
    assert len(rerun) == 1 and (rerun[0] / "checkpoints" / "last.ckpt").is_file()


# ----------------------------------------------------------------------------------------- W&B offline
def test_wandb_offline(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    # An offline run must never wait for the network; if it hangs, dump stacks and kill the session
    # instead of blocking CI forever.
    faulthandler.dump_traceback_later(180, exit=True)
    start = time.monotonic()
    try:
        run = _fit(runs, "gan_mnist", "--trainer.max_steps=2", "--data.batch_size=8", "--wandb.mode=offline")
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert time.monotonic() - start < 60
    assert wandb.run is None  # main() finished the run: a later in-process fit gets its own

    (offline,) = (run / "wandb").glob("offline-run-*")
    (record,) = offline.glob("run-*.wandb")
    assert record.stat().st_size > 0

    (grid_png,) = (run / "samples").glob("grid_epoch*.png")
    with Image.open(grid_png) as png:
        assert png.mode == "RGB"
        grid = np.asarray(png)
    assert grid.dtype == np.uint8 and grid.shape == (242, 242, 3)  # 64 fixed latents, nrow 8: 8·30 + 2
    assert grid.std() > 0
    inner = grid[2:30, 2:30]  # first sample, inside the white padding
    assert inner.std() > 0 and inner.max() > 0  # a generated image, not a black square

    # The image W&B stored is the same uint8 grid (float images would be rescaled/clipped by W&B).
    (media,) = (offline / "files" / "media" / "images").rglob("*.png")
    with Image.open(media) as png:
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), grid)
