"""Composable experiment files (``lightning_gans/config_files.py``, docs/configs.md).

* Every experiment still resolves to the hyperparameters recorded in ``tests/snapshots/experiment_configs.json``
  (``benchmarks/config_snapshot.py``, taken before the experiments became overlays), through ``RENAMED_KEYS``.
* The composition rules: defaults order and override, nested defaults, named callbacks, cycles and missing files as
  one ``ConfigError`` line, the experiment name, stacked ``--config`` flags.
* Shared blocks exist once: the lenet-mnist quality callback and its checkpoint live in ``experiments/callbacks/``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import jsonargparse
import pytest
import yaml

from lightning_gans import config_files
from lightning_gans.cli import RUN_DIR_ENV, GANLightningCLI, main
from lightning_gans.config_files import compose_file
from lightning_gans.errors import ConfigError
from lightning_gans.models.options import LEGACY_OPTIONS

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
SNAPSHOT = json.loads((REPO / "tests" / "snapshots" / "experiment_configs.json").read_text())

# Keys whose name changed since the snapshot: old dotted key → new dotted key (e.g. when GANModule options are
# regrouped). A value change is never a rename: fix the YAML (or the snapshot, deliberately) instead.
RENAMED_KEYS: dict[str, str] = {
    f"model.init_args.{old}": f"model.init_args.{group}.{field}" for old, (group, field) in LEGACY_OPTIONS.items()
}
# Model options added after the snapshot, with the default every experiment must still resolve to (off: the snapshot's
# behaviour). An experiment that sets one is a value change and fails.
ADDED_OPTIONS: dict[str, object] = {
    "model.init_args.compile": False, "model.init_args.channels_last": False,
    "model.init_args.feature_matching_weight": 0.0,  # CycleGAN/DiscoGAN (issue 20, item 2)
    "model.init_args.d_objective": "separate",  # SGAN (issue 20, item 3): the book's separate D steps
    **{f"model.init_args.{g}.init_args.skips": False for g in ("G_AB", "G_BA")},  # DiscoGANGenerator's U-Net option
    # ProGANDiscriminator's minibatch discrimination (issue 20, item 6); DCGAN's D had it before the snapshot
    "model.init_args.discriminator.init_args.minibatch_kernels": 0,
    "model.init_args.discriminator.init_args.minibatch_kernel_dim": 5,
}  # fmt: skip
# ImageQualityCallback options added after the snapshot (PRDC's k, repeats, a reference stats file), at their defaults.
ADDED_CALLBACK_OPTIONS: dict[str, object] = {"prdc_k": 5, "repeats": 1, "reference": None}
ADDED_CALLBACK_KEY = re.compile(r"trainer\.callbacks\.\d+\.init_args\.(prdc_k|repeats|reference)")
# Loader options added after the snapshot (datamodules/_loading.py, the decoded cache), at their defaults; and
# num_workers, whose default became "auto" (the image experiments' explicit 2 was dropped for it too).
ADDED_DATA_OPTIONS: dict[str, object] = {
    "data.init_args.persistent_workers": True, "data.init_args.pin_memory": None,
    "data.init_args.prefetch_factor": 2, "data.init_args.cache": False, "data.init_args.cache_dir": None,
}  # fmt: skip
WORKERS_KEY, WORKERS_BEFORE = "data.init_args.num_workers", (0, 2)
# --checkpoint_every_n_steps (docs/resuming.md), added after the snapshot: unset, except in these recipes.
STEP_CHECKPOINTS = {f"{n}_recommended": 500 for n in ("cgan_mnist", "dcgan_mnist", "gan_mnist", "wgan_gp_mnist",
                                                       "toy_grid25")}  # fmt: skip
# experiments/*.yaml added after the snapshot was taken (each needs its own test of its values, if any).
NEW_EXPERIMENTS: list[str] = [
    "toy_grid25_default",  # its values: tests/test_summary.py
    "discogan_mnist_edges_recommended",  # test_discogan_recipe_is_the_chapter_config_with_unet_generators
    "sgan_mnist_salimans",  # test_salimans_sgan_recipe_values
]
# Deliberate value changes (issue 20, item 3): the semi-supervised experiments select best.ckpt on a validation split
# carved from the unlabelled pool (validation_fraction 1/12 = 5,000 images) instead of on the test images, and report
# the test accuracy of the last and the selected weights at the end (ClassifierTestReport, appended last).
VALIDATION_SELECTED = ("sgan_mnist", "sgan_mnist_feature_matching", "supervised_baseline_mnist")
# Deliberate recipe changes (issue 20, items 4 and 6): the recommended DCGAN adds minibatch discrimination and
# one-sided label smoothing, the recommended ProGAN minibatch discrimination (their YAML headers cite them;
# docs/results.md, "DCGAN recipe across seeds", "ProGAN vs DCGAN under one CPU budget"). Exactly these keys.
RECIPE_CHANGES: dict[str, dict[str, object]] = {
    "dcgan_mnist_recommended": {
        "model.init_args.tricks.label_smoothing": 0.1,
        "model.init_args.discriminator.init_args.minibatch_kernels": 50,
    },
    "progan_mnist_recommended": {  # and back to the book's 16k images per phase (the YAML header says why)
        "model.init_args.discriminator.init_args.minibatch_kernels": 50,
        "trainer.callbacks.0.init_args.images_per_phase": 16000,
    },
}
# *_recommended.yaml whose book twin is not the name without the suffix.
TWINS = {"toy_grid25_recommended": "toy_grid"}


def _snapshot_module():
    spec = importlib.util.spec_from_file_location("config_snapshot", REPO / "benchmarks" / "config_snapshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


config_snapshot = _snapshot_module()


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The environment of ``benchmarks/config_snapshot.py``: data root ./data, W&B offline, run from the repo."""
    monkeypatch.setenv("LIGHTNING_GANS_DATA", "./data")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("LIGHTNING_GANS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(sys, "argv", ["lightning-gans"])
    monkeypatch.setenv(RUN_DIR_ENV, "")  # restored after the test, whatever the CLI sets meanwhile
    monkeypatch.delenv(RUN_DIR_ENV)
    monkeypatch.chdir(REPO)


def resolved(*configs: Path | str, extra: tuple[str, ...] = ()) -> dict[str, object]:
    """Flattened ``--print_config`` values of ``--config`` flags, JSON-normalised like the snapshot."""
    args = [a for c in configs[1:] for a in ("--config", str(c))]
    values = config_snapshot.resolved(configs[0], *args, *extra)
    return json.loads(json.dumps(values, default=str))


def snapshot(name: str) -> dict[str, object]:
    """The snapshot's values of experiment ``name`` under today's key names (``RENAMED_KEYS``)."""
    values = {RENAMED_KEYS.get(k, k): v for k, v in SNAPSHOT[name].items()}
    if name in VALIDATION_SELECTED:
        values = {k: "val_accuracy" if k.endswith(".init_args.monitor") and v == "test_accuracy" else v
                  for k, v in values.items()}  # fmt: skip
        report = 1 + max(int(k.split(".")[2]) for k in values if k.startswith("trainer.callbacks."))
        at = f"trainer.callbacks.{report}"
        values |= {"data.init_args.validation_fraction": 0.08333, f"{at}.init_args.monitor": "val_accuracy"}
        values[f"{at}.class_path"] = "lightning_gans.callbacks.ClassifierTestReport"
    return {"checkpoint_every_n_steps": STEP_CHECKPOINTS.get(name), **values, **RECIPE_CHANGES.get(name, {})}


def _diff(expected: dict, actual: dict) -> list[str]:
    added = {k: v for k, v in {**ADDED_OPTIONS, **ADDED_DATA_OPTIONS}.items() if k in actual}
    added |= {k: ADDED_CALLBACK_OPTIONS[m[1]] for k in actual if (m := ADDED_CALLBACK_KEY.fullmatch(k))}
    expected = {**added, **expected}
    if expected.get(WORKERS_KEY) in WORKERS_BEFORE and actual.get(WORKERS_KEY) == "auto":
        expected[WORKERS_KEY] = "auto"
    keys = sorted(set(expected) | set(actual))
    return [f"{k}: {expected.get(k, '<absent>')!r} → {actual.get(k, '<absent>')!r}" for k in keys
            if expected.get(k, "<absent>") != actual.get(k, "<absent>")]  # fmt: skip


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------ values are unchanged
def test_every_experiment_is_in_the_snapshot() -> None:
    names = {p.stem for p in EXPERIMENTS.glob("*.yaml")}
    assert names - set(SNAPSHOT) == set(NEW_EXPERIMENTS), "add new experiments to NEW_EXPERIMENTS"
    assert set(SNAPSHOT) <= names, f"experiments renamed or removed: {sorted(set(SNAPSHOT) - names)}"
    assert set(RENAMED_KEYS).isdisjoint(RENAMED_KEYS.values())


@pytest.mark.parametrize("name", sorted(SNAPSHOT))
def test_experiment_resolves_to_snapshot(name: str, env: None) -> None:
    expected = snapshot(name)
    actual = resolved(EXPERIMENTS / f"{name}.yaml")
    assert not _diff(expected, actual), "\n".join([f"{name} changed:", *_diff(expected, actual)])
    assert not any(k == "defaults" or k.endswith(".defaults") for k in actual)  # nothing left to resolve


# ------------------------------------------------------------------------------------ overlays
def _overlays() -> list[tuple[str, str]]:
    """(overlay, base) for every experiments/*.yaml whose defaults name another experiments/*.yaml."""
    pairs = []
    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults") or []
        pairs += [(path.stem, Path(d).stem) for d in defaults if Path(d).parent == Path(".")]
    return pairs


def test_recommended_recipes_are_overlays_on_their_book_twin() -> None:
    recommended = sorted(p.stem for p in EXPERIMENTS.glob("*_recommended.yaml"))
    assert recommended
    pairs = dict(_overlays())
    for name in recommended:
        assert pairs.get(name) == TWINS.get(name, name.removesuffix("_recommended")), name


@pytest.mark.parametrize(("overlay", "base"), _overlays(), ids=[o for o, _ in _overlays()])
def test_stacked_config_flags_equal_the_overlay(overlay: str, base: str, env: None) -> None:
    """``--config BASE --config OVERLAY`` (the issue's form) gives the overlay file's values."""
    stacked = resolved(EXPERIMENTS / f"{base}.yaml", EXPERIMENTS / f"{overlay}.yaml")
    assert not _diff(resolved(EXPERIMENTS / f"{overlay}.yaml"), stacked)


def test_trainer_piece_stacks_on_an_experiment(env: None) -> None:
    values = resolved(EXPERIMENTS / "gan_mnist.yaml", EXPERIMENTS / "trainer" / "ddp_cpu.yaml")
    trainer = (values["trainer.accelerator"], values["trainer.devices"], values["trainer.strategy"])
    assert trainer == ("cpu", 2, "gan_ddp")
    changed = {line.split(":")[0] for line in _diff(resolved(EXPERIMENTS / "gan_mnist.yaml"), values)}
    assert changed == {"trainer.accelerator", "trainer.devices", "trainer.strategy"}


# ------------------------------------------------------------------------------------ composition rules
def test_defaults_order_and_override(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "x: 1e-3\ny: a\nnest: {p: 1, q: 1}\nitems: [1, 2]\n")
    _write(tmp_path / "b.yaml", "y: b\nz: b\nnest: {q: 2}\nitems: [3]\n")
    top = _write(tmp_path / "top.yaml", "defaults: [a.yaml, b.yaml]\nz: top\nitems+: [4]\n")
    # each default before the file naming it; later ones override earlier ones; mappings merge; lists replace;
    # read with jsonargparse's YAML rules (1e-3 is a float), like a --config file
    assert compose_file(top) == {"x": 0.001, "y": "b", "nest": {"p": 1, "q": 2}, "items": [3, 4], "z": "top"}


def test_nested_defaults_depth_first_relative_to_their_file(tmp_path: Path) -> None:
    _write(tmp_path / "pieces" / "inner.yaml", "order: [inner]\nfrom_inner: true\n")
    _write(tmp_path / "pieces" / "middle.yaml", "defaults: inner.yaml\norder+: [middle]\n")
    _write(tmp_path / "other.yaml", "order+: [other]\n")
    top = _write(tmp_path / "top.yaml", "defaults: [pieces/middle.yaml, other.yaml]\norder+: [top]\n")
    assert compose_file(top) == {"order": ["inner", "middle", "other", "top"], "from_inner": True}


def test_another_class_path_replaces_the_mapping(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "opt: {class_path: torch.optim.Adam, init_args: {lr: 1, betas: [0.5, 0.9]}}\n")
    top = _write(tmp_path / "b.yaml", "defaults: a.yaml\nopt: {class_path: torch.optim.SGD, init_args: {lr: 2}}\n")
    assert compose_file(top)["opt"] == {"class_path": "torch.optim.SGD", "init_args": {"lr": 2}}
    same = _write(tmp_path / "c.yaml", "defaults: a.yaml\nopt: {init_args: {lr: 3}}\n")
    assert compose_file(same)["opt"] == {"class_path": "torch.optim.Adam", "init_args": {"lr": 3, "betas": [0.5, 0.9]}}


def test_named_callbacks_keep_order_change_by_name_and_drop_null(tmp_path: Path) -> None:
    _write(tmp_path / "pieces" / "q.yaml", "class_path: Q\ninit_args: {n: 10, every: 1}\n")
    _write(
        tmp_path / "book.yaml",
        "trainer:\n  callbacks:\n    grid: {class_path: G}\n    periodic: {class_path: P}\n"
        "    quality: {defaults: pieces/q.yaml, init_args: {every: 2}}\n    best: {class_path: B}\n",
    )
    overlay = _write(
        tmp_path / "overlay.yaml",
        "defaults: [book.yaml]\ntrainer:\n  callbacks:\n    periodic: null\n    quality: {init_args: {n: 5}}\n"
        "    extra: {class_path: E}\n",
    )
    assert compose_file(tmp_path / "book.yaml")["trainer"]["callbacks"][2] == {
        "class_path": "Q",
        "init_args": {"n": 10, "every": 2},
    }
    assert compose_file(overlay)["trainer"]["callbacks"] == [
        {"class_path": "G"},
        {"class_path": "Q", "init_args": {"n": 5, "every": 2}},
        {"class_path": "B"},
        {"class_path": "E"},
    ]
    # a named change without its base (e.g. a second --config flag, which replaces the list): one clear error
    lone = _write(tmp_path / "lone.yaml", "trainer:\n  callbacks:\n    quality: {init_args: {n: 5}}\n")
    with pytest.raises(ConfigError, match=r"lone\.yaml: trainer\.callbacks\.quality has no class_path"):
        compose_file(lone)


def test_list_item_pieces(tmp_path: Path) -> None:
    _write(tmp_path / "callbacks" / "q.yaml", "class_path: Q\ninit_args: {n: 10}\n")
    top = _write(
        tmp_path / "top.yaml",
        "trainer:\n  callbacks:\n    - {class_path: G}\n    - {defaults: callbacks/q.yaml, init_args: {n: 1}}\n",
    )
    assert compose_file(top)["trainer"]["callbacks"] == [
        {"class_path": "G"},
        {"class_path": "Q", "init_args": {"n": 1}},
    ]


def test_cycle_and_missing_default_are_one_config_error_line(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "defaults: [b.yaml]\n")
    _write(tmp_path / "b.yaml", "defaults: [sub/c.yaml]\n")
    _write(tmp_path / "sub" / "c.yaml", "defaults: [../a.yaml]\n")
    with pytest.raises(ConfigError) as cycle:
        compose_file(tmp_path / "a.yaml")
    assert "\n" not in str(cycle.value)
    assert "cyclic defaults" in str(cycle.value)
    assert all(name in str(cycle.value) for name in ("a.yaml", "b.yaml", "c.yaml"))

    missing = _write(tmp_path / "missing.yaml", "defaults: [pieces/nowhere.yaml]\n")
    with pytest.raises(ConfigError) as error:
        compose_file(missing)
    assert "\n" not in str(error.value)
    assert "missing.yaml" in str(error.value) and "nowhere.yaml not found" in str(error.value)

    bad = _write(tmp_path / "bad.yaml", "defaults: {a: 1}\n")
    with pytest.raises(ConfigError, match="takes a path or a list of paths"):
        compose_file(bad)


@pytest.mark.parametrize("case", ["cycle", "missing"])
def test_cli_prints_the_config_error_as_one_line(
    case: str, tmp_path: Path, env: None, capsys: pytest.CaptureFixture
) -> None:
    if case == "cycle":
        _write(tmp_path / "b.yaml", "defaults: [top.yaml]\n")
    top = _write(tmp_path / "top.yaml", "defaults: [b.yaml]\n" if case == "cycle" else "defaults: [gone.yaml]\n")
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(top), "--print_config"])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("lightning-gans: error: ")
    assert ("cyclic defaults" if case == "cycle" else "gone.yaml not found") in line


