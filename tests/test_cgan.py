"""Conditional GAN (GANs in Action ch. 8): label conditioning, the three optimizer steps per iteration and their
labels, sampling by label (``sample(n, labels=…)``, the class grid, ``lightning-gans sample --labels``) and the
conditional-accuracy metric."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image
from quality_fakes import TINY, TinyExtractor
from toy_training import bare_trainer

from datamodules.mnist import MNISTDataModule
from lightning_gans.callbacks import ImageQualityCallback, SampleGridCallback
from lightning_gans.cli import RUN_DIR_ENV, ConfigError, main
from lightning_gans.evaluation import evaluate_image_quality, make_protocol
from lightning_gans.metrics import ConditionalAccuracy
from lightning_gans.models import CGAN, GAN
from lightning_gans.networks import MLPDiscriminator, MLPGenerator
from lightning_gans.networks.cgan import CGANDiscriminator28, CGANGenerator28

REPO = Path(__file__).resolve().parents[1]


def _data(root: Path, batch_size: int = 4) -> MNISTDataModule:
    return MNISTDataModule(data_dir=str(root), batch_size=batch_size)


# ---------------------------------------------------------------------------------------------- networks
def test_shapes_embeddings_and_label_conditioning() -> None:
    torch.manual_seed(0)
    generator, discriminator = CGANGenerator28().eval(), CGANDiscriminator28().eval()
    for embedding in (generator.label_embedding, discriminator.label_embedding):  # Keras Embedding init
        assert embedding.weight.abs().max() <= 0.05 and embedding.weight.std() > 0.02
    assert discriminator.net[0].in_channels == 2  # image + label plane
    z = torch.randn(1, 100).repeat(10, 1)
    images = generator(z, torch.arange(10))
    assert images.shape == (10, 1, 28, 28) and images.abs().max() <= 1
    distances = torch.cdist(images.flatten(1), images.flatten(1))
    assert (distances + torch.eye(10)).min() > 1e-4  # same z, another label: another image
    same_image = images[:1].repeat(10, 1, 1, 1)
    scores = discriminator(same_image, torch.arange(10))
    assert scores.shape == (10,) and len(set(scores.tolist())) == 10  # D's verdict depends on the label
    with pytest.raises(ValueError, match="one label per sample"):
        generator(z, torch.arange(3))


# ---------------------------------------------------------------------------------------------- the schedule
class _Record(pl.Callback):
    """Optimizer steps in order, and the labels every D forward received."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.d_labels: list[torch.Tensor] = []
        self.batch_labels: list[torch.Tensor] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for name, optimizer in zip(("g", "d"), trainer.optimizers):
            optimizer.register_step_post_hook(lambda *args, name=name: self.steps.append(name))
        pl_module.discriminator.register_forward_pre_hook(lambda net, args: self.d_labels.append(args[1].clone()))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batch_labels.append(batch[1].clone())


@pytest.mark.parametrize("mismatched", [False, True], ids=["book", "mismatched_real_as_fake"])
def test_three_optimizer_steps_and_their_labels(mnist_root: Path, tmp_path: Path, mismatched: bool) -> None:
    pl.seed_everything(0)  # the fresh G-step labels are random: seeded, the inequality below is deterministic
    module = CGAN(latent_dim=100, mismatched_real_as_fake=mismatched)
    recorder = _Record()
    trainer = bare_trainer(tmp_path, max_steps=3, callbacks=[recorder])
    trainer.fit(module, datamodule=_data(mnist_root))
    assert trainer.global_step == 3
    assert recorder.steps == ["d", "d", "g"] * 3  # D real, D fake, G
    per_iteration = 4 if mismatched else 3
    assert len(recorder.d_labels) == per_iteration * 3
    for i, labels in enumerate(recorder.batch_labels):
        calls = recorder.d_labels[i * per_iteration : (i + 1) * per_iteration]
        assert torch.equal(calls[0], labels) and torch.equal(calls[1], labels)  # real and fake: real labels
        if mismatched:
            assert (calls[2] != labels).all()  # every real image shown with a wrong label
        assert not torch.equal(calls[-1], labels)  # G step: fresh uniform labels


# ---------------------------------------------------------------------------------------------- sampling
def test_sample_by_label_and_class_grid(mnist_root: Path, tmp_path: Path) -> None:
    module = CGAN(latent_dim=100, num_fixed_noise=3)
    images = module.sample(4, labels=torch.tensor([7, 7, 1, 0]))
    assert images.shape == (4, 1, 28, 28)
    for bad, message in [([10, 0], "in \\[0, 9\\]"), ([1, 2, 3], "one label per sample"), ([0.5, 1.0], "integers")]:
        with pytest.raises(ValueError, match=message):
            module.sample(2, labels=torch.tensor(bad))
    grid = module.sample_fixed()
    assert grid.shape == (30, 1, 28, 28)  # 10 rows × 3 fixed latents
    torch.testing.assert_close(grid[3 * 4 : 3 * 5], module.sample(3, noise=module.fixed_noise, labels=[4, 4, 4]))

    trainer = bare_trainer(tmp_path, max_epochs=1, limit_train_batches=1, callbacks=[SampleGridCallback(gif=False)])
    trainer.fit(module, datamodule=_data(mnist_root))
    with Image.open(tmp_path / "samples" / "class_grid_epoch0001.png") as png:
        assert png.size == (3 * 30 + 2, 10 * 30 + 2)  # one row per digit, one column per fixed latent


