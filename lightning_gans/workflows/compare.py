"""``lightning-gans compare``: a leaderboard of runs by FID (or KID / IS / intra-FID / PRDC), one table per protocol.

    lightning-gans compare runs/ [--metric fid] [--out compare] [--log-y]
    lightning-gans compare --wandb-project entity/lightning-gans        # online only

Each argument is a run directory (holding ``metrics.jsonl``) or any parent of run directories. Only lines with
``"kind": "image_quality"`` or ``"kind": "eval"`` are read; their ``protocol`` dict (dataset, split, n, extractor,
weights, image_size, resize) decides which scores may be compared, so runs are ranked only against runs evaluated
under the identical protocol. Writes ``<out>.md`` (the tables) and ``<out>.png`` (metric vs step per run).

Spreads: a score with a std (``fid_std`` from ``eval --repeats``, KID's subset std) is shown as ``mean ± std``, and
a row whose best score differs from the row ranked above it by less than their combined spread
(√(σ₁² + σ₂²)) is marked "within spread": those two runs are not told apart by this evaluation.
"""

from __future__ import annotations

import json
import math
import netrc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning_gans.errors import CompareError  # noqa: F401 - re-exported (old import path)
from lightning_gans.evaluation import HIGHER_IS_BETTER

QUALITY_KINDS = ("image_quality", "eval")
LABELS = {
    "fid": "FID",
    "is": "IS",
    "kid": "KID",
    "intra_fid": "intra-FID",
    "prdc_precision": "precision",
    "prdc_recall": "recall",
    "prdc_density": "density",
    "prdc_coverage": "PRDC coverage",
}
# Every score read from metrics.jsonl: the rankable ones and their spreads (``<key>_std``: repeats; KID's own std).
METRICS = (*LABELS, *(f"{key}_std" for key in LABELS))
PROTOCOL_ORDER = ("dataset", "split", "n", "extractor", "weights", "image_size", "resize")
FIELD_NAMES = {"n": "N", "weights": "extractor weights", "image_size": "image size"}
WANDB_TIMEOUT_S = 15


@dataclass
class Evaluation:
    """One image-quality line: its step and its scores keyed by metric (``fid``, ``is``, ``kid``, ``kid_std``)."""

    step: int
    values: dict[str, float]


@dataclass
class RunRecord:
    """One run: identity from its config and its evaluations grouped by protocol key."""

    name: str
    experiment: str
    model: str
    data: str
    seed: Any
    evaluations: dict[str, list[Evaluation]] = field(default_factory=dict)

    def best(self, key: str, metric: str) -> Evaluation | None:
        """The evaluation with the best finite ``metric`` under protocol ``key`` (ties: earliest step)."""
        evals = [e for e in self.evaluations.get(key, []) if metric in e.values]
        if not evals:
            return None
        sign = -1.0 if HIGHER_IS_BETTER[metric] else 1.0
        return min(evals, key=lambda e: (sign * e.values[metric], e.step))

    def curve(self, key: str, metric: str) -> list[tuple[int, float]]:
        """``(step, value)`` of ``metric`` sorted by step; a step evaluated twice keeps its last line."""
        by_step = {e.step: e.values[metric] for e in self.evaluations.get(key, []) if metric in e.values}
        return sorted(by_step.items())


def protocol_key(protocol: dict[str, Any]) -> str:
    return json.dumps(protocol, sort_keys=True, default=str)


def describe_protocol(protocol: dict[str, Any]) -> str:
    """``dataset=mnist, split=test, n=10000, …`` in a fixed field order (unknown fields last)."""
    names = [k for k in PROTOCOL_ORDER if k in protocol] + sorted(k for k in protocol if k not in PROTOCOL_ORDER)
    return ", ".join(f"{k}={protocol[k]}" for k in names) or "no protocol recorded"


def explain_differences(protocols: list[dict[str, Any]]) -> str:
    """Why these protocols are not comparable, e.g. ``different N: 10000 vs 1001; different extractor weights: …``."""
    names = [k for k in PROTOCOL_ORDER if any(k in p for p in protocols)]
    names += sorted({k for p in protocols for k in p} - set(PROTOCOL_ORDER))
    parts = []
    for name in names:
        values = list(dict.fromkeys(str(p.get(name, "unset")) for p in protocols))
        if len(values) > 1:
            parts.append(f"different {FIELD_NAMES.get(name, name)}: {' vs '.join(values)}")
    return "; ".join(parts) or "different protocols"


# ---------------------------------------------------------------------- local run directories
def find_run_dirs(paths: list[str]) -> list[Path]:
    """Every directory at or below ``paths`` that holds a ``metrics.jsonl`` (sorted, de-duplicated)."""
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CompareError(f"no such run or directory: {raw}")
        if path.is_file():
            path = path.parent
        for metrics in sorted(path.rglob("metrics.jsonl")):
            found.setdefault(metrics.parent.resolve(), None)
    return list(found)


