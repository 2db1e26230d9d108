"""SLURM, simulated: two tasks started the way ``srun`` starts them (SLURM_* variables, no launcher), the requeue
signal at different steps on the two ranks, ``scontrol`` a stand-in that records its arguments, then the requeued
job resuming from the checkpoint the signal wrote."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
JOB = "4242"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _srun(tmp: Path, port: int, *extra: str) -> list[subprocess.CompletedProcess]:
    """Both tasks of a 1-node, 2-task job, started concurrently; returns their completed processes."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp / "scontrol.log"}\n')
    scontrol.chmod(0o755)
    cmd = [sys.executable, "-m", "lightning_gans.cli", "fit", "--config", str(REPO / "experiments/toy_grid.yaml")]
    cmd += ["--config", str(REPO / "experiments/trainer/slurm.yaml")]  # the documented piece
    cmd += ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.num_nodes=1", "--wandb.mode=disabled"]
    cmd += ["--trainer.enable_progress_bar=false", "--trainer.max_steps=12", "--trainer.max_epochs=-1"]
    cmd += ["--trainer.log_every_n_steps=2", "--trainer.callbacks=[]", "--runs_dir", str(tmp / "runs"), *extra]
    procs = []
    for rank in (0, 1):
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PYTHONPATH": f"{TESTS}:{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1",
            "SLURM_NTASKS": "2",
            "SLURM_NTASKS_PER_NODE": "2",
            "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": str(rank),
            "SLURM_NODEID": "0",
            "SLURM_JOB_ID": JOB,
            "SLURM_JOB_NAME": "train",
            "SLURM_NODELIST": "127.0.0.1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LIGHTNING_GANS_RUN_DIR"):
            env.pop(key, None)
        procs.append(subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    return [subprocess.CompletedProcess(cmd, p.returncode, out) for p, out in zip(procs, outs)]


def test_slurm_tasks_requeue_signal_checkpoint_and_resume(tmp_path: Path) -> None:
    signal_cb = '--trainer.callbacks+={"class_path": "signal_at.SignalAtStep", "init_args": {"steps": [3, 5]}}'
    first = _srun(tmp_path, _free_port(), signal_cb, "--trainer.callbacks+=lightning_gans.callbacks.ParameterSyncCheck")
    for proc in first:
        assert proc.returncode == 0, proc.stdout[-3000:]
    log = first[0].stdout
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in first[1].stdout
    run = tmp_path / "runs" / "toy_grid" / f"slurm-{JOB}"  # one directory for both tasks, named after the job
    assert sorted(p.name for p in (tmp_path / "runs" / "toy_grid").iterdir()) == [run.name]
    # Rank 0 is signalled after step 3, rank 1 only after step 5: rank 0's request reaches rank 1 in the next
    # gradient reduction and is read on the next logging step (every 2), so both ranks stop after step 4, with
    # equal weights, and rank 1's own signal never matters.
    hpc = torch.load(run / "hpc_ckpt_1.ckpt", weights_only=False)
    assert hpc["global_step"] == 4
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", JOB]  # rank 0 only, once
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    digests = next(r["rank_parameter_sha256"] for r in rows if r.get("kind") == "ddp_sync_check")
    assert digests[0] == digests[1]

    # The requeued job: same job id, same command; Lightning resumes from hpc_ckpt_1.ckpt in the same directory.
    second = _srun(tmp_path, _free_port())
    for proc in second:
        assert proc.returncode == 0, proc.stdout[-3000:]
    assert "hpc_ckpt_1.ckpt" in second[0].stdout  # "Restoring states from the checkpoint path at …"
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 12
