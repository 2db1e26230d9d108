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