def test_cli_sample_labels(mnist_root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(mnist_root))
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["lightning-gans"])
    options = ["--runs_dir", str(tmp_path / "runs"), "--wandb.mode=disabled", "--trainer.accelerator=cpu"]
    options += ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.max_steps=1"]

    def fit(experiment: str, *extra: str) -> None:  # options after --config: later arguments win
        main(["fit", "--config", str(REPO / f"experiments/{experiment}.yaml"), *options, *extra])

    fit("cgan_mnist", "--trainer.callbacks=[]", "--data.batch_size=8")
    (ckpt,) = (tmp_path / "runs" / "cgan_mnist").glob("*/checkpoints/last.ckpt")
    out = tmp_path / "digits"
    main(["sample", "--ckpt", str(ckpt), "--labels", "3,7", "--n", "4", "--out", str(out)])
    arrays = np.load(out.with_suffix(".npz"))
    assert arrays["images"].shape == (8, 1, 28, 28) and arrays["labels"].tolist() == [3, 3, 3, 3, 7, 7, 7, 7]
    with Image.open(out.with_suffix(".png")) as png:
        assert png.size == (4 * 30 + 2, 2 * 30 + 2)  # one row per requested label
    main(["sample", "--ckpt", str(ckpt), "--n", "12", "--out", str(tmp_path / "cycle")])
    assert np.load(tmp_path / "cycle.npz")["labels"].tolist() == [*range(10), 0, 1]

    for labels, message in [("3,10", "--labels must be classes in [0, 9]"), ("a,b", "comma-separated integers")]:
        with pytest.raises(SystemExit) as info:
            main(["sample", "--ckpt", str(ckpt), "--labels", labels, "--out", str(tmp_path / "bad")])
        assert info.value.code == 2 and message in capsys.readouterr().err
    fit("toy_grid", "--data.num_samples=512")
    (toy,) = (tmp_path / "runs" / "toy_grid").glob("*/checkpoints/last.ckpt")
    with pytest.raises(SystemExit) as info:
        main(["sample", "--ckpt", str(toy), "--labels", "1", "--out", str(tmp_path / "bad")])
    assert info.value.code == 2 and "--labels needs a conditional model" in capsys.readouterr().err
    assert not list(tmp_path.glob("bad.*"))


# ---------------------------------------------------------------------------------------------- conditional accuracy
def test_conditional_accuracy_counts_agreement_exactly_per_shard() -> None:
    torch.manual_seed(0)
    images = torch.rand(101, 1, 28, 28) * 2 - 1
    extractor = TinyExtractor()
    from lightning_gans.outputs import to_uint8

    predicted = extractor.features_and_logits(to_uint8(images))[1].argmax(dim=1)
    labels = torch.where(torch.arange(101) % 3 == 0, predicted, (predicted + 1) % 10)  # 34 of 101 agree

    def sample_fn(count: int, labels: torch.Tensor | None = None, indices: torch.Tensor | None = None):
        return images[indices]  # the "generator" ignores the request: its accuracy is the agreement above

    protocol = make_protocol("noise", "test", 101, extractor)
    whole = evaluate_image_quality(sample_fn, images, labels, extractor, protocol, ["cond_acc"], conditional=True)
    assert whole.values["cond_acc"] == pytest.approx(34 / 101, abs=1e-12)
    metric = ConditionalAccuracy()
    for rank in (0, 1):  # per-rank states (counts) add up to the single-process value
        shard = slice(rank, 101, 2)
        metric.update(extractor.features_and_logits(to_uint8(images[shard]))[1], labels[shard])
    assert (int(metric.correct), int(metric.total)) == (34, 101)
    with pytest.raises(ValueError, match="conditional models only"):
        evaluate_image_quality(sample_fn, images, labels, extractor, protocol, ["cond_acc"])


def test_quality_callback_logs_conditional_accuracy(mnist_root: Path, tmp_path: Path) -> None:
    callback = ImageQualityCallback(metrics=["fid", "is", "cond_acc"], extractor=TINY, num_samples=64, batch_size=64)
    trainer = bare_trainer(tmp_path, max_steps=2, callbacks=[callback])
    trainer.fit(CGAN(latent_dim=100), datamodule=_data(mnist_root))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    (row,) = [r for r in rows if r.get("kind") == "image_quality"]
    assert 0 <= row["cond_acc/tiny-test/64"] <= 1 and {"fid/tiny-test/64", "is/tiny-test/64"} <= row.keys()

    gan = GAN(generator=MLPGenerator(hidden=[8]), discriminator=MLPDiscriminator(hidden=[8]))
    refused = ImageQualityCallback(metrics=["cond_acc"], extractor=TINY, num_samples=64)
    with pytest.raises(ConfigError, match="cond_acc needs a conditional model"):
        bare_trainer(tmp_path, max_steps=1, callbacks=[refused]).fit(gan, datamodule=_data(mnist_root))
