"""Image-quality evaluation: exact-N sharding, 2-process DDP == 1 process, reference cache, conditional labels,
fit-start failures, metrics.jsonl lines and ``lightning-gans eval``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from data_factories import write_mnist_idx
from quality_fakes import TINY, ElementwiseGenerator, TinyExtractor

from datamodules.mnist import MNISTDataModule
from lightning_gans.callbacks import ImageQualityCallback
from lightning_gans.cli import ConfigError, main
from lightning_gans.commands.eval import main as eval_command
from lightning_gans.evaluation import (
    EvalSettings,
    ModuleSampler,
    evaluate_image_quality,
    make_protocol,
    shard_indices,
    shard_size,
)
from lightning_gans.metrics import ExtractorWeightsError, ReferenceCache, build_extractor
from lightning_gans.models import GAN
from lightning_gans.networks import MLPDiscriminator
from lightning_gans.workflows.extractor import train_lenet_mnist

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
N = 1001
KID = {"kid_subsets": 5, "kid_subset_size": 200}


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _gan(conditional: bool = False) -> GAN:
    cls = RecordingConditionalGAN if conditional else GAN
    return cls(
        generator=ElementwiseGenerator(),
        discriminator=MLPDiscriminator(in_shape=[1, 28, 28], hidden=[8]),
        latent_dim=784,
    )


class RecordingConditionalGAN(GAN):
    """A "conditional" GAN that records the labels it is asked to sample."""

    conditional = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.asked: list[torch.Tensor] = []

    def sample(self, n: int, noise: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        assert labels is not None and len(labels) == n
        self.asked.append(labels.cpu())
        return super().sample(n, noise=noise)


@pytest.fixture()
def quality_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """1001 factory test images (64 train), an empty extractor/reference cache, no inherited run dir."""
    root = write_mnist_idx(tmp_path / "data", n_train=64, n_test=N)
    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(root))
    monkeypatch.setenv("LIGHTNING_GANS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LIGHTNING_GANS_RUN_DIR", raising=False)
    return root


# ---------------------------------------------------------------------------------------------- sharding
@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("n", [1001, 10, 7])
def test_shards_are_exactly_range_n(n: int, world_size: int) -> None:
    shards = [shard_indices(n, r, world_size) for r in range(world_size)]
    merged = torch.cat(shards)
    assert sorted(merged.tolist()) == list(range(n))  # no duplicates, no padding, nothing missing
    for rank, shard in enumerate(shards):
        assert len(shard) == shard_size(n, rank, world_size) == n // world_size + (rank < n % world_size)
        assert torch.equal(shard % world_size, torch.full_like(shard, rank))  # interleaved


def test_latents_depend_only_on_seed_and_index() -> None:
    sampler = ModuleSampler(_gan(), seed=3)
    whole = sampler.noise(torch.arange(2100))
    odd = ModuleSampler(_gan(), seed=3).noise(torch.arange(1, 2100, 2))
    assert torch.equal(whole[1::2], odd)
    assert not torch.equal(ModuleSampler(_gan(), seed=4).noise(torch.arange(5)), whole[:5])


# ---------------------------------------------------------------------------------------------- cache, labels
def test_reference_cache_skips_the_real_pass_and_misses_on_a_new_protocol(quality_env: Path) -> None:
    images, labels = MNISTDataModule().real_images("test")
    extractor = TinyExtractor()
    sampler = ModuleSampler(_gan(), seed=0)
    cache = ReferenceCache()

    def run(n: int, split: str = "test") -> tuple:
        before = extractor.calls
        protocol = make_protocol("mnist", split, n, extractor)
        settings = EvalSettings(batch_size=300, **KID)
        result = evaluate_image_quality(
            sampler, images, labels, extractor, protocol, ["fid", "kid"], settings, cache=cache
        )
        return result, extractor.calls - before

    first, seen = run(N)
    assert (first.real_source, seen) == ("computed", 2 * N)
    second, seen = run(N)
    assert (second.real_source, seen) == ("cache", N)  # fakes only: no real-feature pass
    assert second.values == pytest.approx(first.values, rel=1e-12)
    assert run(500)[0].real_source == "computed"  # another N
    assert run(N, split="train")[0].real_source == "computed"  # another split (same images here: key differs)
    protocol = make_protocol("mnist", "test", N, extractor)
    settings = EvalSettings(batch_size=300, **KID)
    memory = evaluate_image_quality(
        sampler, images, labels, extractor, protocol, ["fid", "kid"], settings, reference=first.reference
    )
    assert memory.real_source == "memory" and memory.values == pytest.approx(first.values, rel=1e-12)


def test_evaluation_inside_an_autocast_block_is_fp32(quality_env: Path) -> None:
    """An evaluation run from inside a bf16 autocast block (a training step's) samples with autocast off and gives
    the fp32 evaluation's FID."""
    images, labels = MNISTDataModule().real_images("test")
    protocol = make_protocol("mnist", "test", N, TinyExtractor())
    autocast_seen: list[bool] = []

    def run() -> dict[str, float]:
        sampler = ModuleSampler(_gan(), seed=0)

        def sample_fn(*args, **kwargs) -> torch.Tensor:
            autocast_seen.append(torch.is_autocast_enabled("cpu"))
            return sampler(*args, **kwargs)

        return evaluate_image_quality(sample_fn, images, labels, TinyExtractor(), protocol, ["fid"]).values

    fp32 = run()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = run()
    assert autocast_seen and not any(autocast_seen)
    assert inside == fp32


def test_conditional_fakes_use_the_labels_of_the_same_indices(quality_env: Path) -> None:
    images, labels = MNISTDataModule().real_images("test")
    labels = labels.flip(0)  # not simply i % 10, so a wrong index shows
    for rank in (0, 1):  # what rank r of 2 asks for (no process group: the rank's local part only)
        module = _gan(conditional=True)
        extractor = TinyExtractor()
        evaluate_image_quality(
            ModuleSampler(module),
            images,
            labels,
            extractor,
            make_protocol("mnist", "test", N, extractor),
            ["is"],
            EvalSettings(batch_size=64),
            rank=rank,
            world_size=2,
            conditional=True,
        )
        assert torch.equal(torch.cat(module.asked), labels[rank:N:2])


# ---------------------------------------------------------------------------------------------- the callback
def _trainer(tmp_path: Path, callback: ImageQualityCallback, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=pl.loggers.CSVLogger(tmp_path, name="csv", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[callback],
        **kwargs,
    )


class _CountSteps(pl.Callback):
    steps = 0

    def on_train_batch_start(self, *args) -> None:
        self.steps += 1


@pytest.mark.parametrize(
    ("extractor", "message"),
    [
        ("lenet-mnist", r"lenet-mnist\.pt[\s\S]*lightning-gans train-extractor mnist"),
        ("inception-v3-compat", r"weights-inception-2015-12-05-6726825d\.pth[\s\S]*https://"),
    ],
)
def test_missing_weights_fail_at_fit_start(quality_env: Path, tmp_path: Path, extractor: str, message: str) -> None:
    """Offline and without the weights file: the error (file, URL/command) comes before the first step."""
    counter = _CountSteps()
    trainer = _trainer(tmp_path, ImageQualityCallback(extractor=extractor), max_steps=2)
    trainer.callbacks.append(counter)
    with pytest.raises(ExtractorWeightsError, match=message):
        trainer.fit(_gan(), datamodule=MNISTDataModule(batch_size=16))
    assert counter.steps == 0


def test_too_few_real_images_fail_at_fit_start(mnist_root: Path, tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, ImageQualityCallback(extractor=TINY), max_steps=2)
    with pytest.raises(ConfigError, match="num_samples=10000 but the test split of mnist has 64 images; lower"):
        trainer.fit(_gan(), datamodule=MNISTDataModule(data_dir=str(mnist_root), batch_size=16))


def test_skipped_under_fast_dev_run(quality_env: Path, tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, ImageQualityCallback(extractor="lenet-mnist"), fast_dev_run=2)  # weights absent
    trainer.fit(_gan(), datamodule=MNISTDataModule(batch_size=16))
    assert not (tmp_path / "metrics.jsonl").exists()


def test_epoch_and_step_evaluations_log_protocol_names(quality_env: Path, tmp_path: Path) -> None:
    callback = ImageQualityCallback(
        metrics=["fid", "is", "kid"], extractor=TINY, num_samples=N, every_n_epochs=2, every_n_steps=3, **KID
    )
    trainer = _trainer(tmp_path, callback, max_epochs=2, log_every_n_steps=50)
    trainer.fit(_gan(), datamodule=MNISTDataModule(batch_size=16))  # 4 steps per epoch
    rows = [r for r in _rows(tmp_path) if r.get("kind") == "image_quality"]
    assert [(r["step"], r["epoch"], r["real_statistics"]) for r in rows] == [
        (3, 0, "computed"),  # every_n_steps
        (6, 1, "memory"),
        (8, 1, "memory"),  # every_n_epochs=2 = the last epoch
    ]
    names = {"fid/tiny-test/1001", "is/tiny-test/1001", "kid/tiny-test/1001", "kid_std/tiny-test/1001"}
    assert names <= rows[-1].keys()
    assert rows[-1]["protocol"] == {
        "dataset": "mnist",
        "split": "test",
        "n": N,
        "extractor": TINY,
        "weights": "fixed-seed0",
        "image_size": 28,
        "resize": "none",
    }
    assert rows[-1]["wall_time_s"] > 0
    assert names <= trainer.callback_metrics.keys()
    assert float(trainer.callback_metrics["fid/tiny-test/1001"]) == pytest.approx(rows[-1]["fid/tiny-test/1001"])
    csv_rows = (tmp_path / "csv" / "metrics.csv").read_text()
    assert "fid/tiny-test/1001" in csv_rows.splitlines()[0]
    assert len(list((tmp_path / "cache" / "reference").glob("*.npz"))) == 1


# ---------------------------------------------------------------------------------------------- DDP + eval
def _write_config(path: Path, *, epochs: int) -> Path:
    callback = {
        "class_path": "lightning_gans.callbacks.ImageQualityCallback",
        "init_args": {
            "metrics": ["fid", "is", "kid", "prdc", "coverage", "class_kl"],
            "extractor": TINY,
            "num_samples": N,
            "batch_size": 128,
            **KID,
        },
    }
    config = {
        "seed_everything": 0,
        "model": {
            "class_path": "lightning_gans.models.GAN",
            "init_args": {
                "latent_dim": 784,
                # imports + registers tiny-test; BatchNorm: its running statistics differ per rank after training
                "generator": {"class_path": "quality_fakes.ElementwiseGenerator", "init_args": {"batch_norm": True}},
                "discriminator": {
                    "class_path": "lightning_gans.networks.MLPDiscriminator",
                    "init_args": {"in_shape": [1, 28, 28], "hidden": [8]},
                },
            },
        },
        "data": {"class_path": "datamodules.mnist.MNISTDataModule", "init_args": {"batch_size": 16}},
        "trainer": {"max_epochs": epochs, "callbacks": [callback]},
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_two_process_ddp_equals_one_process_eval(quality_env: Path, tmp_path: Path) -> None:
    """2-rank CPU DDP fit with the callback (N=1001: shards of 501 and 500) vs ``lightning-gans eval`` of the
    final checkpoint in one process, on the same latents: FID/IS/KID/PRDC/class coverage/KL agree to 1e-6, whether the
    real statistics come from the 2-rank real pass (via the cache rank 0 wrote) or a fresh 1-process real pass.
    The generator has BatchNorm: without syncing rank 0's buffers before evaluating, the ranks would score two
    different generators and disagree with the checkpoint."""
    config = _write_config(tmp_path / "ddp.yaml", epochs=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)])}
    cmd = [sys.executable, "-m", "lightning_gans.cli", "fit", "--config", str(config), "--experiment", "ddp"]
    cmd += ["--runs_dir", str(tmp_path / "runs"), "--wandb.mode=disabled", "--trainer.enable_progress_bar=false"]
    cmd += ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = next((tmp_path / "runs" / "ddp").iterdir())
    ddp = [r for r in _rows(run) if r.get("kind") == "image_quality"]
    assert [(r["epoch"], r["real_statistics"]) for r in ddp] == [(0, "computed"), (1, "memory")]

    ckpt = run / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=False)
    assert all(k.startswith(("generator.", "discriminator.", "fixed_noise")) for k in saved["state_dict"])
    assert not any("ImageQuality" in k for k in saved.get("callbacks", {}))
    base = [
        "--ckpt",
        str(ckpt),
        "--metrics",
        "fid,is,kid,prdc,coverage,class_kl",
        "--n",
        str(N),
        "--extractor",
        TINY,
        "--batch_size",
        "300",
    ]
    base += ["--kid_subsets", "5", "--kid_subset_size", "200"]
    eval_command(base)
    eval_command([*base, "--no-cache"])
    evals = [r for r in _rows(run) if r.get("kind") == "eval"]
    assert [r["real_statistics"] for r in evals] == ["cache", "computed"]
    assert ddp[-1]["kid_settings"] == evals[0]["kid_settings"] == {"subsets": 5, "subset_size": 200}
    names = ["fid/tiny-test/1001", "is/tiny-test/1001", "kid/tiny-test/1001", "kid_std/tiny-test/1001"]
    names += ["coverage/tiny-test/1001", "class_kl/tiny-test/1001"]
    names += [f"prdc_{k}/tiny-test/1001" for k in ("precision", "recall", "density", "coverage")]
    for row in evals:
        assert (row["step"], row["protocol"]) == (ddp[-1]["step"], ddp[-1]["protocol"])  # same weights, same protocol
        for name in names:
            assert row[name] == pytest.approx(ddp[-1][name], rel=1e-6, abs=1e-6), name
    assert ddp[0]["fid/tiny-test/1001"] != ddp[-1]["fid/tiny-test/1001"]  # the generator did change


