"""MNIST recipes under one CPU budget: lenet-mnist FID and class balance against CPU-minutes, in one plot.

Every ``--experiments`` entry trains with ``lightning-gans fit`` on the real MNIST under ``--data_dir``, one thread
per run, ``--workers`` runs at a time, until its ``TrainingBudget`` of ``--minutes`` CPU-minutes of training steps
(or the experiment's own step limit) stops it. Its ``lenet_quality`` callback evaluates every ``--every`` GAN steps
and at the end: FID, IS, class coverage (classes with >= 5 % of the fakes), KL from uniform and ``class_min`` (the
smallest class share), N = 10,000 fakes of the EMA generator where the recipe keeps one, against the 10,000 test
images (the protocol of ``make bench-seeds``). The CPU-minutes at an evaluation are the budget's
``budget/train_cpu_s`` at that step, read from the run's CSV log (the last logged step at or before it: at most
``log_every_n_steps`` steps early). For a progressive GAN the CSV's ``resolution`` and ``fade_in_alpha`` give the
step at which the last resolution is fully faded in; the table's class columns start there ("from"), for the other
models at ``--from_step``. Writes ``<runs_dir>/progress.md`` (table) and ``progress.png`` (FID and the smallest class
share against CPU-minutes, one line per recipe, and for a growing run a dotted line at its first evaluation
after the fade-in); a benchmark, not a test (``make bench-progress``)::

    .venv/bin/python benchmarks/bench_progress.py --data_dir ../shared/data \
        [--experiments progan_mnist_recommended,dcgan_mnist_recommended] [--minutes 15] [--every 250] [--seed 0]
        [--from_step 1500] [--workers 2] [--runs_dir runs/bench_progress] [--table_only]

An entry may be a YAML path (a candidate recipe) instead of an experiment name.
"""

from __future__ import annotations

import argparse
import csv
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_quality import REPO, budget_args  # sibling scripts: one environment and protocol for the MNIST benchmarks
from bench_seeds import SUFFIX, _name, evaluations, run_dirs, train


def latest_run(runs_dir: Path, experiment: str, seed: int) -> Path | None:
    runs = [p for p in run_dirs(runs_dir, experiment, seed) if (p / "metrics.jsonl").exists()]
    return runs[-1] if runs else None


def _csv_rows(run: Path) -> list[dict[str, str]]:
    path = run / "csv" / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def cpu_minutes(rows: list[dict[str, str]]) -> list[tuple[int, float]]:
    """(step, CPU-minutes of training steps so far) for every CSV row that logged the budget, in step order."""
    key = "budget/train_cpu_s"
    points = [(int(r["step"]), float(r[key]) / 60.0) for r in rows if r.get(key)]
    return sorted(points)


def faded_in_step(rows: list[dict[str, str]]) -> int | None:
    """The first logged step at the largest resolution with the fade-in finished (α = 1); None: not a growing run."""
    grown = [r for r in rows if r.get("resolution") and r.get("fade_in_alpha")]
    if not grown:
        return None
    top = max(float(r["resolution"]) for r in grown)
    done = [int(r["step"]) for r in grown if float(r["resolution"]) == top and float(r["fade_in_alpha"]) >= 1.0]
    return min(done) if done else None


def curve(run: Path) -> tuple[list[dict], int | None]:
    """The run's evaluations, each with ``cpu_min`` added, and the step its last resolution was faded in."""
    rows = _csv_rows(run)
    clock = cpu_minutes(rows)
    points = []
    for r in evaluations(run):
        spent = [minutes for step, minutes in clock if step <= r["step"]]
        points.append({**r, "cpu_min": spent[-1] if spent else 0.0})
    return points, faded_in_step(rows)


def summary(experiment: str, points: list[dict], faded: int | None, from_step: int) -> dict:
    start = faded if faded is not None else from_step
    late = [p for p in points if p["step"] >= start] or points[-1:]
    worst = min(late, key=lambda p: p[f"class_min/{SUFFIX}"])
    end = points[-1]
    return {
        "experiment": _name(experiment), "from": start, "steps": end["step"], "cpu_min": end["cpu_min"],
        "fid_end": end[f"fid/{SUFFIX}"], "is_end": end[f"is/{SUFFIX}"], "min_share": worst[f"class_min/{SUFFIX}"],
        "min_step": worst["step"], "coverage_min": min(p[f"coverage/{SUFFIX}"] for p in late),
        "best_fid": min(p[f"fid/{SUFFIX}"] for p in points),
    }  # fmt: skip


