"""Mode coverage of the toy GAN for every adversarial loss in ``lightning_gans.losses.LOSSES``.

For each loss × dataset (ring8, grid25) × seed, trains ``lightning_gans.models.GAN`` (MLP generator and
discriminator) for a fixed number of GAN steps (batches) in-process with a plain ``lightning.pytorch.Trainer``
(no logger, no checkpoints, no progress bar, ``torch.set_num_threads(1)`` per run so runs are comparable),
then scores 2,500 samples with :func:`datamodules.toy.toy_metrics` (modes covered, high-quality %; rules of
Srivastava et al. 2017 / Lin et al. 2018). Prints one markdown table row per loss × dataset: mean ± std over
seeds and the mean wall time of one run (Trainer construction + fit + evaluation).

Loss-specific settings (``LOSS_SETTINGS``) are applied only when ``GANModule.__init__`` accepts them, so the
script runs with today's losses and picks up options such as ``gradient_penalty``/``weight_clip`` once they
exist. Prints only, never asserts::

    .venv/bin/python benchmarks/bench_toy.py [--losses a,b] [--datasets ring8,grid25] [--seeds 3]
        [--steps 2000] [--workers 2] [--hidden 256,256,256] [--latent-dim 16] [--lr 1e-3] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import multiprocessing as mp
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # ``datamodules`` is importable from the repo root (as for the CLI)
    sys.path.insert(0, str(REPO))

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402

from datamodules.toy import MIXTURES, ToyDataModule, toy_metrics  # noqa: E402
from lightning_gans.losses import LOSSES  # noqa: E402
from lightning_gans.models import GAN  # noqa: E402
from lightning_gans.models.base import GANModule  # noqa: E402
from lightning_gans.models.options import GROUPS, LEGACY_OPTIONS  # noqa: E402
from lightning_gans.networks import MLPDiscriminator, MLPGenerator  # noqa: E402

EVAL_SAMPLES = 2500
NUM_SAMPLES = 100_000  # training points per run (an epoch is NUM_SAMPLES / batch_size steps)

# Defaults of the sweep: the toy_grid experiment's networks and optimiser (experiments/toy_grid.yaml).
DEFAULTS: dict[str, Any] = {
    "hidden": [128, 128, 128],
    "latent_dim": 16,
    "lr": 1e-3,
    "betas": (0.5, 0.999),
    "batch_size": 256,
}

# Per-loss settings. ``module`` entries are GANModule options by their field names (grouped by ``grouped``),
# applied only if GANModule accepts them (the first accepted entry of ``one_of`` wins); ``optim`` entries override
# the Adam settings above.
# WGAN-GP (Gulrajani et al. 2017, Alg. 1): λ = 10, n_critic = 5, Adam lr 1e-4, β = (0, 0.9).
# WGAN weight clipping (Arjovsky et al. 2017, Alg. 1): c = 0.01, n_critic = 5.
LOSS_SETTINGS: dict[str, dict[str, Any]] = {
    "wasserstein": {
        "module": {"n_critic": 5},
        "one_of": [{"gradient_penalty": 10.0}, {"weight_clip": 0.01}],
        "optim": {"lr": 1e-4, "betas": (0.0, 0.9)},
    },
}


# The configuration that reaches the VEEGAN/PacGAN level on grid25 here (docs/results.md; the same settings
# as experiments/toy_grid25_recommended.yaml): non-saturating loss, R1 γ = 0.1 (Mescheder et al. 2018), sampling
# from an EMA of G (decay 0.999; Yazıcı et al. 2019), ReLU MLPs 3×256, Adam 1e-3 β (0.5, 0.999), batch 256.
RECOMMENDED: dict[str, Any] = {
    "label": "recommended",
    "loss": "non_saturating",
    "steps": 10_000,
    "description": "non_saturating + R1 γ 0.1 + EMA 0.999, ReLU MLP 3×256, Adam 1e-3 β1 0.5, batch 256, z 16",
    "cfg": {
        "hidden": [256, 256, 256],
        "hidden_d": [],
        "latent_dim": 16,
        "lr": 1e-3,
        "betas": (0.5, 0.999),
        "batch_size": 256,
        "n_critic": 0,
        "ema_decay": 0.999,
        "module_kw": {"r1_gamma": 0.1},
        "gen_kw": {"negative_slope": 0.0},
        "disc_kw": {"negative_slope": 0.0},
    },
}


def accepted_kwargs() -> dict[str, inspect.Parameter]:
    """GANModule's options today: its keyword arguments and the fields of its option groups (by field name)."""
    params = dict(inspect.signature(GANModule.__init__).parameters)
    for name, (group, field) in LEGACY_OPTIONS.items():
        if group in params:
            kind = next(f for f in dataclasses.fields(GROUPS[group]) if f.name == field)
            params[name] = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind.type)
    return params


