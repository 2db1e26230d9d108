"""Translation recipes on MNIST edges ↔ digits under one CPU budget: label agreement, cycle L1 (issue 20, item 2).

Writes the set (``benchmarks/make_mnist_edges.py``: 10,000 train / 1,000 val digits of the real MNIST under
``--data_dir``) to ``<runs_dir>/mnist_edges`` if it is missing, trains each ``--experiments`` entry with
``lightning-gans fit`` in its own process with one thread, capped by ``TrainingBudget`` at ``--minutes`` CPU-minutes of
training steps (default 16: the CycleGAN run of docs/results.md), ``--workers`` at a time, then scores the final
checkpoint with ``benchmarks/translation_labels.py`` (how often lenet-mnist gives G_AB(edges) the source digit's
label, the same for G_AB(G_BA(digit)), cycle L1 per domain). Prints one markdown table (also written to
``<runs_dir>/translation.md``); a benchmark, not a test::

    make bench-translation DATA_DIR=../shared/data [ARGS="--experiments discogan_mnist_edges --seeds 1234,1"]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_quality import CLI, REPO, _env, _latest_run, budget_args

EXPERIMENTS = ("cyclegan_mnist_edges", "discogan_mnist_edges", "discogan_mnist_edges_recommended")


def fit(experiment: str, seed: int, data: Path, args: argparse.Namespace) -> dict:
    """Train one (experiment, seed) under the budget and score it: the translation_labels JSON plus steps, times."""
    name = f"{experiment}-seed{seed}"
    runs_dir = Path(args.runs_dir)
    cmd = [*CLI, "fit", "--config", str(REPO / "experiments" / f"{experiment}.yaml"), "--experiment", name]
    cmd += ["--runs_dir", str(runs_dir), "--trainer.enable_progress_bar=false", f"--seed_everything={seed}"]
    cmd += [f"--data.dataset={data}", "--trainer.max_epochs=1000"]  # the budget ends training
    cmd += budget_args(args.minutes)
    (runs_dir / name).mkdir(parents=True, exist_ok=True)
    log = runs_dir / name / f"fit-{time.strftime('%Y%m%d-%H%M%S')}.log"
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, env=_env(1, args.data_dir), stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    run = _latest_run(runs_dir, name)
    if proc.returncode != 0 or run is None:
        raise RuntimeError(f"{name}: fit failed (exit {proc.returncode}); see {log}")
    ckpt = run / "checkpoints" / "last.ckpt"
    score = [
        sys.executable,
        str(REPO / "benchmarks" / "translation_labels.py"),
        "--ckpt",
        str(ckpt),
        "--data",
        str(data),
    ]
    out = subprocess.run(score, cwd=REPO, env=_env(1, args.data_dir), capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    budget = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"budget"' in line]
    steps, cpu_s = (budget[-1]["step"], budget[-1]["budget/train_cpu_s"]) if budget else (0, float("nan"))
    print(f"done: {name} in {wall / 60:.1f} min wall ({run})", flush=True)
    return {
        "experiment": experiment,
        "seed": seed,
        "steps": steps,
        "cpu_min": cpu_s / 60,
        "wall_min": wall / 60,
        **result,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| experiment | seed | steps | train CPU-min | wall min | label agreement G_AB(edges) | G_AB(G_BA(digit)) "
        "| cycle L1 A / B |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['experiment']}` | {r['seed']} | {r['steps']:,} | {r['cpu_min']:.1f} | {r['wall_min']:.1f} | "
            f"{100 * r['agree_AtoB']:.1f} % | {100 * r['agree_BtoAtoB']:.1f} % | "
            f"{r['cycle_l1_A']:.3f} / {r['cycle_l1_B']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default="data", help="data root holding MNIST/raw/")
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS))
    parser.add_argument("--seeds", default="1234", help="comma-separated seeds (the experiments' own: 1234)")
    parser.add_argument("--minutes", type=float, default=16.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs_dir", default=str(REPO / "runs" / "bench_translation"))
    args = parser.parse_args()
    data = Path(args.runs_dir) / "mnist_edges"
    if not (data / "val").is_dir():
        make = [sys.executable, str(REPO / "benchmarks" / "make_mnist_edges.py"), "--data_dir", args.data_dir]
        subprocess.run([*make, "--out", str(data)], cwd=REPO, check=True)
    jobs = [(e, int(s)) for e in args.experiments.split(",") for s in args.seeds.split(",")]
    with ThreadPoolExecutor(args.workers) as pool:
        rows = list(pool.map(lambda job: fit(*job, data, args), jobs))
    text = table(rows)
    (Path(args.runs_dir) / "translation.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
