"""Two-process data-parallel cost on CPU/gloo: the old ``ddp_find_unused_parameters_true`` path vs ``gan_ddp``.

For each experiment (default ``dcgan_mnist_recommended`` and ``wgan_gp_mnist``, real MNIST under
``LIGHTNING_GANS_DATA``) three CLI fits of ``--warmup + --steps`` GAN steps at batch ``--batch`` per process:

1 process (current tree); old, 2 processes: the CLI of commit ``a0813fa`` (a git worktree under /tmp, created
when missing) with ``--trainer.strategy=ddp``, which it upgrades to ``ddp_find_unused_parameters_true``; new,
2 processes: the current tree with ``--trainer.strategy=gan_ddp``.

Every process runs with one thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``). This script is the
entry point of each fit (``--worker``; Lightning's launcher re-runs the same argv for rank 1): before the CLI
starts it wraps the Python collectives of ``torch.distributed`` (counted once per outermost call) and counts
optimizer steps; a callback records ``perf_counter`` and the counters at every ``on_train_batch_end``. The old
path's gradient all-reduces run in DDP's C++ reducer: a comm hook counts its buckets, then performs DDP's
default all-reduce. ms/step: mean (and median) of the differences between consecutive batch ends over the timed,
non-logging steps of rank 0. Prints a markdown table and the targets of the new path. Never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from torch.distributed import distributed_c10d
from torch.optim.optimizer import register_optimizer_step_post_hook

REPO = Path(__file__).resolve().parents[1]
OLD_COMMIT = "a0813fa"
OLD_TREE = Path("/tmp/lg-old")
EXPERIMENTS = ("dcgan_mnist_recommended", "wgan_gp_mnist")
STRIDES_WARNING = "Grad strides do not match bucket view strides"
TARGET_RATIO = 1.15
OUT_ENV = "BENCH_DDP_OUT"
COLLECTIVES = (
    "all_reduce", "all_reduce_coalesced", "broadcast", "all_gather", "all_gather_into_tensor", "all_gather_coalesced",
    "reduce", "reduce_scatter", "reduce_scatter_tensor", "gather", "scatter", "all_to_all", "all_to_all_single",
    "barrier", "monitored_barrier", "broadcast_object_list", "all_gather_object", "gather_object",
    "scatter_object_list", "send", "recv", "isend", "irecv", "batch_isend_irecv",
)  # fmt: skip

# ---------------------------------------------------------------------------------------------- worker side
COUNTS: Counter = Counter()  # "dist.<name>", "reducer_buckets", "optimizer_steps", "reduce_gradients_s"
_DEPTH = threading.local()


def _counted(name: str, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        depth = getattr(_DEPTH, "n", 0)
        if depth == 0:  # a collective made of other collectives (broadcast_object_list, …) counts once
            COUNTS[f"dist.{name}"] += 1
        _DEPTH.n = depth + 1
        try:
            return fn(*args, **kwargs)
        finally:
            _DEPTH.n = depth

    wrapper.__wrapped__ = fn
    return wrapper


def install_counters() -> None:
    """Count every Python collective, every optimizer step and the time spent in ``reduce_gradients``."""
    for name in (n for n in COLLECTIVES if hasattr(distributed_c10d, n)):
        wrapped = _counted(name, getattr(distributed_c10d, name))
        for namespace in (dist, distributed_c10d):
            setattr(namespace, name, wrapped)
    register_optimizer_step_post_hook(lambda *_: COUNTS.update(["optimizer_steps"]))
    try:  # the current tree only
        from lightning_gans.strategies import GANDDPStrategy
    except ImportError:
        return
    reduce = GANDDPStrategy.reduce_gradients

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return reduce(self, *args, **kwargs)
        finally:
            COUNTS["reduce_gradients_s"] += time.perf_counter() - start

    GANDDPStrategy.reduce_gradients = timed


def machine_busy_s() -> float:
    """CPU seconds all processes of this machine have used since boot (/proc/stat; 0.0 where it is missing)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _counting_allreduce_hook(state, bucket):  # unannotated: DDP accepts no annotation or its own types only
    """DDP's default all-reduce hook (average one bucket), counted; uses the unwrapped ``all_reduce``."""
    COUNTS["reducer_buckets"] += 1
    group = state if state is not None else dist.group.WORLD
    tensor = bucket.buffer().div_(group.size())
    work = dist.all_reduce.__wrapped__(tensor, group=group, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


class StepRecorder(pl.Callback):
    """Per batch: whether Lightning logs it, and at its end ``perf_counter`` and the counters; written as JSON to
    ``$BENCH_DDP_OUT/rank<r>.json`` at the end of training."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.logging = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if isinstance(trainer.strategy.model, torch.nn.parallel.DistributedDataParallel):
            trainer.strategy.model.register_comm_hook(None, _counting_allreduce_hook)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        stepped = trainer.fit_loop.epoch_loop._batches_that_stepped  # Lightning's logging rule (compat.py)
        self.logging = (stepped + 1) % max(1, trainer.log_every_n_steps) == 0 or trainer.should_stop

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        counts = dict(COUNTS, grad_reductions=getattr(trainer.strategy, "collectives", 0))
        clocks = {"t": time.perf_counter(), "cpu": time.process_time(), "busy": machine_busy_s()}
        self.steps.append({**clocks, "logging": self.logging, "counts": counts})

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        out = Path(os.environ[OUT_ENV])
        out.mkdir(parents=True, exist_ok=True)
        (out / f"rank{trainer.global_rank}.json").write_text(json.dumps({"steps": self.steps}))


def worker_main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    install_counters()
    from lightning_gans.cli import main

    main(argv)


# ---------------------------------------------------------------------------------------------- driver side
def ensure_old_tree() -> None:
    if not (OLD_TREE / "lightning_gans" / "cli.py").exists():
        cmd = ["git", "-C", str(REPO), "worktree", "add", "--detach", str(OLD_TREE), OLD_COMMIT]
        subprocess.run(cmd, check=True, capture_output=True)


def fit_args(exp: str, procs: int, strategy: str | None, args: argparse.Namespace, runs: Path) -> list[str]:
    total = args.warmup + args.steps
    cli = [
        "fit", f"--config=experiments/{exp}.yaml", "--wandb.mode=disabled", "--trainer.enable_progress_bar=false",
        "--trainer.callbacks=[]", "--trainer.callbacks+=__main__.StepRecorder", f"--trainer.max_steps={total}",
        "--trainer.max_epochs=-1", f"--runs_dir={runs}", "--trainer.enable_checkpointing=false",
        "--trainer.enable_model_summary=false", "--trainer.num_sanity_val_steps=0", "--trainer.accelerator=cpu",
        f"--trainer.devices={procs}", f"--trainer.log_every_n_steps={args.warmup + max(1, args.steps // 2)}",
        f"--data.init_args.batch_size={args.batch}",
    ]  # fmt: skip
    return cli + ([f"--trainer.strategy={strategy}"] if strategy else [])


def run_case(exp: str, path: str, procs: int, args: argparse.Namespace, case: Path) -> dict[str, Any]:
    """One fit in its own process tree (run dir and logs under ``case``); returns rank 0's records, every rank's
    CPU clock and whether PyTorch's grad-strides warning was printed."""
    tree, strategy = (OLD_TREE, "ddp") if path == "old" else (REPO, "gan_ddp" if procs > 1 else None)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="disabled", PYTHONPATH=str(tree))
    env.update({OUT_ENV: str(case / "records"), "LIGHTNING_GANS_DATA": str(Path(args.data_dir).resolve())})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *fit_args(exp, procs, strategy, args, case)]
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=args.timeout)
        output, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as err:
        output, rc = f"{err.stdout or ''}{err.stderr or ''}\n[timed out after {args.timeout}s]", -1
    case.mkdir(parents=True, exist_ok=True)
    (case / "output.log").write_text(output)
    record = case / "records" / "rank0.json"
    if rc != 0 or not record.exists():
        tail = "\n".join(output.strip().splitlines()[-15:])
        print(f"  {exp} {path} x{procs}: failed (rc {rc}); log {case / 'output.log'}\n{tail}", flush=True)
        return {"failed": True}
    info = json.loads(record.read_text())
    ranks = sorted(record.parent.glob("rank*.json"))
    info["rank_cpu"] = [[s["cpu"] for s in json.loads(r.read_text())["steps"]] for r in ranks]
    return {**info, "strides": STRIDES_WARNING in output, "failed": False}


