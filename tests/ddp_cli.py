"""A 2-process CPU fit through the CLI (Lightning launches the second process), as the multi-process tests run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lightning_gans.cli import RUN_DIR_ENV

REPO = Path(__file__).resolve().parents[1]
TWO_CPU_PROCESSES = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]
SYNC_CHECK = "--trainer.callbacks+=lightning_gans.callbacks.ParameterSyncCheck"


def two_process_fit(
    experiment: str, data: Path, runs: Path, steps: int, batch: int, *args: str, timeout: int = 600
) -> tuple[subprocess.CompletedProcess, Path, list[dict]]:
    """Fit ``experiment`` for ``steps`` GAN steps at ``batch`` per process with the experiment's callbacks replaced by
    ``ParameterSyncCheck``; ``args`` choose the devices (e.g. ``TWO_CPU_PROCESSES``) and add options. Asserts the
    exit code; returns the process, its run directory and its ``metrics.jsonl`` rows."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LIGHTNING_GANS_DATA": str(data)}
    for name in (RUN_DIR_ENV, "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK"):
        env.pop(name, None)  # a clean launch: Lightning starts the second process and picks a free port
    cmd = [sys.executable, "-m", "lightning_gans.cli", "fit", "--config", str(REPO / f"experiments/{experiment}.yaml")]
    cmd += ["--runs_dir", str(runs), "--wandb.mode=disabled", "--trainer.enable_progress_bar=false"]
    cmd += [f"--trainer.max_steps={steps}", "--trainer.max_epochs=-1", f"--data.batch_size={batch}"]
    cmd += ["--trainer.callbacks=[]", SYNC_CHECK]  # quality callbacks need real-size test sets
    cmd += args
    proc = subprocess.run(cmd, env=env, cwd=runs, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run,) = sorted((runs / experiment).iterdir())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return proc, run, rows


def assert_ranks_identical_with_own_noise(rows: list[dict]) -> None:
    """The ``ParameterSyncCheck`` row: both ranks' parameter digests equal, their RNG digests different (each rank
    drew its own noise; ``seed_everything`` alone gives identical streams)."""
    check = next(r for r in rows if r.get("kind") == "ddp_sync_check")
    digests, rng = check["rank_parameter_sha256"], check["rank_rng_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert rng[0] != rng[1]
