"""``lightning-gans stats compute|verify|list`` and ``--reference``: checksummed real statistics that refuse a
flipped byte, a truncated file, an edited manifest and another protocol, each in one line."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from data_factories import write_mnist_idx
from quality_fakes import TINY, TinyExtractor

from datamodules.mnist import MNISTDataModule
from lightning_gans.cli import main as cli_main
from lightning_gans.commands.stats import main as stats_command
from lightning_gans.errors import ReferenceStatsError
from lightning_gans.evaluation import EvalSettings, load_reference, make_protocol, reference_statistics
from lightning_gans.metrics.reference import MANIFEST, read_statistics, write_statistics

N = 300


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Factory MNIST (N test images), an empty cache, and an experiment file naming its datamodule."""
    root = write_mnist_idx(tmp_path / "data", n_train=16, n_test=N)
    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(root))
    monkeypatch.setenv("LIGHTNING_GANS_CACHE", str(tmp_path / "cache"))
    base = tmp_path / "base.yaml"
    base.write_text("data:\n  class_path: datamodules.mnist.MNISTDataModule\n  init_args: {batch_size: 16}\n")
    (tmp_path / "exp.yaml").write_text("defaults: [base.yaml]\nmodel: {class_path: lightning_gans.models.GAN}\n")
    return tmp_path


def _compute(env: Path, *extra: str, out: str = "s.npz") -> Path:
    args = ["compute", "--config", str(env / "exp.yaml"), "--n", str(N), "--extractor", TINY]
    stats_command([*args, "--metrics", "fid,kid,prdc", "--out", str(env / out), *extra])
    return env / out