def grouped(options: dict[str, Any]) -> dict[str, Any]:
    """Flat option names (``n_critic``, ``ema_decay``) as GANModule's init arguments (``schedule=Schedule(…)``)."""
    out: dict[str, Any] = {k: v for k, v in options.items() if k not in LEGACY_OPTIONS}
    fields: dict[str, dict[str, Any]] = {}
    for name in options.keys() & LEGACY_OPTIONS.keys():
        group, field = LEGACY_OPTIONS[name]
        fields.setdefault(group, {})[field] = options[name]
    out.update({group: GROUPS[group](**values) for group, values in fields.items()})
    return out


def _coerce(param: inspect.Parameter, value: Any) -> Any:
    """A bool switch (``gradient_penalty: bool``) gets True; numeric options keep their value."""
    annotation = str(param.annotation)
    if "bool" in annotation and "float" not in annotation and "int" not in annotation:
        return bool(value)
    return value


def loss_settings(loss: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(GANModule kwargs, optimiser overrides, notes) for ``loss`` given what GANModule accepts."""
    spec = LOSS_SETTINGS.get(loss, {})
    params = accepted_kwargs()
    module: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in spec.get("module", {}).items():
        if key in params:
            module[key] = _coerce(params[key], value)
        else:
            notes.append(f"{loss}: GANModule has no {key!r}, skipped")
    alternatives = spec.get("one_of", [])
    for option in alternatives:
        if all(k in params for k in option):
            module.update({k: _coerce(params[k], v) for k, v in option.items()})
            break
    else:
        if alternatives:
            wanted = " or ".join("/".join(o) for o in alternatives)
            notes.append(f"{loss}: GANModule accepts none of {wanted}; trained unconstrained")
    return module, dict(spec.get("optim", {})), notes


def build(loss: str, dataset: str, cfg: dict[str, Any]) -> tuple[GAN, ToyDataModule]:
    module_kwargs, optim, _ = loss_settings(loss)
    module_kwargs.update(cfg.get("module_kw", {}))
    if cfg.get("n_critic"):
        module_kwargs["n_critic"] = cfg["n_critic"]
    lr, betas = optim.get("lr", cfg["lr"]), tuple(optim.get("betas", cfg["betas"]))
    if cfg.get("lr_override"):
        lr = cfg["lr"]

    def adam(params: Any) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr, betas=betas)

    latent = cfg["latent_dim"]
    generator = MLPGenerator(
        latent_dim=latent, hidden=cfg["hidden"], out_shape=[2], output="linear", init="torch", **cfg.get("gen_kw", {})
    )
    pack = int(module_kwargs.get("pack", 1))  # PacGAN: D sees `pack` points concatenated
    discriminator = MLPDiscriminator(
        in_shape=[2 * pack], hidden=cfg["hidden_d"] or cfg["hidden"], init="torch", **cfg.get("disc_kw", {})
    )
    model = GAN(
        generator=generator,
        discriminator=discriminator,
        latent_dim=latent,
        loss=loss,
        optimizer_g=adam,
        optimizer_d=adam,
        **grouped({**module_kwargs, "ema_decay": cfg.get("ema_decay")}),
    )
    data = ToyDataModule(dataset=dataset, num_samples=NUM_SAMPLES, batch_size=cfg["batch_size"], seed=cfg["seed"])
    return model, data


def run_one(label: str, loss: str, dataset: str, seed: int, steps: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Train one toy GAN for ``steps`` GAN steps and score it; returns the metrics and the wall time."""
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    pl.seed_everything(seed, verbose=False)
    model, data = build(loss, dataset, {**cfg, "seed": seed})
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(model, datamodule=data)
    torch.manual_seed(10_000 + seed)
    metrics = toy_metrics(model.sample(EVAL_SAMPLES), dataset)
    seconds = time.perf_counter() - start
    return {**metrics, "label": label, "dataset": dataset, "seed": seed, "steps": steps, "seconds": seconds}


def _mean_std(values: list[float], fmt: str) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):{fmt}} ± {std:{fmt}}"


