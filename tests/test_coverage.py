"""Class coverage / KL-from-uniform of the fakes' predicted labels, and collapse detection in the callback."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from quality_fakes import TINY, TinyExtractor
from torch import nn
from toy_training import bare_trainer

from datamodules.mnist import MNISTDataModule
from lightning_gans.callbacks import ImageQualityCallback
from lightning_gans.callbacks.image_quality import CollapseWarning
from lightning_gans.cli import ConfigError
from lightning_gans.evaluation import EvalSettings, evaluate_image_quality, make_protocol
from lightning_gans.metrics import ClassHistogram
from lightning_gans.models import GAN
from lightning_gans.networks import MLPDiscriminator
from lightning_gans.outputs import to_uint8

COVERAGE = f"coverage/{TINY}/64"


def _logits(counts: list[int]) -> torch.Tensor:
    """One-hot-ish logits whose argmax histogram is ``counts``."""
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return torch.nn.functional.one_hot(labels, len(counts)).float() * 3 - 1


def test_histogram_coverage_and_kl_hand_values() -> None:
    metric = ClassHistogram(10)
    metric.update(_logits([50, 30, 16, 4, 0, 0, 0, 0, 0, 0]))
    out = metric.compute()
    assert float(out["coverage"]) == 3  # 4 % is below the 5 % floor
    expected = sum(p * math.log(10 * p) for p in (0.5, 0.3, 0.16, 0.04))
    assert float(out["class_kl"]) == pytest.approx(expected, abs=1e-12)
    assert float(out["class_min"]) == 0.0  # six digits never drawn
    spread = ClassHistogram(10)
    spread.update(_logits([12, 11, 11, 10, 10, 10, 10, 10, 10, 6]))
    assert float(spread.compute()["class_min"]) == pytest.approx(0.06, abs=1e-12)

    uniform, single = ClassHistogram(10), ClassHistogram(10, threshold=0.1)
    uniform.update(_logits([7] * 10))
    single.update(_logits([0, 0, 0, 70, 0, 0, 0, 0, 0, 0]))
    assert (float(uniform.compute()["coverage"]), float(uniform.compute()["class_kl"])) == (10, 0.0)
    assert float(single.compute()["coverage"]) == 1
    assert float(single.compute()["class_kl"]) == pytest.approx(math.log(10), abs=1e-12)


def test_histogram_states_add_up_across_shards_and_reject_bad_input() -> None:
    logits = torch.randn(101, 10, generator=torch.Generator().manual_seed(0))
    whole, halves = ClassHistogram(10), ClassHistogram(10)
    whole.update(logits)
    halves.update(logits[0::2])
    halves.update(logits[1::2])
    halves.update(torch.zeros(0, 10))  # an empty shard
    assert torch.equal(whole.counts, halves.counts) and int(whole.counts.sum()) == 101
    with pytest.raises(ValueError, match=r"expected logits \(N, 10\)"):
        whole.update(torch.zeros(4, 9))
    with pytest.raises(ValueError, match="threshold"):
        ClassHistogram(10, threshold=0.2)  # no generator could cover all 10 classes at 20 % each
    with pytest.raises(RuntimeError, match="no samples"):
        ClassHistogram(10).compute()


def test_evaluation_reports_the_histogram_of_the_extractor_labels() -> None:
    images = torch.rand(90, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    extractor = TinyExtractor()
    predicted = extractor.features_and_logits(to_uint8(images))[1].argmax(dim=1)
    p = torch.bincount(predicted, minlength=10).double() / 90
    for threshold in (0.05, 0.1):
        result = evaluate_image_quality(
            lambda count, labels=None, indices=None: images[indices],
            images,
            None,
            extractor,
            make_protocol("noise", "test", 90, extractor),
            ["coverage", "class_kl"],
            EvalSettings(coverage_threshold=threshold),
            world_size=1,
        )
        assert result.values["coverage"] == int((p >= threshold).sum())
        kl = float(sum(q * math.log(10 * q) for q in p.tolist() if q > 0))
        assert result.values["class_kl"] == pytest.approx(kl, abs=1e-12)


# ---------------------------------------------------------------------------------------------- collapse detection
class ConstantGenerator(nn.Module):
    """Draws the same image for every latent (a fully collapsed generator); its one parameter gets zero grads."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))
        self.register_buffer("image", torch.linspace(-1, 1, 784).view(1, 1, 28, 28))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.image.expand(len(z), -1, -1, -1) + 0 * self.unused


def _collapsed_gan() -> GAN:
    return GAN(generator=ConstantGenerator(), discriminator=MLPDiscriminator(in_shape=[1, 28, 28], hidden=[8]))


