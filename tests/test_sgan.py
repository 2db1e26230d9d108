"""Semi-supervised GAN (GANs in Action ch. 7): networks, the shared two-head discriminator, the stable
unsupervised head, the four optimizer steps per iteration, the labelled/unlabelled split and test accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from toy_training import bare_trainer

from datamodules.mnist import SemiSupervisedMNISTDataModule, semi_supervised_split
from lightning_gans.cli import ConfigError
from lightning_gans.losses import feature_matching_loss, get_loss
from lightning_gans.models import SGAN
from lightning_gans.models.options import Schedule, Tricks
from lightning_gans.networks.sgan import (
    GaussianNoise,
    SalimansDiscriminator28,
    SalimansGenerator28,
    SGANDiscriminator28,
    SGANGenerator28,
)


def _trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    return bare_trainer(tmp_path, num_sanity_val_steps=0, **kwargs)


def _data(root: Path, **kwargs) -> SemiSupervisedMNISTDataModule:
    return SemiSupervisedMNISTDataModule(data_dir=str(root), **{"batch_size": 4, "batches_per_epoch": 3, **kwargs})


# ---------------------------------------------------------------------------------------------- networks
def test_shapes_and_ranges() -> None:
    generator, discriminator = SGANGenerator28(), SGANDiscriminator28()
    images = generator(torch.randn(5, 100))
    assert images.shape == (5, 1, 28, 28) and images.abs().max() <= 1
    assert discriminator(images).shape == (5, 10)
    assert discriminator.features(images).shape == (5, 4 * 4 * 128)  # 28 → 14 → 7 → 4, not the book's 3×3
    assert discriminator.unsupervised_logit(discriminator(images)).shape == (5,)
    bn = [m for m in discriminator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [(m.momentum, m.eps) for m in bn] == [(0.01, 1e-3)] * 2  # Keras momentum 0.99, eps 1e-3


def test_salimans_networks_noise_only_in_training_and_weight_norm(mnist_root: Path, tmp_path: Path) -> None:
    """Salimans et al. 2016's MNIST pair: 5 weight-normed hidden layers + Dense 10, Gaussian noise (σ 0.3 input,
    0.5 hidden) in training mode only, 250-d features; trains in SGAN with feature matching."""
    torch.manual_seed(0)
    generator, discriminator = SalimansGenerator28(), SalimansDiscriminator28()
    images = generator(torch.rand(6, 100))
    assert images.shape == (6, 1, 28, 28) and images.abs().max() <= 1
    linears = [m for m in discriminator.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [1000, 500, 250, 250, 250, 10]
    assert all(hasattr(m.parametrizations, "weight") for m in linears)  # w = g·v/‖v‖
    assert [m.std for m in discriminator.modules() if isinstance(m, GaussianNoise)] == [0.3, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert discriminator.features(images).shape == (6, 250)
    discriminator.eval()
    assert torch.equal(discriminator(images), discriminator(images))  # no noise in eval mode
    discriminator.train()
    assert not torch.equal(discriminator(images), discriminator(images))
    module = SGAN(generator=generator, discriminator=discriminator, tricks=Tricks(feature_matching="replace"))
    trainer = _trainer(tmp_path, max_steps=2)
    trainer.fit(module, datamodule=_data(mnist_root))
    assert trainer.global_step == 2 and torch.isfinite(trainer.callback_metrics["g_fm"])


def test_both_heads_train_the_same_parameter_tensors(mnist_root: Path, tmp_path: Path) -> None:
    module = SGAN(latent_dim=100)
    trainer = _trainer(tmp_path, max_steps=1)
    trainer.fit(module, datamodule=_data(mnist_root))
    opt_g, opt_unsupervised, opt_supervised = trainer.optimizers
    body = list(module.discriminator.parameters())
    for optimizer in (opt_unsupervised, opt_supervised):
        assert [p for group in optimizer.param_groups for p in group["params"]] == body
        assert all(a is b for group in optimizer.param_groups for a, b in zip(group["params"], body))
    assert opt_unsupervised.state is not opt_supervised.state  # two Adam states, as two compiled Keras models
    assert not set(map(id, body)) & {id(p) for group in opt_g.param_groups for p in group["params"]}

    # Each head's loss reaches every parameter of the body and of the Dense 10 layer.
    x = torch.randn(4, 1, 28, 28)
    logits = module.classify(x)
    supervised = torch.autograd.grad(F.cross_entropy(logits, torch.arange(4)), body, retain_graph=True)
    unsupervised = torch.autograd.grad(module.discriminate(x, None).sum(), body)
    assert all(g.abs().sum() > 0 for g in supervised) and all(g.abs().sum() > 0 for g in unsupervised)


def test_unsupervised_head_is_z_over_z_plus_one_without_overflow() -> None:
    logits = torch.randn(64, 10, dtype=torch.float64) * 3
    z = logits.exp().sum(dim=1)
    stable = torch.sigmoid(SGANDiscriminator28.unsupervised_logit(logits))
    torch.testing.assert_close(stable, z / (z + 1), rtol=1e-12, atol=0)

    extreme = torch.tensor([[1000.0] * 10, [-1000.0] * 10, [100.0] + [-1000.0] * 9])
    naive = extreme.exp().sum(dim=1) / (extreme.exp().sum(dim=1) + 1)
    assert torch.isnan(naive[0])  # the book's form: inf / inf
    logit = SGANDiscriminator28.unsupervised_logit(extreme)
    log10 = torch.tensor(10.0).log().item()
    torch.testing.assert_close(logit, torch.tensor([1000 + log10, -1000 + log10, 100.0]))
    loss = get_loss("non_saturating")
    for term in (loss.discriminator_real, loss.discriminator_fake, loss.generator):
        x = extreme.clone().requires_grad_(True)
        value = term(SGANDiscriminator28.unsupervised_logit(x))
        (grad,) = torch.autograd.grad(value, x)
        assert torch.isfinite(value) and torch.isfinite(grad).all()
    # D(x) = 1 − e^(−1002.3): BCE against "real" is 0, against "fake" −log(1 − D(x)) = the logit itself.
    assert loss.discriminator_real(logit[:1]).item() == pytest.approx(0.0, abs=1e-6)
    assert loss.discriminator_fake(logit[:1]).item() == pytest.approx(1000 + log10)


# ---------------------------------------------------------------------------------------------- the schedule
class _RecordSteps(pl.Callback):
    """Names of the optimizer steps in the order they happen (wraps every optimizer's step)."""

    def __init__(self) -> None:
        self.steps: list[str] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for name, optimizer in zip(("g", "d_unsupervised", "d_supervised"), trainer.optimizers):
            optimizer.register_step_post_hook(lambda *args, name=name: self.steps.append(name))


@pytest.mark.parametrize(
    ("kwargs", "per_iteration"),
    [
        ({}, ["d_supervised", "d_unsupervised", "d_unsupervised", "g"]),  # Listing 7.9
        ({"tricks": Tricks(feature_matching="replace")}, ["d_supervised", "d_unsupervised", "d_unsupervised", "g"]),
        ({"adversarial": False}, ["d_supervised"]),  # the supervised baseline
        ({"d_objective": "joint", "schedule": Schedule(d_steps="joint")}, ["d_unsupervised", "g"]),  # Salimans
    ],
    ids=["book", "feature_matching", "baseline", "joint"],
)
def test_optimizer_steps_per_iteration(mnist_root: Path, tmp_path: Path, kwargs: dict, per_iteration: list) -> None:
    module = SGAN(latent_dim=100, **kwargs)
    g_before = [p.clone() for p in module.generator.parameters()]
    recorder = _RecordSteps()
    trainer = _trainer(tmp_path, max_steps=3, limit_val_batches=0, callbacks=[recorder])
    trainer.fit(module, datamodule=_data(mnist_root))
    assert trainer.global_step == 3  # one GAN step per iteration, whatever the number of optimizer steps
    assert recorder.steps == per_iteration * 3
    g_changed = any(not torch.equal(a, b) for a, b in zip(g_before, module.generator.parameters()))
    assert g_changed is (kwargs.get("adversarial", True))


def test_fakes_for_d_come_from_g_in_eval_mode(mnist_root: Path, tmp_path: Path) -> None:
    """Keras ``generator.predict`` in the D step (BatchNorm running statistics), training mode in the G step."""
    module = SGAN(latent_dim=100)
    modes: list[bool] = []
    module.generator.register_forward_pre_hook(lambda net, args: modes.append(net.training))
    _trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(module, datamodule=_data(mnist_root))
    assert modes == [False, True] * 2
    assert module.generator.training


def test_feature_matching_generator_loss(mnist_root: Path) -> None:
    """‖E f(x) − E f(G(z))‖² on D's body features, real and fake through one BatchNorm batch."""
    module = SGAN(latent_dim=100, tricks=Tricks(feature_matching="replace"))
    data = _data(mnist_root)
    data.setup("fit")
    (real,) = next(iter(data.train_dataloader()["unlabelled"]))
    batch = {"labelled": [real, torch.zeros(len(real), dtype=torch.long)], "unlabelled": [real]}
    torch.manual_seed(0)
    loss = module.generator_step(batch)["loss"]
    torch.manual_seed(0)
    fake = module.generator(module.sample_noise(len(real)))
    joint = module.discriminator.features(torch.cat([real, fake]))
    torch.testing.assert_close(loss, feature_matching_loss(joint[: len(real)], joint[len(real) :]))
    features = module.discriminator.features  # separate batches: each normalised by its own BN statistics
    assert not torch.allclose(loss, feature_matching_loss(features(real), features(fake)))
    grads = torch.autograd.grad(loss, list(module.generator.parameters()))
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_plain_mnist_batches_are_refused(mnist_root: Path, tmp_path: Path) -> None:
    from datamodules.mnist import MNISTDataModule

    with pytest.raises(ConfigError, match="SemiSupervisedMNISTDataModule"):
        _trainer(tmp_path, max_steps=1).fit(SGAN(), datamodule=MNISTDataModule(data_dir=str(mnist_root), batch_size=8))
    with pytest.raises(ValueError, match="alternating"):
        SGAN(schedule=Schedule(update="simultaneous"))


# ---------------------------------------------------------------------------------------------- data
def test_first_100_split_and_batches(mnist_root: Path) -> None:
    data = _data(mnist_root, num_labelled=100)
    data.setup("fit")
    labelled, unlabelled = data.labelled_indices, data.unlabelled_indices
    assert len(labelled) == 100 and torch.equal(labelled, torch.arange(100))  # the book's first 100
    assert len(unlabelled) == 256 - 100
    assert not set(labelled.tolist()) & set(unlabelled.tolist())
    assert sorted(labelled.tolist() + unlabelled.tolist()) == list(range(256))

    loaders = data.train_dataloader()
    assert len(loaders["labelled"]) == len(loaders["unlabelled"]) == 3  # batches_per_epoch
    images, labels = next(iter(loaders["labelled"]))
    (unlabelled_images,) = next(iter(loaders["unlabelled"]))  # no labels in the unlabelled part
    assert images.shape == unlabelled_images.shape == (4, 1, 28, 28) and labels.dtype == torch.int64
    train_images = data.real_images("train")[0]
    flat = train_images.flatten(1)
    for image in unlabelled_images:  # every unlabelled image is one of the unlabelled pool, none labelled
        match = (flat == image.flatten()).all(dim=1).nonzero().flatten().tolist()
        assert match and set(match) <= set(unlabelled.tolist())


def test_balanced_split_is_seeded_and_class_balanced() -> None:
    labels = torch.randint(0, 10, (2000,), generator=torch.Generator().manual_seed(1))
    labelled, unlabelled = semi_supervised_split(labels, 100, "balanced", seed=3)
    assert len(labelled) == 100 and len(unlabelled) == 1900
    assert not set(labelled.tolist()) & set(unlabelled.tolist())
    assert torch.bincount(labels[labelled], minlength=10).tolist() == [10] * 10
    assert torch.equal(labelled, semi_supervised_split(labels, 100, "balanced", seed=3)[0])
    assert not torch.equal(labelled, semi_supervised_split(labels, 100, "balanced", seed=4)[0])
    with pytest.raises(ValueError, match="divisible by 10"):
        semi_supervised_split(labels, 105, "balanced")
    with pytest.raises(ValueError, match="num_labelled must be in"):
        semi_supervised_split(labels, 2000)
    with pytest.raises(ValueError, match="'first' or 'balanced'"):
        SemiSupervisedMNISTDataModule(selection="random")


# ---------------------------------------------------------------------------------------------- test accuracy
def test_validation_split_is_carved_from_the_unlabelled_pool(mnist_root: Path) -> None:
    data = _data(mnist_root, validation_fraction=0.25)
    data.setup("fit")
    labelled, unlabelled, val = (set(i.tolist()) for i in (data.labelled_indices, data.unlabelled_indices,
                                                             data.validation_indices))  # fmt: skip
    assert len(val) == round(0.25 * 256) == 64 and len(labelled) == 100 and len(unlabelled) == 256 - 164
    assert not (val & labelled) and not (val & unlabelled) and len(val | labelled | unlabelled) == 256
    images, labels = data._load("train")
    (x, y), *_ = list(data.val_dataloader())
    first = sorted(val)[: len(y)]
    assert torch.equal(x, images[first]) and torch.equal(y, labels[first])  # train images with their labels
    again = _data(mnist_root, validation_fraction=0.25)
    again.setup("fit")
    assert torch.equal(again.validation_indices, data.validation_indices)  # seeded by split_seed
    other = _data(mnist_root, validation_fraction=0.25, split_seed=1)
    other.setup("fit")
    assert not torch.equal(other.validation_indices, data.validation_indices)
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        _data(mnist_root, validation_fraction=1.0)
    with pytest.raises(ValueError, match="at least one image in each part"):
        _data(mnist_root, validation_fraction=0.61).setup("fit")  # 156 of the 156 unlabelled: none left


def test_val_accuracy_on_the_split_and_test_accuracy_of_last_and_selected(mnist_root: Path, tmp_path: Path) -> None:
    """``val_accuracy`` is the accuracy on the validation split; the end-of-fit report scores the test split with
    the final weights and with ``best.ckpt`` (selected by ``val_accuracy``), and restores the final weights."""
    from lightning_gans.callbacks import ClassifierTestReport, RunCheckpoint

    module = SGAN(latent_dim=100)
    data = _data(mnist_root, batch_size=16, validation_fraction=0.125)  # 32 validation images
    best = RunCheckpoint(monitor="val_accuracy", mode="max", save_top_k=1, filename="best", dirpath=tmp_path / "c")
    trainer = bare_trainer(
        tmp_path,
        num_sanity_val_steps=0,
        max_steps=6,
        enable_checkpointing=True,
        callbacks=[best, ClassifierTestReport()],
    )  # validation at 3 and 6
    trainer.fit(module, datamodule=data)
    module.eval()
    with torch.no_grad():
        val_x = torch.cat([x for x, _ in data.val_dataloader()])
        val_y = torch.cat([y for _, y in data.val_dataloader()])
        expected_val = (module.classify(val_x).argmax(dim=1) == val_y).float().mean().item()
        test_x, test_y = data.real_images("test")
        expected_last = (module.classify(test_x).argmax(dim=1) == test_y).float().mean().item()
    assert float(trainer.callback_metrics["val_accuracy"]) == pytest.approx(expected_val, abs=1e-6)
    (row,) = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"test"' in x]
    assert row["test_accuracy/last"] == pytest.approx(expected_last, abs=1e-9)
    selected = torch.load(best.best_model_path, weights_only=False)
    assert row["selected_step"] == selected["global_step"] in (3, 6)
    copy = SGAN(latent_dim=100)
    copy.load_state_dict(selected["state_dict"])
    copy.eval()
    with torch.no_grad():
        expected_selected = (copy.classify(test_x).argmax(dim=1) == test_y).float().mean().item()
    assert row["test_accuracy/selected"] == pytest.approx(expected_selected, abs=1e-9)


def test_feature_matching_add_keeps_the_adversarial_term(mnist_root: Path) -> None:
    """``feature_matching="add"``: BCE through the unsupervised head on the fakes + the feature-matching term."""
    module = SGAN(latent_dim=100, tricks=Tricks(feature_matching="add"))
    module.discriminator.eval()  # no dropout: the head's logits are reproducible below
    data = _data(mnist_root)
    data.setup("fit")
    (real,) = next(iter(data.train_dataloader()["unlabelled"]))
    batch = {"labelled": [real, torch.zeros(len(real), dtype=torch.long)], "unlabelled": [real]}
    torch.manual_seed(0)
    logs = module.generator_step(batch)
    torch.manual_seed(0)
    fake = module.generator(module.sample_noise(len(real)))
    joint = module.discriminator.features(torch.cat([real, fake]))
    fm = feature_matching_loss(joint[: len(real)], joint[len(real) :])
    logit = module.discriminator.unsupervised_logit(module.discriminator.head(joint[len(real) :]))
    adversarial = get_loss("non_saturating").generator(logit)
    torch.testing.assert_close(logs["g_fm"], fm)
    torch.testing.assert_close(logs["g_adv"], adversarial)
    torch.testing.assert_close(logs["loss"], adversarial + fm)
    with pytest.raises(ValueError, match="drop feature_layer"):
        SGAN(latent_dim=100, tricks=Tricks(feature_matching="replace", feature_layer="body.0"))


def test_joint_d_objective_is_supervised_plus_half_the_unsupervised_loss(mnist_root: Path, tmp_path: Path) -> None:
    """d_objective='joint': one optimizer_d step on CE + ½·(BCE real + BCE fake), Salimans et al.'s D objective."""
    torch.manual_seed(0)
    module = SGAN(latent_dim=100, d_objective="joint", schedule=Schedule(d_steps="joint"))
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(module, datamodule=_data(mnist_root))
    logs = trainer.callback_metrics
    expected = logs["d_supervised"] + 0.5 * (logs["d_real"] + logs["d_fake"])
    assert logs["d_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="use schedule.d_steps='joint'"):
        SGAN(d_objective="joint")  # the book's default real_then_fake split
