"""A fit's console shows the run directory, the model summary, progress and the project's own lines — no
third-party warning the user cannot act on (the filters live in lightning_gans/console.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

from lightning_gans.console import WARNINGS, quiet_console

REPO = Path(__file__).resolve().parents[1]


def test_fit_console_has_no_third_party_warnings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SILENT",)}  # W&B as a user sees it
    env.update(LIGHTNING_GANS_RUNS=str(tmp_path / "runs"), WANDB_MODE="offline", WANDB_DIR=str(tmp_path))
    command = [sys.executable, "-m", "lightning_gans.cli", "fit", "--config", "experiments/toy_grid.yaml"]
    command += ["--trainer.max_steps=3", "--trainer.enable_progress_bar=false"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    console = done.stdout + done.stderr
    assert done.returncode == 0, console
    assert "lightning-gans: run directory" in console
    assert "lightning-gans: W&B offline run in" in console and "wandb sync" in console
    lowered = console.lower()
    for noise in ("warning", "deprecat", "tip:", "args parameter", "anonymous", "git root"):
        assert noise not in lowered, f"{noise!r} on the console:\n{console}"


# A real message for the patterns whose own (unescaped) text is not an example of what they match.
EXAMPLES = {"sync_dist": "It is recommended to use `self.log('fid/lenet-mnist/10k', ..., sync_dist=True)` when logging"}


def test_only_the_listed_warnings_are_silenced() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_console()
        for message, category, _why in WARNINGS:
            example = next((v for k, v in EXAMPLES.items() if k in message), message.replace("\\", ""))
            warnings.warn(example, category, stacklevel=1)
        warnings.warn("It is recommended to use `self.log('d_loss', ..., sync_dist=True)`", UserWarning, stacklevel=1)
        warnings.warn("a warning of the project's own", UserWarning, stacklevel=1)
    own = ["It is recommended to use `self.log('d_loss', ..., sync_dist=True)`", "a warning of the project's own"]
    assert [str(w.message) for w in caught] == own  # a user's own un-synced metric still warns
