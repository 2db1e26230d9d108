"""Book-faithful vs recommended MNIST recipes under one CPU budget: steps, time, lenet-mnist FID, IS, class coverage.

For every MNIST model (``PAIRS``) both experiments are trained with ``lightning-gans fit`` on the real MNIST under
``--data_dir`` (``DATA_DIR`` / ``$LIGHTNING_GANS_DATA``), each in its own process with one thread
(``OMP_NUM_THREADS=1``), capped by :class:`~lightning_gans.callbacks.TrainingBudget` at ``--minutes`` CPU-minutes
spent in training steps (default 15; evaluation passes and other processes on the machine do not count) or by
the experiment's own ``max_steps``/``max_epochs``, whichever comes first. The final checkpoint (EMA generator when
the recipe keeps one) is then scored by ``lightning-gans eval`` with one protocol for all: N = 10,000 fakes against
the 10,000 test images, ``lenet-mnist`` FID / IS / class coverage (classes with ≥ 5 % of the fakes) / KL of the
class histogram from uniform (+ conditional accuracy for CGAN). Prints a markdown table and writes it to
``<runs_dir>/quality.md``; a benchmark, not a test (``make bench-quality``)::

    .venv/bin/python benchmarks/bench_quality.py --data_dir ../shared/data [--minutes 15] [--only dcgan,cgan]
        [--recipes book,recommended] [--workers 2] [--runs_dir runs/bench_quality] [--table_only]

``--table_only`` rebuilds the table from the newest finished run of each experiment under ``--runs_dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "lightning_gans.cli"]

# model → (book-faithful experiment, recommended experiment)
PAIRS = {
    "gan": ("gan_mnist", "gan_mnist_recommended"),
    "dcgan": ("dcgan_mnist", "dcgan_mnist_recommended"),
    "wgan_gp": ("wgan_gp_mnist", "wgan_gp_mnist_recommended"),
    "cgan": ("cgan_mnist", "cgan_mnist_recommended"),
    "progan": ("progan_mnist", "progan_mnist_recommended"),
}
RECIPES = ("book", "recommended")
N = 10_000
EXTRACTOR = "lenet-mnist"


@dataclass
class Job:
    model: str
    recipe: str
    experiment: str


def _env(threads: int, data_dir: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.update(LIGHTNING_GANS_DATA=data_dir, WANDB_MODE="disabled", PYTHONPATH=str(REPO))
    env.pop("LIGHTNING_GANS_RUN_DIR", None)
    return env


def budget_args(minutes: float) -> list[str]:
    """``lightning-gans fit`` flags appending a ``TrainingBudget`` of ``minutes`` CPU-minutes of training steps."""
    return ["--trainer.callbacks+=lightning_gans.callbacks.TrainingBudget", f"--trainer.callbacks.minutes={minutes}"]


def _latest_run(runs_dir: Path, experiment: str) -> Path | None:
    runs = sorted(p for p in (runs_dir / experiment).glob("*") if (p / "checkpoints" / "last.ckpt").exists())
    return runs[-1] if runs else None


def _rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def train(job: Job, args: argparse.Namespace) -> None:
    """``lightning-gans fit`` of the experiment under the budget; output to ``<runs_dir>/<experiment>/…/fit.log``."""
    runs_dir = Path(args.runs_dir)
    cmd = [*CLI, "fit", "--config", str(REPO / "experiments" / f"{job.experiment}.yaml")]
    cmd += ["--experiment", job.experiment, "--runs_dir", str(runs_dir), "--trainer.enable_progress_bar=false"]
    cmd += budget_args(args.minutes)
    (runs_dir / job.experiment).mkdir(parents=True, exist_ok=True)
    log = runs_dir / job.experiment / f"fit-{time.strftime('%Y%m%d-%H%M%S')}.log"
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, env=_env(args.threads, args.data_dir), stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{job.experiment}: fit failed (exit {proc.returncode}); see {log}")
    run = _latest_run(runs_dir, job.experiment)
    if run is None:
        raise RuntimeError(f"{job.experiment}: no checkpoints/last.ckpt under {runs_dir / job.experiment}; see {log}")
    (run / "bench_fit.json").write_text(json.dumps({"wall_s": wall, "minutes": args.minutes, "log": str(log)}))
    metrics = "fid,is,coverage,class_kl" + (",cond_acc" if job.model == "cgan" else "")
    cmd = [*CLI, "eval", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--metrics", metrics, "--n", str(N)]
    cmd += ["--extractor", EXTRACTOR, "--device", "cpu"]
    with open(run / "bench_eval.log", "w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, env=_env(args.threads, args.data_dir), stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{job.experiment}: eval failed (exit {proc.returncode}); see {run / 'bench_eval.log'}")
    print(f"done: {job.experiment} in {wall / 60:.1f} min wall ({run})", flush=True)


def row(job: Job, runs_dir: Path) -> dict | None:
    """The table row of the newest finished run of ``job.experiment`` (None if there is none)."""
    run = _latest_run(runs_dir, job.experiment)
    if run is None or not (run / "bench_fit.json").exists():
        return None
    rows = _rows(run)
    evals = [r for r in rows if r.get("kind") == "eval"]
    budget = [r for r in rows if r.get("kind") == "budget"]
    if not evals or not budget:
        return None
    ev, spent, fit = evals[-1], budget[-1], json.loads((run / "bench_fit.json").read_text())
    suffix = f"{EXTRACTOR}/{N // 1000}k"
    return {
        "model": job.model,
        "recipe": job.recipe,
        "experiment": job.experiment,
        "steps": spent["step"],
        "cpu_min": spent["budget/train_cpu_s"] / 60,
        "budget_hit": spent["exhausted"],
        "wall_min": fit["wall_s"] / 60,
        "fid": ev[f"fid/{suffix}"],
        "is": ev[f"is/{suffix}"],
        "coverage": ev[f"coverage/{suffix}"],
        "class_kl": ev[f"class_kl/{suffix}"],
        "cond_acc": ev.get(f"cond_acc/{suffix}"),
    }


def table(rows: list[dict], minutes: float) -> str:
    head = (
        f"| model | recipe | experiment | steps | train CPU-min (budget {minutes:g}) | wall min | FID ↓ | IS ↑ | "
        "classes ≥ 5 % | KL(p‖U) ↓ | cond. acc. |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        cpu = f"{r['cpu_min']:.1f}" + (" (cap)" if r["budget_hit"] else "")
        acc = "—" if r["cond_acc"] is None else f"{100 * r['cond_acc']:.1f} %"
        lines.append(
            f"| {r['model']} | {r['recipe']} | `{r['experiment']}` | {r['steps']:,} | {cpu} | {r['wall_min']:.1f} | "
            f"{r['fid']:.2f} | {r['is']:.2f} | {r['coverage']:.0f}/10 | {r['class_kl']:.3f} | {acc} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("LIGHTNING_GANS_DATA", "./data"))
    parser.add_argument("--minutes", type=float, default=15.0, help="CPU-minutes of training steps per run")
    parser.add_argument("--only", default=",".join(PAIRS), help=f"comma-separated subset of {','.join(PAIRS)}")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="book,recommended (or one of them)")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one thread each)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--runs_dir", default=str(REPO / "runs" / "bench_quality"))
    parser.add_argument("--table_only", action="store_true", help="only print the table of finished runs")
    args = parser.parse_args()
    models = [m.strip() for m in args.only.split(",") if m.strip()]
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = sorted(set(models) - set(PAIRS)) + sorted(set(recipes) - set(RECIPES))
    if unknown:
        parser.error(f"unknown model/recipe {unknown}: models are {list(PAIRS)}, recipes {list(RECIPES)}")
    raw = Path(args.data_dir) / "MNIST" / "raw"
    if not args.table_only and not raw.is_dir():
        parser.error(f"no MNIST under {raw}: pass --data_dir (make bench-quality DATA_DIR=…) with MNIST/raw/ IDX files")
    jobs = [Job(m, r, PAIRS[m][RECIPES.index(r)]) for m in models for r in recipes]
    if not args.table_only:
        from lightning_gans.metrics import check_extractor

        check_extractor(EXTRACTOR)  # raises with the `make extractor` instruction when lenet-mnist is missing
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            for future in [pool.submit(train, job, args) for job in jobs]:
                try:
                    future.result()
                except RuntimeError as err:
                    print(f"error: {err}", file=sys.stderr)
    rows = [r for r in (row(job, Path(args.runs_dir)) for job in jobs) if r is not None]
    text = table(rows, args.minutes)
    print(text)
    Path(args.runs_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.runs_dir) / "quality.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