def _error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        stats_command(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_compute_equals_the_real_pass_and_verifies(env: Path, capsys: pytest.CaptureFixture) -> None:
    path = _compute(env, "--cache")
    assert "wrote" in capsys.readouterr().out
    stats_file = read_statistics(path)
    images, labels = MNISTDataModule().real_images("test")
    extractor = TinyExtractor()
    protocol = make_protocol("mnist", "test", N, extractor)
    fresh = reference_statistics(images, labels, extractor, protocol, ["fid", "kid", "prdc"], EvalSettings())
    assert stats_file.protocol == dict(protocol) and stats_file.stats.keys() == fresh.keys()
    assert all(torch.equal(stats_file.stats[k], v) and stats_file.stats[k].dtype == v.dtype for k, v in fresh.items())
    manifest = stats_file.manifest
    assert set(manifest["versions"]) >= {"python", "numpy", "torch", "torchmetrics", "torch-fidelity"}
    assert manifest["metrics"] == ["fid", "kid", "prdc"] and manifest["arrays"]["features"]["shape"] == [N, 16]
    raw = env / "data" / "MNIST" / "raw"
    assert manifest["sources"] == {
        name: hashlib.sha256((raw / name).read_bytes()).hexdigest()
        for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    }
    with np.load(path, allow_pickle=False) as npz:  # no pickle anywhere
        assert set(npz.files) == {*fresh, MANIFEST}
    stats_command(["verify", str(path)])
    assert capsys.readouterr().out.startswith(f"OK {path}")
    stats_command(
        ["verify", str(path), "--recompute", "--config", str(env / "exp.yaml"), "--n", str(N), "--extractor", TINY]
    )
    assert "recomputed: equal" in capsys.readouterr().out
    stats_command(["list"])  # the cache holds the same file under its protocol key
    listing = capsys.readouterr().out
    assert "mnist/test n=300 tiny-test@fixed-seed0" in listing and "features, fid_n" in listing


def _flip_one_byte_of(path: Path, member: str) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = bytearray(members[member])
    data[-3] ^= 0xFF
    members[member] = bytes(data)
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def test_verify_refuses_damaged_edited_and_foreign_files(env: Path, capsys: pytest.CaptureFixture) -> None:
    path = _compute(env)
    _flip_one_byte_of(path, "fid_outer.npy")
    assert "array 'fid_outer' fails its sha256" in _error(capsys, ["verify", str(path)])
    truncated = _compute(env, out="t.npz")
    truncated.write_bytes(truncated.read_bytes()[:-200])
    assert "unreadable" in _error(capsys, ["verify", str(truncated)])
    edited = _compute(env, out="e.npz")
    stats_file = read_statistics(edited)
    manifest = {**stats_file.manifest, "protocol": {**stats_file.protocol, "n": 10000}}
    arrays = {k: v.numpy() for k, v in stats_file.stats.items()}
    np.savez(edited, **arrays, **{MANIFEST: np.array(json.dumps(manifest))})
    assert "does not match its protocol_key" in _error(capsys, ["verify", str(edited)])
    good = _compute(env, out="g.npz")
    other_n = ["verify", str(good), "--config", str(env / "exp.yaml"), "--n", "200", "--extractor", TINY]
    assert "n: 300 in the file vs 200 in this run" in _error(capsys, other_n)
    text = env / "notes.txt"
    text.write_text("not statistics")
    assert "notes.txt are unreadable" in _error(capsys, ["verify", str(text)])
    assert "no such file" in _error(capsys, ["verify", str(env / "missing.npz")])
    stats_command(["list", str(env)])
    listing = capsys.readouterr().out
    assert listing.count("unreadable") >= 2 and "g.npz | mnist/test n=300" in listing


def test_bad_inputs_are_one_line(env: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["compute", "--config", str(env / "exp.yaml"), "--extractor", TINY, "--out", str(env / "x.npz")]
    assert "the test split of mnist has 300 images" in _error(capsys, [*base, "--n", "5000"])
    base += ["--n", str(N)]
    assert "unknown feature extractor 'nope'" in _error(capsys, [*base, "--extractor", "nope"])
    assert "--metrics: metrics must be a non-empty subset of" in _error(capsys, [*base, "--metrics", "fid,bogus"])
    assert "--extractor_kwargs '{bad' is not JSON" in _error(capsys, [*base, "--extractor_kwargs", "{bad"])
    assert "--extractor_kwargs must be a JSON object" in _error(capsys, [*base, "--extractor_kwargs", "[1]"])
    assert "need --n >= 2" in _error(capsys, [*base, "--n", "1"])
    no_data = env / "nodata.yaml"
    no_data.write_text("model: {class_path: lightning_gans.models.GAN}\n")
    assert "no data: section" in _error(capsys, ["compute", "--config", str(no_data), "--out", str(env / "y.npz")])
    assert "exactly one of --config" in _error(capsys, ["compute", "--out", str(env / "z.npz")])


def test_reference_refuses_another_protocol(env: Path) -> None:
    path = _compute(env)
    extractor = TinyExtractor()
    protocol = make_protocol("mnist", "test", N, extractor)
    assert torch.equal(load_reference(path, protocol, ["fid", "prdc"])["fid_n"], torch.tensor(N))
    with pytest.raises(ReferenceStatsError, match=r"another protocol \(n: 300 in the file vs 299 in this run\)"):
        load_reference(path, make_protocol("mnist", "test", N - 1, extractor), ["fid"])
    with pytest.raises(ReferenceStatsError, match="lack class_n, class_outer, class_sum"):
        load_reference(path, protocol, ["intra_fid"])
    lonely = write_statistics(env / "fid_only.npz", protocol, {"fid_n": torch.tensor(N)})
    assert read_statistics(lonely).manifest["sources"] == {"unknown": "the datamodule lists no source files"}


def test_eval_reference_with_a_wrong_protocol_is_one_line(env: Path, capsys: pytest.CaptureFixture) -> None:
    """Through the real CLI entry point: ``lightning-gans eval --reference`` of a file with another N."""
    stats = _compute(env)
    cli_main(
        ["fit", "--config", str(env / "exp.yaml"), "--runs_dir", str(env / "runs"), "--wandb.mode=disabled"]
        + ["--model.generator=quality_fakes.ElementwiseGenerator", "--model.latent_dim=784"]
        + ["--model.discriminator=lightning_gans.networks.MLPDiscriminator"]
        + ["--model.discriminator.init_args.in_shape=[1, 28, 28]", "--trainer.max_steps=1"]
        + ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"]
    )
    ckpt = next((env / "runs").rglob("last.ckpt"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["eval", "--ckpt", str(ckpt), "--n", "200", "--extractor", TINY, "--reference", str(stats)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "another protocol (n: 300 in the file vs 200 in this run)" in err


def test_callback_uses_a_matching_reference_and_refuses_another(env: Path) -> None:
    import lightning.pytorch as pl
    from quality_fakes import ElementwiseGenerator

    from lightning_gans.callbacks import ImageQualityCallback
    from lightning_gans.models import GAN
    from lightning_gans.networks import MLPDiscriminator

    stats = _compute(env)

    def fit(n: int) -> None:
        callback = ImageQualityCallback(metrics=["fid", "prdc"], extractor=TINY, num_samples=n, reference=str(stats))
        trainer = pl.Trainer(
            accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=env / f"run{n}", callbacks=[callback],
        )  # fmt: skip
        gan = GAN(generator=ElementwiseGenerator(), discriminator=MLPDiscriminator([1, 28, 28], [8]), latent_dim=784)
        trainer.fit(gan, datamodule=MNISTDataModule(batch_size=16))

    fit(N)
    row = json.loads((env / f"run{N}" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["real_statistics"] == "memory" and "prdc_coverage/tiny-test/300" in row
    with pytest.raises(ReferenceStatsError, match="n: 300 in the file vs 250 in this run"):
        fit(250)