def wait_quiet(limit_s: float, threshold: float = 0.2) -> float:
    """Wait (at most ``limit_s``) until the machine is less than ``threshold`` cores busy over one second (other
    users' jobs share the cores); return the last load seen."""
    deadline = time.monotonic() + limit_s
    while True:
        before = machine_busy_s()
        time.sleep(1.0)
        load = machine_busy_s() - before
        if load < threshold or time.monotonic() >= deadline:
            return load


def _deltas(steps: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per GAN step (from the second on): counter differences, ``ms`` and ``logging``."""
    out = []
    for prev, step in zip(steps, steps[1:]):
        keys = set(prev["counts"]) | set(step["counts"])
        delta = {k: step["counts"].get(k, 0) - prev["counts"].get(k, 0) for k in keys}
        cpu_ms = 1e3 * (step["cpu"] - prev["cpu"])
        out.append({**delta, "ms": 1e3 * (step["t"] - prev["t"]), "cpu_ms": cpu_ms, "logging": step["logging"]})
    return out


def _mean_counts(deltas: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for d in deltas for k in d if k not in ("ms", "cpu_ms", "logging")}
    return {k: sum(d.get(k, 0) for d in deltas) / len(deltas) for k in keys} if deltas else {}


def _foreign_cores(result: dict[str, Any], warmup: int) -> float:
    """Mean number of cores busy with processes other than this run's ranks over the timed window (machine busy
    CPU time minus every rank's own CPU time; ranks are in step, so their windows coincide)."""
    steps, first = result["steps"], max(0, warmup - 1)
    wall = steps[-1]["t"] - steps[first]["t"]
    own = sum(cpu[-1] - cpu[first] for cpu in result["rank_cpu"] if len(cpu) == len(steps))
    return max(0.0, (steps[-1]["busy"] - steps[first]["busy"] - own) / wall) if wall > 0 else 0.0


def summarise(result: dict[str, Any], warmup: int) -> dict[str, Any]:
    """ms/step over the timed non-logging steps; mean counts per non-logging / logging step (all steps but the
    first, which holds the set-up collectives)."""
    if result["failed"]:
        return result
    deltas = _deltas(result["steps"])
    plain = [d for d in deltas if not d["logging"]]
    timed = [d for i, d in enumerate(deltas, start=1) if i >= warmup and not d["logging"]]
    ms = [d["ms"] for d in timed]
    out = {**result, "ms": statistics.fmean(ms), "median": statistics.median(ms), "timed": len(ms)}
    out["cpu_ms"] = statistics.fmean(d["cpu_ms"] for d in timed)
    out["foreign"] = _foreign_cores(result, warmup)
    for kind, chosen in (("plain", plain), ("log", [d for d in deltas if d["logging"]])):
        counts = _mean_counts(chosen)
        out[kind], out[f"{kind}_n"] = counts, len(chosen)
        out[f"{kind}_others"] = {
            k[5:]: v for k, v in sorted(counts.items()) if k.startswith("dist.") and k != "dist.all_reduce" and v
        }
    # gan_ddp: its gradient all-reduces (strategy.collectives) = optimizer steps = all Python all-reduces
    out["one_per_update"] = bool(plain) and all(
        d.get("grad_reductions", 0) == d.get("optimizer_steps", 0) == d.get("dist.all_reduce", 0) for d in plain
    )
    return out


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def _reduces(s: dict[str, Any], kind: str) -> str:
    py = s[kind].get("dist.all_reduce", 0)
    buckets = s[kind].get("reducer_buckets", 0)
    return f"{_fmt(py)} py + {_fmt(buckets)} reducer" if buckets else _fmt(py)


def _others(s: dict[str, Any], kind: str) -> str:
    found = s[f"{kind}_others"]
    total = sum(found.values())
    return _fmt(total) + (" (" + ", ".join(f"{k} {_fmt(v)}" for k, v in found.items()) + ")" if found else "")


HEADER = (
    "experiment", "path", "processes", "ms/step (mean)", "median", "CPU ms/step (rank 0)", "other load (cores)",
    "ratio to 1 process", "updates/step", "all-reduces / non-logging step", "other collectives / non-logging step",
    "all-reduces / logging step", "other collectives / logging step", "reduce_gradients ms/step",
    "grad-strides warning",
)  # fmt: skip


def _cells(path: str, s: dict[str, Any], base: float | None) -> list[str]:
    failed = f" ({n} failed)" if (n := s.get("failed_repeats")) else ""
    logged = s["log_n"] > 0
    return [
        path + failed, f"{s['ms']:.1f}", f"{s['median']:.1f}", f"{s['cpu_ms']:.1f}", f"{s['foreign']:.2f}",
        f"{s['ms'] / base:.2f}" if base else "n/a", _fmt(s["plain"].get("optimizer_steps", 0)),
        _reduces(s, "plain"), _others(s, "plain"), _reduces(s, "log") if logged else "n/a",
        _others(s, "log") if logged else "n/a",
        f"{s['plain'].get('reduce_gradients_s', 0) * 1e3:.2f}" if path == "new" else "-",
        "yes" if s["strides"] else "no",
    ]  # fmt: skip


def table(rows: list[tuple[str, str, int, dict[str, Any]]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    base: dict[str, float] = {}
    for exp, path, procs, s in rows:
        if s["failed"]:
            cells = [path, "failed"] + [""] * (len(HEADER) - 4)
        else:
            if procs == 1:
                base.setdefault(exp, s["ms"])
            cells = _cells(path, s, base.get(exp))
        lines.append(f"| {exp} | {cells[0]} | {procs} | " + " | ".join(cells[1:]) + " |")
    return "\n".join(lines)


def targets(rows: list[tuple[str, str, int, dict[str, Any]]]) -> str:
    by = {(exp, path): s for exp, path, _, s in rows if not s["failed"]}
    lines = ["Targets for the new path (informational):"]
    for exp in dict.fromkeys(r[0] for r in rows):
        one, old, new = by.get((exp, "1 process")), by.get((exp, "old")), by.get((exp, "new"))
        if one is None or new is None:
            lines.append(f"- {exp}: not measured (a run failed)")
            continue
        checks = [
            (f"ratio {new['ms'] / one['ms']:.2f} ≤ {TARGET_RATIO}", new["ms"] / one["ms"] <= TARGET_RATIO),
            (
                f"not slower than old ({new['ms']:.1f} vs {old['ms']:.1f} ms)" if old else "old path not measured",
                old is not None and new["ms"] <= old["ms"],
            ),
            ("exactly one gradient all-reduce per network update on every non-logging step", new["one_per_update"]),
            ("zero other collectives on non-logging steps", not new["plain_others"]),
        ]
        lines += [f"- {exp}: {text}: {'met' if ok else 'NOT met'}" for text, ok in checks]
    return "\n".join(lines)


NOTES = """\
How counted: "py" = Python calls of torch.distributed.all_reduce (wrapped in each worker before the CLI starts:
gan_ddp's gradient buckets, the old NaN guard's reduce_boolean_decision, sync_dist logs); "reducer" = buckets
all-reduced by DDP's C++ reducer (old path), counted by a comm hook that then does DDP's default all-reduce;
other collectives = every other wrapped torch.distributed call (a composite one counts once). Per step = counter
difference between consecutive on_train_batch_end calls of rank 0, mean over the steps of that kind; updates =
optimizer steps (global torch.optim hook); reduce_gradients ms = time inside GANDDPStrategy.reduce_gradients per
non-logging step. CPU ms/step = rank 0's own CPU time per timed step (below ms/step: it waited for its peer or
for a core); other load = cores busy with other processes meanwhile (/proc/stat busy minus the ranks' CPU
time): above ~0.1 the 2-process timings are disturbed."""


def measure(args: argparse.Namespace, work: Path) -> list[tuple[str, str, int, dict[str, Any]]]:
    """Every (experiment, path) ``--repeats`` times, the rounds interleaved so that a burst of other load on the
    machine hits different cases; per case the repeat with the lowest ms/step (noise only adds time)."""
    cases = [(exp, *c) for exp in args.experiments.split(",") for c in (("1 process", 1), ("old", 2), ("new", 2))]
    results: dict[tuple, list[dict[str, Any]]] = {case: [] for case in cases}
    for rep in range(args.repeats):
        for exp, path, procs in cases:
            load = wait_quiet(args.quiet_wait)
            print(f"[{rep + 1}/{args.repeats}] {exp}: {path}, {procs} process(es); machine load {load:.2f}", flush=True)
            tag = "old" if path == "old" else "new"
            result = run_case(exp, tag, procs, args, work / f"{exp}-{tag}-{procs}-r{rep}")
            results[(exp, path, procs)].append(summarise(result, args.warmup))
    rows = []
    for case, runs in results.items():
        ok = [r for r in runs if not r["failed"]]
        best = min(ok, key=lambda r: r["ms"]) if ok else runs[0]
        if ok:  # the warning and the failures count over every repeat
            best = {**best, "strides": any(r["strides"] for r in ok), "failed_repeats": len(runs) - len(ok)}
        rows.append((*case, best))
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS), help="comma-separated experiment names")
    parser.add_argument("--batch", type=int, default=64, help="batch per process (the experiments' own: 64)")
    parser.add_argument("--warmup", type=int, default=10, help="GAN steps before timing")
    parser.add_argument("--steps", type=int, default=30, help="timed GAN steps")
    parser.add_argument("--data_dir", default=os.environ.get("LIGHTNING_GANS_DATA", str(REPO.parent / "shared/data")))
    parser.add_argument("--repeats", type=int, default=2, help="fits per case, the fastest reported")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per fit")
    parser.add_argument("--quiet_wait", type=float, default=10.0, help="max s to wait for an idle machine per fit")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--keep", default=None, help="directory for run dirs and logs (default: a temp dir)")
    args = parser.parse_args()
    ensure_old_tree()
    start = time.perf_counter()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_ddp-"))
    rows = measure(args, work)
    report = f"{table(rows)}\n\n{NOTES}\n\n{targets(rows)}"
    header = (
        f"batch {args.batch}/process, {args.warmup} warm-up + {args.steps} timed steps, best of {args.repeats}, "
        f"log_every_n_steps={args.warmup + max(1, args.steps // 2)}, gloo, 1 thread/process"
    )
    report = f"{header}\n\n{report}\n\nTotal wall time {time.perf_counter() - start:.0f} s; logs in {work}"
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
