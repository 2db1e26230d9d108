"""One MNIST experiment over several seeds: lenet-mnist FID, IS and the smallest class share every few hundred steps.

Each seed trains ``--experiment`` with ``lightning-gans fit`` for ``--steps`` GAN steps on the real MNIST under
``--data_dir``, one thread per run (``OMP_NUM_THREADS=1``), ``--workers`` runs at a time. Its ``lenet_quality``
callback is switched to ``every_n_steps: --every`` (no per-epoch evaluation) with the metrics FID, IS, class
coverage (classes with >= 5 % of the fakes), KL from uniform and ``class_min`` (the smallest class share), on
N = 10,000 fakes (the EMA generator where the recipe keeps one) against the 10,000 test images. The table gives,
per seed, FID at ``--from_step`` and at the end, and the smallest class share over every evaluation from
``--from_step`` on — "every class above 6 % from step 1,500 on" is ``min class share ≥ 6 %`` in that column.
Written to ``<runs_dir>/<experiment>.md``; a benchmark, not a test::

    .venv/bin/python benchmarks/bench_seeds.py --data_dir ../shared/data --experiment dcgan_mnist_recommended \
        [--seeds 0,1,2] [--steps 2500] [--every 250] [--from_step 1500] [--workers 2] [--table_only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_quality import CLI, REPO, _env  # one environment for both MNIST benchmarks (sibling script)

SUFFIX = "lenet-mnist/10k"


def config_path(experiment: str) -> Path:
    """``experiments/<experiment>.yaml``, or the YAML file ``experiment`` names (a candidate recipe)."""
    return Path(experiment).resolve() if experiment.endswith(".yaml") else REPO / "experiments" / f"{experiment}.yaml"


def _name(experiment: str) -> str:
    return Path(experiment).stem


def overlay(experiment: str, seed: int, args: argparse.Namespace) -> Path:
    """The experiment with this seed, step count and evaluation schedule, as a composed YAML next to the runs."""
    folder = Path(args.runs_dir) / f"{_name(experiment)}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench_seeds.yaml"
    quality = (
        f"{{metrics: [fid, is, coverage, class_kl, class_min], every_n_epochs: null, every_n_steps: {args.every}}}"
    )
    steps = f"  max_epochs: null\n  max_steps: {args.steps}\n" if args.steps else ""  # None: the experiment's own
    path.write_text(
        f"defaults: [{config_path(experiment)}]\n"
        f"seed_everything: {seed}\n"
        f"trainer:\n{steps}  enable_progress_bar: false\n"
        f"  callbacks:\n    lenet_quality: {{init_args: {quality}}}\n"
    )
    return path


def train(experiment: str, seed: int, args: argparse.Namespace, extra: tuple[str, ...] = ()) -> None:
    """``lightning-gans fit`` of the overlay (plus ``extra`` flags) in its own one-thread process."""
    name = f"{_name(experiment)}-s{seed}"
    cmd = [*CLI, "fit", "--config", str(overlay(experiment, seed, args)), "--experiment", name]
    cmd += ["--runs_dir", str(args.runs_dir), *extra]
    log = Path(args.runs_dir) / name / f"fit-{time.strftime('%Y%m%d-%H%M%S')}.log"
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, env=_env(1, args.data_dir), stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: fit failed (exit {proc.returncode}); see {log}")
    print(f"done: {name} in {(time.perf_counter() - start) / 60:.1f} min wall", flush=True)


def evaluations(run: Path) -> list[dict]:
    """The lenet-mnist evaluation rows of a run's metrics.jsonl, in step order."""
    path = run / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return sorted((r for r in rows if f"fid/{SUFFIX}" in r), key=lambda r: r["step"])


def run_dirs(runs_dir: Path | str, experiment: str, seed: int) -> list[Path]:
    """The timestamped run folders of ``experiment`` with ``seed`` under ``runs_dir``, oldest first."""
    return sorted(p for p in (Path(runs_dir) / f"{_name(experiment)}-s{seed}").glob("2*") if p.is_dir())


def seed_row(experiment: str, seed: int, args: argparse.Namespace) -> dict | None:
    runs = run_dirs(args.runs_dir, experiment, seed)
    evals = evaluations(runs[-1]) if runs else []
    late = [r for r in evals if r["step"] >= args.from_step]
    if not late:
        return None
    worst = min(late, key=lambda r: r[f"class_min/{SUFFIX}"])
    at = min(late, key=lambda r: r["step"])
    return {
        "seed": seed, "steps": evals[-1]["step"], "evals": len(late),
        "fid_from": at[f"fid/{SUFFIX}"], "at": at["step"], "fid_end": evals[-1][f"fid/{SUFFIX}"],
        "is_end": evals[-1][f"is/{SUFFIX}"], "min_share": worst[f"class_min/{SUFFIX}"], "min_step": worst["step"],
        "coverage_min": min(r[f"coverage/{SUFFIX}"] for r in late), "kl_end": evals[-1][f"class_kl/{SUFFIX}"],
    }  # fmt: skip


def table(experiment: str, rows: list[dict], from_step: int) -> str:
    lines = [
        f"`{experiment}`, lenet-mnist, N = 10,000; columns from step {from_step:,} on:",
        "",
        f"| seed | steps | FID at {from_step:,} | FID at end | IS at end | min class share (step) | "
        "classes ≥ 5 % (worst) | KL at end |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['steps']:,} | {r['fid_from']:.2f} | {r['fid_end']:.2f} | {r['is_end']:.2f} | "
            f"{100 * r['min_share']:.2f} % ({r['min_step']:,}) | {r['coverage_min']:.0f}/10 | {r['kl_end']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("LIGHTNING_GANS_DATA", "./data"))
    parser.add_argument("--experiment", default="dcgan_mnist_recommended")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--every", type=int, default=250, help="evaluate every N GAN steps")
    parser.add_argument("--from_step", type=int, default=1500, help="the table's columns start at this step")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs_dir", default=str(REPO / "runs" / "bench_seeds"))
    parser.add_argument("--table_only", action="store_true")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if not args.table_only:
        with ThreadPoolExecutor(args.workers) as pool:
            for future in [pool.submit(train, args.experiment, s, args) for s in seeds]:
                future.result()
    rows = [r for r in (seed_row(args.experiment, s, args) for s in seeds) if r is not None]
    text = table(_name(args.experiment), rows, args.from_step)
    print(text)
    out = Path(args.runs_dir) / f"{_name(args.experiment)}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