def table(results: list[dict[str, Any]], labels: list[str], datasets: list[str]) -> str:
    lines = [
        "| configuration | dataset | steps | modes covered | high-quality % | wall time / run |",
        "|---|---|---|---|---|---|",
    ]
    for label in labels:
        for dataset in datasets:
            rows = [r for r in results if r["label"] == label and r["dataset"] == dataset]
            if not rows:
                continue
            modes = _mean_std([r["modes_covered"] for r in rows], ".1f")
            quality = _mean_std([r["high_quality_pct"] for r in rows], ".1f")
            seconds = statistics.fmean(r["seconds"] for r in rows)
            lines.append(
                f"| {label} | {dataset} | {rows[0]['steps']} | {modes} / {rows[0]['num_modes']} | {quality} "
                f"| {seconds:.1f} s |"
            )
    return "\n".join(lines)


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _key_values(items: list[str]) -> dict[str, Any]:
    """``["pack=4", "label_smoothing=0.1"]`` → ``{"pack": 4, "label_smoothing": 0.1}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--losses", default=",".join(LOSSES), help=f"comma list (default: all of {list(LOSSES)})")
    p.add_argument("--datasets", default="ring8,grid25", help=f"comma list of {sorted(MIXTURES)}")
    p.add_argument("--seeds", type=int, default=3, help="seeds per loss × dataset (0, 1, …)")
    p.add_argument("--steps", type=int, default=2000, help="GAN steps (batches) per run")
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (processes, 1 thread each)")
    p.add_argument("--hidden", default=",".join(map(str, DEFAULTS["hidden"])), help="MLP widths of G (and D)")
    p.add_argument("--hidden-d", default="", help="MLP widths of D (default: --hidden)")
    p.add_argument("--latent-dim", type=int, default=DEFAULTS["latent_dim"])
    p.add_argument("--lr", type=float, default=None, help="Adam lr (default 1e-3, or the loss's own setting)")
    p.add_argument("--beta1", type=float, default=DEFAULTS["betas"][0])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--n-critic", type=int, default=0, help="override n_critic for every loss (0: per-loss)")
    p.add_argument("--ema-decay", type=float, default=None, help="sample from an EMA of G (e.g. 0.999)")
    p.add_argument(
        "--recommended-steps",
        type=int,
        default=RECOMMENDED["steps"],
        help=f"steps of the '{RECOMMENDED['label']}' row (0: skip it)",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="GANModule kwarg, e.g. pack=4")
    p.add_argument("--gen", action="append", default=[], metavar="KEY=VALUE", help="MLPGenerator kwarg")
    p.add_argument("--disc", action="append", default=[], metavar="KEY=VALUE", help="MLPDiscriminator kwarg")
    args = p.parse_args(argv)
    try:
        args.module_kw, args.gen_kw, args.disc_kw = _key_values(args.set), _key_values(args.gen), _key_values(args.disc)
    except ValueError as err:
        p.error(str(err))
    args.losses, args.datasets = _csv(args.losses), _csv(args.datasets)
    unknown = [x for x in args.losses if x not in LOSSES] + [x for x in args.datasets if x not in MIXTURES]
    if unknown:
        p.error(f"unknown loss/dataset {unknown}; losses: {list(LOSSES)}, datasets: {sorted(MIXTURES)}")
    if args.seeds < 1 or args.steps < 1 or args.workers < 1:
        p.error("--seeds, --steps and --workers must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = {
        "hidden": [int(h) for h in _csv(args.hidden)],
        "hidden_d": [int(h) for h in _csv(args.hidden_d)],
        "latent_dim": args.latent_dim,
        "lr": args.lr if args.lr is not None else DEFAULTS["lr"],
        "lr_override": args.lr is not None,
        "betas": (args.beta1, DEFAULTS["betas"][1]),
        "batch_size": args.batch_size,
        "n_critic": args.n_critic,
        "ema_decay": args.ema_decay,
        "module_kw": args.module_kw,
        "gen_kw": args.gen_kw,
        "disc_kw": args.disc_kw,
    }
    jobs = [
        (loss, loss, ds, seed, args.steps, cfg)
        for loss in args.losses
        for ds in args.datasets
        for seed in range(args.seeds)
    ]
    labels = list(args.losses)
    if args.recommended_steps:
        rec_cfg = {**cfg, **RECOMMENDED["cfg"], "lr_override": True}
        label = RECOMMENDED["label"]
        labels.append(label)
        jobs += [
            (label, RECOMMENDED["loss"], ds, seed, args.recommended_steps, rec_cfg)
            for ds in args.datasets
            for seed in range(args.seeds)
        ]
    for loss in args.losses:
        module, optim, notes = loss_settings(loss)
        for note in notes:
            print(f"note: {note}")
        if module or optim:
            print(f"{loss}: GANModule kwargs {module}, optimiser {optim}")
    print(
        f"# toy GAN: {args.steps} steps/run, {args.seeds} seed(s), batch {cfg['batch_size']}, MLP {cfg['hidden']}"
        f"{' / D ' + str(cfg['hidden_d']) if cfg['hidden_d'] else ''}, z {cfg['latent_dim']}, "
        f"Adam lr {cfg['lr']:g} β1 {cfg['betas'][0]:g}"
        f"{', EMA ' + str(cfg['ema_decay']) if cfg['ema_decay'] else ''}"
        f"{''.join(f', {k}={v}' for k, v in cfg['module_kw'].items())}"
        f"{''.join(f', G {k}={v}' for k, v in cfg['gen_kw'].items())}"
        f"{''.join(f', D {k}={v}' for k, v in cfg['disc_kw'].items())}, "
        f"{EVAL_SAMPLES} eval samples, "
        f"{args.workers} worker(s) × 1 thread",
        flush=True,
    )
    if args.recommended_steps:
        print(f"# {RECOMMENDED['label']}: {RECOMMENDED['description']}, {args.recommended_steps} steps/run", flush=True)
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    pool = ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) if args.workers > 1 else None
    try:
        outcomes = pool.map(run_one, *zip(*jobs)) if pool else (run_one(*job) for job in jobs)
        for r in outcomes:
            results.append(r)
            print(
                f"  {r['label']:>16} {r['dataset']:>6} seed {r['seed']}: {r['modes_covered']}/{r['num_modes']} modes, "
                f"{r['high_quality_pct']:.1f}% HQ, {r['seconds']:.1f} s",
                flush=True,
            )
    finally:
        if pool:
            pool.shutdown()
    print()
    print(table(results, labels, args.datasets))
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s for {len(jobs)} runs")


if __name__ == "__main__":
    main()
