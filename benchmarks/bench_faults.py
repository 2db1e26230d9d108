"""``make bench-faults``: kill runs with SIGKILL at random GAN steps and resume each time; then try every bad input of
``tests/bad_inputs.py`` as a user would (a ``lightning-gans`` process each).

Part 1, per workload (a toy mixture, DCGAN on MNIST): an uninterrupted run of N steps; then the same run killed
with SIGKILL after K random steps (a test-only callback, ``tests/signal_at.py``, sends the signal at the end of the
chosen batch), each time resumed from its newest ``last.ckpt`` (``--checkpoint_every_n_steps C``), until step N.
Printed: kills survived, checkpoints written, and whether the final weights, optimizer states and RNG state equal
the uninterrupted run's bit for bit. Part 2: the bad-input matrix: case, exit code, the first stderr line, and
whether it is clear (one ``error:`` line, no traceback, the expected text in it). Prints only, never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # bad_inputs, data_factories, signal_at (test helpers, not a package)

from bad_inputs import CASES, environment, make_workspace  # noqa: E402
from data_factories import write_mnist_idx  # noqa: E402

CLI = [sys.executable, "-m", "lightning_gans.cli"]
WORKLOADS = {  # name: (experiment, extra flags)
    "toy grid25": ("toy_grid25_recommended.yaml", ["--data.num_samples=4096", "--data.batch_size=256"]),
    "DCGAN-MNIST": ("dcgan_mnist.yaml", ["--data.batch_size=64"]),
}


def fit(env: dict, experiment: str, name: str, runs: Path, steps: int, every: int, *extra: str) -> int:
    argv = [*CLI, "fit", "--config", str(REPO / "experiments" / experiment), "--experiment", name,
            "--runs_dir", str(runs), "--wandb.mode=disabled", "--trainer.enable_progress_bar=false",
            "--trainer.callbacks=[]", f"--trainer.max_steps={steps}", f"--checkpoint_every_n_steps={every}",
            *extra]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True).returncode


def newest(runs: Path, name: str) -> Path:
    """The most recently written ``last.ckpt`` of any run of ``name`` (a run killed before its first checkpoint
    has none: the previous run's is still the newest)."""
    return max((runs / name).glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime_ns)


def saves(start: int, end: int, every: int) -> int:
    """Step checkpoints written between GAN steps ``start`` (exclusive) and ``end`` (inclusive)."""
    return end // every - start // every


def identical(a: Path, b: Path) -> bool:
    x, y = torch.load(a, weights_only=False), torch.load(b, weights_only=False)
    same = x["global_step"] == y["global_step"] and x["state_dict"].keys() == y["state_dict"].keys()
    same &= all(torch.equal(x["state_dict"][k], y["state_dict"][k]) for k in x["state_dict"])
    for oa, ob in zip(x["optimizer_states"], y["optimizer_states"], strict=True):
        for sa, sb in zip(oa["state"].values(), ob["state"].values(), strict=True):
            same &= all(torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])) for k in sa)
    return bool(same and torch.equal(x["lightning_gans_rng"]["torch"], y["lightning_gans_rng"]["torch"]))


def kill_and_resume(env: dict, work: Path, name: str, steps: int, every: int, kills: int, rng: random.Random) -> str:
    experiment, extra = WORKLOADS[name]
    runs = work / "runs"
    slug = name.replace(" ", "_").replace("-", "_").lower()
    fit(env, experiment, f"{slug}_straight", runs, steps, every, *extra)
    points = sorted(rng.sample(range(every + 1, steps), kills))  # each after at least one checkpoint
    survived, written, done, ckpt = 0, 0, 0, None
    for point in points:
        if ckpt is not None and point <= torch.load(ckpt, weights_only=False)["global_step"]:
            continue
        kill = {"class_path": "signal_at.SignalAtStep", "init_args": {"steps": [point], "signal_name": "SIGKILL"}}
        resume = [f"--ckpt_path={ckpt}"] if ckpt else []
        code = fit(env, experiment, f"{slug}_killed", runs, steps, every, *extra, *resume,
                   f"--trainer.callbacks+={json.dumps(kill)}")  # fmt: skip
        survived += code == -9
        written += saves(done, point, every)
        ckpt = newest(runs, f"{slug}_killed")
        done = torch.load(ckpt, weights_only=False)["global_step"]
    final = fit(env, experiment, f"{slug}_killed", runs, steps, every, *extra, f"--ckpt_path={ckpt}")
    written += saves(done, steps, every) + (steps % every != 0)  # and the save at the end of training
    same = final == 0 and identical(newest(runs, f"{slug}_killed"), newest(runs, f"{slug}_straight"))
    return (f"| {name} | {steps} | {', '.join(map(str, points))} | {survived}/{len(points)} | {written} | "
            f"{'yes' if same else 'NO'} |")  # fmt: skip


def bad_inputs(work: Path) -> list[str]:
    rows = ["| case | exit code | first line of stderr | clear |", "|---|---:|---|---|"]
    clear = 0
    for i, (case, argv, expected) in enumerate(CASES):
        ws = make_workspace(work / f"bad{i}")
        result = subprocess.run([*CLI, *argv(ws)], env=environment(ws), capture_output=True, text=True)
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        ok = result.returncode != 0 and "Traceback" not in result.stderr and len(errors) == 1 and expected in errors[0]
        clear += ok
        first = errors[0] if errors else (result.stderr.strip().splitlines() or [""])[-1]
        first = first.replace(str(ws), "<ws>").replace("|", "\\|")[:160]
        rows.append(f"| {case} | {result.returncode} | {first} | {'yes' if ok else 'NO'} |")
    rows.insert(0, f"bad inputs tried: {len(CASES)}, clear: {clear}\n")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=3, help="random SIGKILLs per workload (default 3)")
    parser.add_argument("--steps", type=int, default=40, help="GAN steps per run (default 40)")
    parser.add_argument("--every", type=int, default=5, help="--checkpoint_every_n_steps (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip_kills", action="store_true", help="only the bad-input matrix")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "PYTHONPATH": f"{REPO / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "LIGHTNING_GANS_DATA": str(write_mnist_idx(work / "data", n_train=512, n_test=64)),
               "WANDB_MODE": "disabled"}  # fmt: skip
        env["PYTHONPATH"] = env["PYTHONPATH"].rstrip(os.pathsep)
        if not args.skip_kills:
            rng = random.Random(args.seed)
            print("| workload | steps | killed after steps | kills survived | checkpoints written "
                  "| final == uninterrupted |")  # fmt: skip
            print("|---|---:|---|---:|---:|---|")
            for name in WORKLOADS:
                print(kill_and_resume(env, work, name, args.steps, args.every, args.kills, rng), flush=True)
            print()
        print("\n".join(bad_inputs(work)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