def _last(class_path: Any) -> str:
    return str(class_path).rsplit(".", 1)[-1] if class_path else "?"


def _load_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def _scores(row: dict[str, Any]) -> dict[str, float]:
    """``{"fid/lenet-mnist/10k": 12.3, …}`` → ``{"fid": 12.3, …}`` (first key per metric, finite numbers only)."""
    values: dict[str, float] = {}
    for key, value in row.items():
        metric = key.split("/", 1)[0]
        if metric in METRICS and "/" in key and metric not in values:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                values[metric] = float(value)
    return values


def read_run(run_dir: Path, name: str, protocols: dict[str, dict[str, Any]]) -> RunRecord:
    """Parse one run directory; protocols met are added to ``protocols`` (key → dict)."""
    config = _load_config(run_dir)
    data = config.get("data") or {}
    record = RunRecord(
        name=name,
        experiment=str(config.get("experiment") or run_dir.parent.name),
        model=_last((config.get("model") or {}).get("class_path")),
        data=_last(data.get("class_path") if isinstance(data, dict) else None),
        seed=config.get("seed_everything", "?"),
    )
    with open(run_dir / "metrics.jsonl") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written by a live run
            if not isinstance(row, dict) or row.get("kind") not in QUALITY_KINDS:
                continue
            values = _scores(row)
            if not values:
                continue
            protocol = row.get("protocol") if isinstance(row.get("protocol"), dict) else {}
            key = protocol_key(protocol)
            protocols.setdefault(key, protocol)
            step = row.get("step")
            step = step if isinstance(step, int) and not isinstance(step, bool) else -1  # -1: step not recorded
            record.evaluations.setdefault(key, []).append(Evaluation(step, values))
    return record


def _short_names(run_dirs: list[Path]) -> list[str]:
    """``<experiment dir>/<timestamp>``; the full path where that is ambiguous."""
    names = [f"{p.parent.name}/{p.name}" for p in run_dirs]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, run_dirs)]


