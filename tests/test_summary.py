"""The end-of-fit report (``lightning_gans/callbacks/summary.py``): final metrics read back from metrics.jsonl,
the run's files, and the commands that fit the model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from lightning_gans.callbacks.summary import final_metrics, next_commands
from lightning_gans.cli import main

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_model_summary=false", "--trainer.accelerator=cpu", "--trainer.devices=1"]


def test_final_metrics_keep_the_last_finite_value_of_each_number(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [
        {"epoch": 0, "step": 10, "toy/modes_covered": 3, "toy/high_quality_pct": 20.0},
        {"epoch": 0, "step": 10, "kind": "train_epoch", "d_loss": 1.5, "g_loss": 0.7, "flag": True},
        {"epoch": 1, "step": 20, "kind": "train_epoch", "d_loss": 1.25, "g_loss": float("nan"), "note": "x"},
        {"epoch": 2, "step": 30, "toy/modes_covered": 25, "protocol": {"n": 2500}},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 3, "st')  # last line cut by a kill
    assert final_metrics(path) == {
        "toy/modes_covered": (25.0, 30),
        "toy/high_quality_pct": (20.0, 10),
        "d_loss": (1.25, 20),
        "g_loss": (0.7, 10),  # NaN at step 20 is not a final value
    }
    assert final_metrics(tmp_path / "absent.jsonl") == {}


def _module(**attrs) -> SimpleNamespace:
    return SimpleNamespace(**attrs)


@pytest.mark.parametrize(
    ("module", "datamodule", "expected", "absent"),
    [
        (_module(sample=lambda n: n), SimpleNamespace(real_images=lambda: None), ["sample", "eval"], ["translate"]),
        (_module(sample=lambda n: n), SimpleNamespace(), ["sample"], ["eval"]),  # toy points, voxels
        (_module(sample=lambda n: n, translate=lambda x, d: x), None, ["translate --ckpt"], ["sample", "eval"]),
        (_module(sample=lambda n: n, upscale=lambda x: x), None, ["upscale --ckpt"], ["sample", "translate"]),
        (
            _module(sample=lambda n: n, encoder=torch.nn.Identity(), conditional=True),
            SimpleNamespace(real_images=lambda: None),
            ["sample", "eval", "age --ckpt"],
            [],
        ),
    ],
    ids=["image GAN", "toy", "translator", "super-resolution", "age-cgan"],
)
def test_next_commands_fit_the_model(module, datamodule, expected, absent, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model: {}\n")
    commands = next_commands(module, datamodule, "run/checkpoints/last.ckpt", tmp_path)
    heads = [c.split()[1] for c in commands]
    for word in expected:
        assert any(c.startswith(f"lightning-gans {word}") for c in commands), commands
    for word in absent:
        assert word not in heads, commands
    assert commands[-1].startswith(f"lightning-gans fit --config {tmp_path / 'config.yaml'} --ckpt_path")


def test_fit_prints_the_report_last(runs: Path, capsys: pytest.CaptureFixture) -> None:
    config = str(REPO / "experiments" / "toy_grid.yaml")
    main(["fit", "--config", config, "--trainer.max_epochs=2", "--data.num_samples=512", *QUIET])
    out = capsys.readouterr().out
    report = out[out.index("lightning-gans: fit finished") :].splitlines()
    run = next((runs / "toy_grid").iterdir())
    assert report[0].startswith("lightning-gans: fit finished at GAN step 4 (2 epochs)")
    assert str(run) in report[0]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    toy = [r for r in rows if "toy/modes_covered" in r][-1]
    assert toy["step"] == 4
    line = next(x for x in report if x.startswith("  final metrics (step 4):"))
    assert f"toy/modes_covered {toy['toy/modes_covered']:.4g}" in line
    assert f"toy/high_quality_pct {toy['toy/high_quality_pct']:.4g}" in line
    assert line.index("toy/") < line.index("d_loss")  # quality first, losses after
    ckpt = run / "checkpoints" / "last.ckpt"
    assert f"  checkpoint:    {ckpt}" in report and ckpt.is_file()
    assert any(x.startswith("  samples/plots:") and "toy_scatter_epoch0001.png" in x for x in report)
    assert f"    lightning-gans sample --ckpt {ckpt} --n 64 --out {run / 'final_samples'}" in report
    assert not any("lightning-gans eval" in x for x in report)  # toy points: no FID


def test_fast_dev_run_prints_no_report(runs: Path, capsys: pytest.CaptureFixture) -> None:
    main(["fit", "--config", str(REPO / "experiments" / "toy_grid.yaml"), "--trainer.fast_dev_run=1", *QUIET])
    assert "fit finished" not in capsys.readouterr().out


def test_make_train_default_is_the_recommended_toy_recipe_for_15000_steps(
    runs: Path, capsys: pytest.CaptureFixture
) -> None:
    """``make train``'s EXP is toy_grid25_default: the recommended grid-25 recipe, 75 epochs × 200 batches."""
    make = (REPO / "Makefile").read_text()
    (default,) = [line.split("?=")[1].strip() for line in make.splitlines() if line.startswith("EXP ?=")]
    assert default == "toy_grid25_default"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(REPO / "experiments" / f"{default}.yaml"), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    assert config["trainer"]["max_epochs"] * data["num_samples"] // data["batch_size"] == 15_000
    assert model["regularisers"]["r1_gamma"] == 0.1 and model["ema"]["decay"] == 0.999
    assert model["generator"]["init_args"]["hidden"] == [256, 256, 256]
    assert config["data"]["class_path"] == "datamodules.toy.ToyDataModule"  # in memory: no download
