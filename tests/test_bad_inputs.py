"""Every bad input of ``tests/bad_inputs.py`` ends in one clear line on stderr (the option, file or value at fault
and what to do), a non-zero exit and no traceback, across commands and data formats."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from bad_inputs import CASES, environment, make_workspace

from lightning_gans.cli import main as cli_main


@pytest.mark.parametrize(("case", "argv", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(
    case: str, argv, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    ws = make_workspace(tmp_path)
    for key in ("WANDB_API_KEY", "LIGHTNING_GANS_DEBUG"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environment(ws).items():
        monkeypatch.setenv(key, value)  # every key: restored afterwards even where wandb rewrites it (dryrun)
    monkeypatch.setattr(sys, "argv", ["lightning-gans"])
    command = argv(ws)
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli_main(command)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert exit_info.value.code not in (0, None), err
    assert "Traceback" not in err and "Namespace(" not in err, err
    assert len(lines) == 1 and expected in lines[0], err


def test_the_matrix_covers_every_command(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    commands = {argv(ws)[0] for _, argv, _ in CASES}
    assert len(CASES) >= 25
    assert {"fit", "sample", "eval", "interpolate", "translate", "upscale", "age", "stats", "prepare"} <= commands


def test_debug_switch_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = make_workspace(tmp_path)
    monkeypatch.setenv("LIGHTNING_GANS_DEBUG", "1")
    from lightning_gans.errors import CheckpointError

    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(ws / "data"))
    with pytest.raises(CheckpointError, match="is not a checkpoint"):  # raised, not condensed into a line
        cli_main(["fit", "--config", "experiments/dcgan_mnist.yaml", f"--ckpt_path={ws / 'random.ckpt'}"])


@pytest.mark.parametrize("command", ["sample", "eval", "interpolate"])
def test_debug_switch_shows_the_traceback_of_subcommands(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_workspace(tmp_path)
    monkeypatch.setenv("LIGHTNING_GANS_DEBUG", "1")
    from lightning_gans.errors import CheckpointError

    out = ["--out", str(ws / "o")] if command != "eval" else []
    with pytest.raises(CheckpointError, match="random.ckpt is not a checkpoint"):
        cli_main([command, "--ckpt", str(ws / "random.ckpt"), *out])


def test_a_loader_workers_error_is_its_own_message() -> None:
    """What torch's ExceptionWrapper.reraise builds from an error raised in a worker, reduced to the worker's line."""
    from lightning_gans.errors import VoxelFormatError
    from lightning_gans.user_errors import error_line

    wrapped = VoxelFormatError(
        "Caught VoxelFormatError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n    raise VoxelFormatError(m)\n'
        "lightning_gans.errors.VoxelFormatError: a.mat: not a readable .mat file\n"
    )
    assert error_line(wrapped) == "a.mat: not a readable .mat file"
    assert error_line(VoxelFormatError("plain: message")) == "plain: message"