def test_eval_command_on_a_dcgan_checkpoint(quality_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(
        [
            "fit",
            "--config",
            str(REPO / "experiments/dcgan_mnist.yaml"),
            "--runs_dir",
            str(tmp_path / "runs"),
            "--wandb.mode=disabled",
            "--trainer.accelerator=cpu",
            "--trainer.devices=1",
            "--trainer.enable_progress_bar=false",
            "--trainer.max_steps=2",
            "--data.batch_size=16",
            "--trainer.callbacks=[]",  # the experiment's own FID callback wants 10k real test images
        ]
    )
    run = next((tmp_path / "runs" / "dcgan_mnist").iterdir())
    train_lenet_mnist(epochs=1, progress=False)  # the default extractor, into the test's empty cache
    capsys.readouterr()
    eval_command(["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--n", "200"])  # fid,is with lenet-mnist
    out = capsys.readouterr().out
    assert "| metric | value | protocol |" in out
    assert "| fid/lenet-mnist/200 |" in out and "| is/lenet-mnist/200 |" in out
    row = _rows(run)[-1]
    assert row["kind"] == "eval" and row["step"] == 2
    assert row["protocol"] == {
        "dataset": "mnist",
        "split": "test",
        "n": 200,
        "extractor": "lenet-mnist",
        "weights": build_extractor("lenet-mnist").weights_id,
        "image_size": 28,
        "resize": "none",
    }
    assert set(row) >= {"fid/lenet-mnist/200", "is/lenet-mnist/200", "wall_time_s", "ckpt", "seed"}
    with pytest.raises(SystemExit):  # more samples than real images: a usage error, not a traceback
        eval_command(["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--n", "5000"])
    capsys.readouterr()
    args = ["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--n", "700", "--metrics", "fid,kid,prdc"]
    eval_command([*args, "--repeats", "3", "--kid_subsets", "4", "--kid_subset_size", "100"])
    out = capsys.readouterr().out
    for name in ("fid", "kid", "prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage"):
        assert re.search(rf"\| {name}/lenet-mnist/700 \| [0-9.e+-]+ ± [0-9.e+-]+ \|", out), (name, out)
    assert "_std/" not in out  # spreads are shown beside their means, not as rows
    row = _rows(run)[-1]
    assert row["repeats"] == 3 and len(row["per_repeat"]["fid"]) == 3 and row["prdc_k"] == 5
    assert row["fid_std/lenet-mnist/700"] > 0 and row["kid_std/lenet-mnist/700"] > 0
    for bad, message in ((["--repeats", "0"], "repeats >= 1"), (["--metrics", "fid,prdx"], "subset of")):
        with pytest.raises(SystemExit):
            eval_command([*args[:4], *bad])
        assert message in capsys.readouterr().err


def test_callback_logs_intra_fid_prdc_and_repeats(quality_env: Path, tmp_path: Path) -> None:
    """A conditional model: intra-FID (with the 10 per-class FIDs in metrics.jsonl), PRDC and, with repeats=2,
    each value's spread; intra-FID refused for an unconditional model at fit start."""
    callback = ImageQualityCallback(
        metrics=["fid", "intra_fid", "prdc"], extractor=TINY, num_samples=N, repeats=2, prdc_k=3, batch_size=256
    )
    trainer = _trainer(tmp_path, callback, max_epochs=1, limit_train_batches=2)
    module = _gan(conditional=True)
    trainer.fit(module, datamodule=MNISTDataModule(batch_size=16))
    (row,) = [r for r in _rows(tmp_path) if r.get("kind") == "image_quality"]
    names = [f"{m}/tiny-test/1001" for m in ("fid", "intra_fid", "prdc_precision", "prdc_density", "prdc_coverage")]
    assert set(names) | {n.replace("/", "_std/", 1) for n in names} <= row.keys()
    assert len(row["intra_fid_per_class"]) == 10 and row["prdc_k"] == 3 and row["repeats"] == 2
    assert row["intra_fid/tiny-test/1001"] == pytest.approx(sum(row["intra_fid_per_class"]) / 10, rel=1e-5)
    assert row["per_repeat"]["fid"][0] != row["per_repeat"]["fid"][1]  # two disjoint fake sets
    assert len(torch.cat(module.asked)) == 2 * N  # each repeat asks for N fakes, with the reals' labels
    assert torch.equal(torch.cat(module.asked)[:N], torch.arange(N) % 10)
    with pytest.raises(ConfigError, match="intra_fid needs a conditional model, GAN is not one"):
        unconditional = ImageQualityCallback(metrics=["intra_fid"], extractor=TINY, num_samples=N)
        _trainer(tmp_path / "u", unconditional, max_epochs=1).fit(_gan(), datamodule=MNISTDataModule(batch_size=16))