# ---------------------------------------------------------------------- W&B project
def _wandb_api_key_present() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return path.is_file() and netrc.netrc(str(path)).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def read_wandb_project(project: str, protocols: dict[str, dict[str, Any]]) -> list[RunRecord]:
    """Runs of a W&B project (online only). W&B holds no protocol dict: runs are grouped by the metric key suffix
    (``fid/<extractor>/<n>``) and the config's data module."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        raise CompareError(f"--wandb-project needs W&B online, but WANDB_MODE={mode}; compare local run dirs instead")
    if not _wandb_api_key_present():
        raise CompareError("--wandb-project needs a W&B API key (WANDB_API_KEY or `wandb login`); none found")
    import wandb

    records = []
    try:
        api = wandb.Api(timeout=WANDB_TIMEOUT_S)
        for run in api.runs(project):
            keys = [k for k in run.summary.keys() if k.split("/", 1)[0] in METRICS and k.count("/") == 2]
            if not keys:
                continue
            config = run.config.get("config", run.config)
            data = _last((config.get("data") or {}).get("class_path"))
            record = RunRecord(
                name=f"wandb:{run.name}",
                experiment=str(config.get("experiment") or run.group or "?"),
                model=_last((config.get("model") or {}).get("class_path")),
                data=data,
                seed=config.get("seed_everything", "?"),
            )
            for suffix in sorted({k.split("/", 1)[1] for k in keys}):
                extractor, n = suffix.split("/")
                protocol = {"dataset": data, "n": n, "extractor": extractor, "source": "wandb"}
                key = protocol_key(protocol)
                protocols.setdefault(key, protocol)
                by_step: dict[int, dict[str, float]] = {}
                for metric_key in (k for k in keys if k.endswith("/" + suffix)):
                    for row in run.scan_history(keys=[metric_key]):
                        step = int(row.get("trainer/global_step", row.get("_step", 0)))
                        by_step.setdefault(step, {}).update(_scores({metric_key: row.get(metric_key)}))
                record.evaluations[key] = [Evaluation(s, v) for s, v in sorted(by_step.items()) if v]
            records.append(record)
    except Exception as err:  # network/auth/API errors all mean "could not read the project"
        raise CompareError(f"could not read W&B project {project!r}: {type(err).__name__}: {err}") from err
    return records


# ---------------------------------------------------------------------- report
def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if metric.startswith(("kid", "prdc")) else f"{value:.2f}"


def render_markdown(
    records: list[RunRecord], protocols: dict[str, dict[str, Any]], metric: str, searched: list[str]
) -> str:
    """The leaderboard: an explanatory line when several protocols are present, then one table per protocol."""
    label = LABELS[metric]
    lines = [
        f"# {label} leaderboard",
        "",
        f"Searched {'; '.join(searched)}: {len(records)} with image-quality evaluations.",
        "",
    ]
    keys = sorted(protocols, key=lambda k: (-sum(k in r.evaluations for r in records), k))
    if len(keys) > 1:
        why = explain_differences([protocols[k] for k in keys])
        lines += [f"Runs under different protocols are not ranked together ({why}).", ""]
    others = [m for m in LABELS if m != metric]
    for i, key in enumerate(keys, 1):
        ranked = [(r, r.best(key, metric)) for r in records]
        ranked = [(r, e) for r, e in ranked if e is not None]
        ranked.sort(key=lambda re: ((-1 if HIGHER_IS_BETTER[metric] else 1) * re[1].values[metric], re[0].name))
        lines += [f"## Protocol {i}: {describe_protocol(protocols[key])}", ""]
        if not ranked:
            lines += [f"No {label} values under this protocol.", ""]
            continue
        lines += _ranked_table(
            ranked, protocols[key], metric, [m for m in others if any(m in e.values for _, e in ranked)]
        )
        lines.append("")
    return "\n".join(lines)


def _cell(values: dict[str, float], metric: str) -> str:
    cell = _fmt(values.get(metric), metric)
    if metric in values and f"{metric}_std" in values:
        cell += f" ± {_fmt(values[f'{metric}_std'], metric)}"
    return cell


def within_spread(a: dict[str, float], b: dict[str, float], metric: str) -> bool:
    """Whether two evaluations' ``metric`` differ by less than their combined spread (√(σa² + σb²)); False when
    either has no spread recorded."""
    spreads = [values.get(f"{metric}_std") for values in (a, b)]
    if any(s is None for s in spreads):
        return False
    return abs(a[metric] - b[metric]) < math.hypot(*spreads)


def _ranked_table(
    ranked: list[tuple[RunRecord, Evaluation]], protocol: dict[str, Any], metric: str, shown: list[str]
) -> list[str]:
    label = LABELS[metric]
    header = ["rank", "run", "experiment", "model", "dataset", "seed", f"best {label}", "step", "vs. above"]
    header += [LABELS[m] for m in shown]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if h == "rank" else "---" for h in header) + "|"]
    for rank, (run, ev) in enumerate(ranked, 1):
        dataset = protocol.get("dataset") or run.data
        above = ranked[rank - 2][1].values if rank > 1 else None
        mark = "within spread" if above is not None and within_spread(above, ev.values, metric) else ""
        cells = [str(rank), run.name, run.experiment, run.model, str(dataset), str(run.seed)]
        cells += [_cell(ev.values, metric), str(ev.step), mark]
        cells += [_cell(ev.values, m) for m in shown]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plot_curves(
    records: list[RunRecord], protocols: dict[str, dict[str, Any]], metric: str, path: Path, log_y: bool = False
) -> Path:
    """``metric`` vs step per run, one subplot per protocol (Agg canvas; no pyplot global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = sorted(protocols, key=lambda k: (-sum(k in r.evaluations for r in records), k))
    ncols = min(2, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig = Figure(figsize=(6.5 * ncols, 4.2 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i, (ax, key) in enumerate(zip(axes, keys), 1):
        values: list[float] = []
        for run in records:
            curve = run.curve(key, metric)
            if curve:
                steps, ys = zip(*curve)
                ax.plot(steps, ys, marker="o", markersize=3, label=run.name)
                values += ys
        if log_y and values and min(values) > 0:
            ax.set_yscale("log")
        ax.set_title(f"Protocol {i}: {describe_protocol(protocols[key])}", fontsize=7, wrap=True)
        ax.set_xlabel("step")
        ax.set_ylabel(LABELS[metric])
        ax.grid(alpha=0.3)
        if values:
            ax.legend(fontsize=6)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def compare(
    paths: list[str], metric: str = "fid", out: str = "compare", wandb_project: str | None = None, log_y: bool = False
) -> tuple[str, Path, Path]:
    """Read runs, write ``<out>.md`` and ``<out>.png``; returns ``(markdown, md_path, png_path)``."""
    if metric not in LABELS:
        raise CompareError(f"--metric must be one of {', '.join(LABELS)}, got {metric!r}")
    protocols: dict[str, dict[str, Any]] = {}
    records: list[RunRecord] = []
    searched: list[str] = []
    if wandb_project:
        records += read_wandb_project(wandb_project, protocols)
        searched.append(f"W&B project {wandb_project} ({len(records)} runs with scores)")
    if paths:
        run_dirs = find_run_dirs(paths)
        searched.append(f"{', '.join(paths)} ({len(run_dirs)} run dirs with metrics.jsonl)")
        for run_dir, name in zip(run_dirs, _short_names(run_dirs)):
            records.append(read_run(run_dir, name, protocols))
    records = [r for r in records if r.evaluations]
    if not records:
        raise CompareError(
            f"no image-quality evaluations (metrics.jsonl lines with kind {' or '.join(QUALITY_KINDS)}) found; "
            f"searched: {'; '.join(searched)}"
        )
    markdown = render_markdown(records, protocols, metric, searched)
    md_path, png_path = Path(f"{out}.md"), Path(f"{out}.png")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown + "\n")
    plot_curves(records, protocols, metric, png_path, log_y=log_y)
    return markdown, md_path, png_path