def test_relative_defaults_resolve_next_to_the_file_from_any_directory(
    tmp_path: Path, env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "mine" / "pieces" / "hinge.yaml", "model: {init_args: {loss: hinge}}\n")
    overlay = _write(
        tmp_path / "mine" / "toy_hinge.yaml",
        f"defaults: [{EXPERIMENTS / 'toy_grid.yaml'}, pieces/hinge.yaml]\ndata: {{init_args: {{dataset: ring8}}}}\n",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    values = resolved(overlay)
    assert not _diff(snapshot("toy_ring8_hinge"), values)


def test_install_is_idempotent() -> None:
    config_files.install()
    loader = jsonargparse.get_loader("yaml")
    config_files.install()
    assert jsonargparse.get_loader("yaml") is loader
    assert loader("a: 1") == {"a": 1}  # a value without a file path is loaded as it is


# ------------------------------------------------------------------------------------ the experiment name
@pytest.mark.parametrize(
    ("configs", "expected"),
    [
        (["toy_grid25_recommended.yaml"], "toy_grid25_recommended"),  # an overlay names the run, not its default
        (["toy_grid.yaml", "trainer/cpu.yaml"], "toy_grid"),  # a piece never names the run
        (["toy_grid.yaml", "toy_grid25_recommended.yaml"], "toy_grid"),  # several experiments: the first
    ],
)
def test_experiment_name_is_the_named_file(configs: list[str], expected: str, env: None) -> None:
    args = [a for c in configs for a in ("--config", str(EXPERIMENTS / c))]
    cli = GANLightningCLI(args=[*args, "--wandb.mode=disabled", "--trainer.enable_progress_bar=false"], run=False)
    assert Path(cli.trainer.default_root_dir).parent.name == expected


# ------------------------------------------------------------------------------------ shared blocks exist once
@pytest.mark.parametrize(
    ("class_path", "marker", "piece"),
    [
        ("lightning_gans.callbacks.ImageQualityCallback", "extractor: lenet-mnist", "callbacks/lenet_quality.yaml"),
        ("lightning_gans.callbacks.RunCheckpoint", "fid/lenet-mnist/10k", "callbacks/best_lenet_fid.yaml"),
        (
            "lightning_gans.callbacks.RunCheckpoint",
            'filename: "epoch{epoch:04d}"',
            "callbacks/periodic_checkpoint.yaml",
        ),
        (
            "lightning_gans.callbacks.TranslationQualityCallback",
            "extractor: lenet-mnist",
            "callbacks/lenet_translation_quality.yaml",
        ),
    ],
)
def test_shared_callback_block_exists_once(class_path: str, marker: str, piece: str) -> None:
    """No experiment pastes the block: it lives in one piece that experiments name."""
    holders = []
    for path in sorted(EXPERIMENTS.rglob("*.yaml")):
        blocks = path.read_text().split("class_path: ")[1:]  # each callback's text up to the next class_path
        if any(block.startswith(class_path) and marker in block for block in blocks):
            holders.append(path.relative_to(EXPERIMENTS).as_posix())
    assert holders == [piece]
    users = [p.name for p in EXPERIMENTS.glob("*.yaml") if piece in p.read_text()]
    assert users, f"no experiment uses {piece}"


@pytest.mark.parametrize("name", ["dcgan_celeba", "cyclegan_horse2zebra", "dcgan_mnist"])
def test_loader_options_are_visible_in_print_config(name: str, env: None) -> None:
    values = resolved(EXPERIMENTS / f"{name}.yaml")
    assert values[WORKERS_KEY] == "auto"
    shown = {k for k in ADDED_DATA_OPTIONS if k in values}
    loader_keys = {f"data.init_args.{k}" for k in ("persistent_workers", "pin_memory", "prefetch_factor")}
    assert loader_keys <= shown and ({"data.init_args.cache"} <= shown) == (name != "dcgan_mnist")


def test_discogan_recipe_is_the_chapter_config_with_unet_generators(env: None) -> None:
    """issue 20, item 2: the recommended DiscoGAN changes exactly one thing, the generators' skip connections."""
    chapter = resolved(EXPERIMENTS / "discogan_mnist_edges.yaml")
    recipe = resolved(EXPERIMENTS / "discogan_mnist_edges_recommended.yaml")
    assert _diff(chapter, recipe) == [f"model.init_args.{g}.init_args.skips: False → True" for g in ("G_AB", "G_BA")]


def test_salimans_sgan_recipe_values(env: None) -> None:
    """issue 20, item 3: the Salimans et al. 2016 MNIST setting on top of sgan_mnist.yaml, for 60 CPU-minutes."""
    values = resolved(EXPERIMENTS / "sgan_mnist_salimans.yaml")
    m = "model.init_args"
    assert values[f"{m}.generator.class_path"] == "lightning_gans.networks.sgan.SalimansGenerator28"
    assert values[f"{m}.discriminator.class_path"] == "lightning_gans.networks.sgan.SalimansDiscriminator28"
    assert values[f"{m}.discriminator.init_args.hidden"] == [1000, 500, 250, 250, 250]
    assert values[f"{m}.tricks.feature_matching"] == "replace" and values[f"{m}.schedule.d_steps"] == "joint"
    assert values[f"{m}.d_objective"] == "joint" and values[f"{m}.d_fakes_eval_mode"] is False
    for opt in ("optimizer_g", "optimizer_d", "optimizer_d_supervised"):
        assert values[f"{m}.{opt}.init_args.lr"] == 3e-3 and values[f"{m}.{opt}.init_args.betas"] == [0.5, 0.999]
    assert values["data.init_args.batch_size"] == 100 and values["data.init_args.selection"] == "balanced"
    assert values["data.init_args.validation_fraction"] == 0.08333  # selection on the validation split, not test
    callbacks = {v: k for k, v in values.items() if k.startswith("trainer.callbacks.") and k.endswith("class_path")}
    budget = callbacks["lightning_gans.callbacks.TrainingBudget"].removesuffix("class_path")
    assert values[f"{budget}init_args.minutes"] == 60.0 and values[f"{budget}init_args.clock"] == "cpu"
    assert "lightning_gans.callbacks.ClassifierTestReport" in callbacks