def table(rows: list[dict], minutes: float) -> str:
    lines = [
        f"lenet-mnist, N = 10,000, budget {minutes:g} CPU-minutes of training steps, one thread; class columns from "
        "the step the last resolution is faded in (progressive GANs) or `--from_step`:",
        "",
        "| experiment | steps | CPU-min | FID at end | best FID | IS at end | from step | min class share (step) | "
        "classes ≥ 5 % (worst) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['experiment']}` | {r['steps']:,} | {r['cpu_min']:.1f} | {r['fid_end']:.2f} | {r['best_fid']:.2f} | "
            f"{r['is_end']:.2f} | {r['from']:,} | {100 * r['min_share']:.2f} % ({r['min_step']:,}) | "
            f"{r['coverage_min']:.0f}/10 |"
        )
    return "\n".join(lines)


def plot(curves: dict[str, tuple[list[dict], int | None]], path: Path) -> None:
    """FID (log scale) and the smallest class share against CPU-minutes; a dotted line at a growing run's first
    evaluation after its last resolution is faded in (where the table's class columns start)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    ax_fid, ax_cls = fig.subplots(1, 2)
    for name, (points, faded) in curves.items():
        x = [p["cpu_min"] for p in points]
        (line,) = ax_fid.plot(x, [p[f"fid/{SUFFIX}"] for p in points], marker="o", ms=3, label=name)
        ax_cls.plot(x, [100 * p[f"class_min/{SUFFIX}"] for p in points], marker="o", ms=3, color=line.get_color())
        if faded is not None:
            at = [p["cpu_min"] for p in points if p["step"] >= faded]
            for ax in (ax_fid, ax_cls):
                ax.axvline(at[0] if at else x[-1], ls=":", color=line.get_color(), lw=1)
    ax_fid.set_yscale("log")
    ax_fid.set(xlabel="CPU-minutes of training steps", ylabel="lenet-mnist FID (10k)", title="FID ↓")
    ax_cls.axhline(5.0, color="grey", lw=0.8, ls="--")
    ax_cls.set(xlabel="CPU-minutes of training steps", ylabel="smallest class share of the fakes (%)",
               title="smallest class ↑ (dashed: 5 %; dotted: first evaluation at full size)")  # fmt: skip
    ax_fid.legend(fontsize=8)
    for ax in (ax_fid, ax_cls):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("LIGHTNING_GANS_DATA", "./data"))
    parser.add_argument("--experiments", default="progan_mnist_recommended,dcgan_mnist_recommended")
    parser.add_argument("--minutes", type=float, default=15.0, help="CPU-minutes of training steps per run")
    parser.add_argument("--every", type=int, default=250, help="evaluate every N GAN steps")
    parser.add_argument("--from_step", type=int, default=1500, help="class columns start here (non-growing models)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs_dir", default=str(REPO / "runs" / "bench_progress"))
    parser.add_argument("--table_only", action="store_true")
    args = parser.parse_args()
    args.steps = None  # each experiment keeps its own step limit; the budget stops it first when it is shorter
    experiments = [e for e in args.experiments.split(",") if e]
    if not args.table_only:
        extra = tuple(budget_args(args.minutes))
        with ThreadPoolExecutor(args.workers) as pool:
            for future in [pool.submit(train, e, args.seed, args, extra) for e in experiments]:
                future.result()
    runs_dir = Path(args.runs_dir)
    curves = {}
    for e in experiments:
        run = latest_run(runs_dir, e, args.seed)
        if run is None:
            raise SystemExit(f"bench_progress: no finished run of {e} under {runs_dir}; run without --table_only")
        curves[_name(e)] = curve(run)
    rows = [summary(e, *curves[_name(e)], args.from_step) for e in experiments]
    text = table(rows, args.minutes)
    print(text)
    runs_dir.mkdir(parents=True, exist_ok=True)
    (runs_dir / "progress.md").write_text(text + "\n")
    plot(curves, runs_dir / "progress.png")
    print(f"plot: {runs_dir / 'progress.png'}")


if __name__ == "__main__":
    main()