def _callback(**kwargs) -> ImageQualityCallback:
    return ImageQualityCallback(
        metrics=["fid", "coverage", "class_kl"], extractor=TINY, num_samples=64, batch_size=64, **kwargs
    )


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def _data(root: Path) -> MNISTDataModule:
    return MNISTDataModule(data_dir=str(root), batch_size=64, num_workers=0)


def test_collapse_warns_after_patience_and_can_stop(mnist_root: Path, tmp_path: Path) -> None:
    callback = _callback(collapse_coverage=8, collapse_patience=2, stop_on_collapse=True)
    trainer = bare_trainer(tmp_path, max_epochs=6, limit_train_batches=1, callbacks=[callback])
    with pytest.warns(CollapseWarning, match=r"covers 1/10 classes \(< 8\) for 2 consecutive evaluations: stopping"):
        trainer.fit(_collapsed_gan(), datamodule=_data(mnist_root))
    rows = _rows(tmp_path)
    evaluations = [r for r in rows if r.get("kind") == "image_quality"]
    assert [r[COVERAGE] for r in evaluations] == [1, 1]  # stopped after the 2nd of 6 epochs
    assert evaluations[0][f"class_kl/{TINY}/64"] == pytest.approx(math.log(10))
    assert evaluations[0]["coverage_threshold"] == 0.05
    (collapse,) = [r for r in rows if r.get("kind") == "collapse"]
    assert (collapse["epoch"], collapse["streak"], collapse["stopped"]) == (1, 2, True)
    assert trainer.current_epoch == 2


def test_collapse_grace_steps_ignore_early_evaluations(mnist_root: Path, tmp_path: Path) -> None:
    # One batch per epoch: evaluations at GAN steps 1, 2, 3, ...; steps 1 and 2 are inside the grace period.
    callback = _callback(collapse_coverage=8, collapse_patience=2, collapse_grace_steps=3, stop_on_collapse=True)
    trainer = bare_trainer(tmp_path, max_epochs=6, limit_train_batches=1, callbacks=[callback])
    with pytest.warns(CollapseWarning, match="for 2 consecutive evaluations: stopping"):
        trainer.fit(_collapsed_gan(), datamodule=_data(mnist_root))
    (collapse,) = [r for r in _rows(tmp_path) if r.get("kind") == "collapse"]
    assert (collapse["step"], collapse["streak"]) == (4, 2)
    assert trainer.current_epoch == 4  # four evaluations, the first two not counted


def test_collapse_streak_survives_a_resume(mnist_root: Path, tmp_path: Path) -> None:
    """Patience 3: two low evaluations, a checkpoint, a resumed third evaluation → the warning (and no stop)."""
    first = _callback(collapse_coverage=8, collapse_patience=3)
    trainer = bare_trainer(tmp_path, max_epochs=2, limit_train_batches=1, callbacks=[first])
    trainer.fit(_collapsed_gan(), datamodule=_data(mnist_root))
    assert first.low_coverage_streak == 2 and not [r for r in _rows(tmp_path) if r.get("kind") == "collapse"]
    trainer.save_checkpoint(tmp_path / "two.ckpt")
    assert torch.load(tmp_path / "two.ckpt", weights_only=False)["callbacks"]["ImageQualityCallback"] == {
        "low_coverage_streak": 2
    }

    resumed = _callback(collapse_coverage=8, collapse_patience=3)
    trainer = bare_trainer(tmp_path, max_epochs=4, limit_train_batches=1, callbacks=[resumed])
    with pytest.warns(CollapseWarning, match="for 3 consecutive evaluations"):
        trainer.fit(_collapsed_gan(), datamodule=_data(mnist_root), ckpt_path=tmp_path / "two.ckpt", weights_only=False)
    assert resumed.low_coverage_streak == 4 and trainer.current_epoch == 4  # warned, did not stop
    assert [r["streak"] for r in _rows(tmp_path) if r.get("kind") == "collapse"] == [3, 4]


def test_collapse_detection_needs_the_coverage_metric() -> None:
    with pytest.raises(ConfigError, match="collapse_coverage=8 needs the coverage metric"):
        ImageQualityCallback(metrics=["fid"], extractor=TINY, collapse_coverage=8)
    assert ImageQualityCallback(metrics=["fid"], extractor=TINY).state_dict() == {}  # no state without detection
    with pytest.raises(ConfigError, match="collapse_grace_steps must be >= 0, got -1"):
        _callback(collapse_coverage=8, collapse_grace_steps=-1)
