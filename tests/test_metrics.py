"""FID / IS / KID against torch-fidelity and direct formulas, rank-layout invariance, reference cache, extractors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from gloo_ranks import run_forked_ranks
from torch import nn
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from lightning_gans.commands.train_extractor import main as train_extractor_command
from lightning_gans.metrics import (
    ExtractorWeightsError,
    FeatureExtractor,
    FrechetDistance,
    InceptionScoreSum,
    KernelDistance,
    ReferenceCache,
    available_extractors,
    build_extractor,
    check_extractor,
    register_extractor,
    registry,
)
from lightning_gans.metrics.extractors import ExtractorChecksumError, file_sha256
from lightning_gans.outputs import to_uint8
from lightning_gans.workflows.extractor import train_lenet_mnist


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny workloads: one thread avoids OpenMP oversubscription when the shared CPU is busy (10 s → 2 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """n samples of a d-dim Gaussian with a random (well-conditioned) covariance, float64."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.eye(d, dtype=torch.float64) + 0.3 * torch.randn(d, d, generator=g, dtype=torch.float64)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + shift


def layouts(n: int, seed: int = 0) -> list[list[list[torch.Tensor]]]:
    """Ranks × chunks of indices: 1 rank in order; 1 rank permuted, uneven chunks; 2 ranks interleaved."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [
        [[torch.arange(n)]],
        [list(torch.split(perm, [7, 1, n - 20, 12]))],
        [list(torch.arange(0, n, 2).split(5)), list(torch.arange(1, n, 2).split(13))],
    ]


def make_metrics() -> tuple[FrechetDistance, InceptionScoreSum, KernelDistance]:
    return FrechetDistance(8), InceptionScoreSum(10), KernelDistance(subsets=5, subset_size=40)


def data3(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(real features, fake features, fake logits) for the three metrics."""
    return gaussian(n, 8, seed), gaussian(n, 8, seed + 1, shift=0.3), 2 * gaussian(n, 10, seed + 2)


def feed(metrics: tuple, data: tuple, idx: torch.Tensor, with_real: bool = True) -> None:
    (fid, isc, kid), (real, fake, logits) = metrics, data
    fid.update(fake[idx], real=False)
    isc.update(logits[idx])
    kid.update(fake[idx], False, idx)
    if with_real:
        fid.update(real[idx], real=True)
        kid.update(real[idx], True, idx)


def scores(metrics: tuple) -> tuple[float, float, torch.Tensor]:
    return metrics[0].compute().item(), metrics[1].compute().item(), torch.stack(metrics[2].compute())


def assert_same_scores(got: tuple, expected: tuple) -> None:
    """FID / IS from float64 sums: equal to round-off; KID (index-sorted samples): bit-identical."""
    assert abs(got[0] - expected[0]) <= 1e-9 * expected[0] and abs(got[1] - expected[1]) <= 1e-9 * expected[1]
    assert torch.equal(got[2], expected[2])


# ---------------------------------------------------------------------------------------------------------- FID
def test_fid_matches_torch_fidelity() -> None:
    real, fake = gaussian(600, 24, 0), gaussian(500, 24, 1, shift=0.4)
    fid = FrechetDistance(24)
    for chunk in real.split(128):
        fid.update(chunk.float(), real=True)
    for chunk in fake.split(100):
        fid.update(chunk.float(), real=False)
    ours = fid.compute()
    stats = [fid_features_to_statistics(x.float().double()) for x in (real, fake)]
    ref = fid_statistics_to_metric(*stats, False)["frechet_inception_distance"]
    assert ours.dtype == torch.float64 and abs(ours.item() - ref) <= 1e-6 * ref
    fid = FrechetDistance(24)  # FID(X, X) = 0
    fid.update(real, real=True)
    fid.update(real, real=False)
    assert abs(fid.compute().item()) < 1e-6


def test_fid_cached_real_statistics_and_reset() -> None:
    (real, fake, _), direct = data3(300, 5), FrechetDistance(8)
    direct.update(real, real=True)
    direct.update(fake, real=False)
    stats = direct.real_statistics()
    assert stats[2].item() == 300 and torch.allclose(stats[0], real.sum(0))
    cached = FrechetDistance(8, reset_real_features=False)
    cached.set_real_statistics(*stats)
    cached.update(fake, real=False)
    assert cached.compute().item() == pytest.approx(direct.compute().item(), rel=1e-12)
    cached.reset()  # a new evaluation: real statistics stay, fake ones go
    assert cached.real_features_num_samples.item() == 300 and cached.fake_features_num_samples.item() == 0
    with pytest.raises(ValueError, match="features"):
        cached.update(torch.zeros(3, 5), real=False)


# ----------------------------------------------------------------------------------------------------------- IS
def test_inception_score_limits_formula_and_torch_fidelity() -> None:
    uniform = InceptionScoreSum(10)
    uniform.update(torch.zeros(50, 10))
    assert uniform.compute().item() == pytest.approx(1.0, abs=1e-12)
    k, confident = 4, torch.zeros(80, 10)  # 4 of 10 classes, equally used, predicted with confidence
    confident[torch.arange(80), torch.arange(80) % k] = 30.0
    score = InceptionScoreSum(10)
    score.update(confident)
    assert abs(score.compute().item() - k) < 1e-4
    logits = 3 * torch.randn(400, 12, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    score = InceptionScoreSum(12)
    for chunk in logits.split(64):
        score.update(chunk)
    ours = score.compute().item()
    p = logits.numpy() - logits.numpy().max(1, keepdims=True)
    p = np.exp(p) / np.exp(p).sum(1, keepdims=True)
    direct = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(p.mean(0))), axis=1)))  # exp E_x KL(p(y|x) ‖ p(y))
    assert ours == pytest.approx(direct, rel=1e-10)
    ref = isc_features_to_metric(logits, splits=1, shuffle=False)["inception_score_mean"]
    assert ours == pytest.approx(ref, rel=1e-10)


# ---------------------------------------------------------------------------------------------------------- KID
def direct_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² (Bińkowski et al. 2018, eq. 2) with k(a, b) = (aᵀb/d + 1)³, off-diagonal means written out."""
    m, d = x.shape
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    off = ~torch.eye(m, dtype=torch.bool)
    return (k(x, x)[off].mean() + k(y, y)[off].mean() - 2 * k(x, y).mean()).item()


def test_kid_matches_direct_mmd_and_torch_fidelity() -> None:
    real, fake = gaussian(150, 8, 11), gaussian(130, 8, 12, shift=0.2)
    whole = KernelDistance(subsets=1, subset_size=130)  # all 130 fakes: a permutation, MMD² is invariant
    whole.update(real[:130], True, torch.arange(130))
    whole.update(fake, False, torch.arange(130))
    mean, std = whole.compute()
    assert std.item() == 0.0 and mean.item() > 0 and mean.item() == pytest.approx(direct_mmd2(real[:130], fake))
    ref = kid_features_to_metric(real[:130], fake, kid_subsets=1, kid_subset_size=130, verbose=False)
    assert mean.item() == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-10)

    kid = KernelDistance(subsets=5, subset_size=200, seed=3)  # clamped to 130
    kid.update(real, True, torch.arange(150))
    kid.update(fake, False, torch.arange(130))
    mean, std = kid.compute()
    subsets = kid.subset_indices(150, 130)  # the same subsets, scored by torch-fidelity one by one
    per_subset = [kid_features_to_metric(real[r], fake[f], kid_subsets=1, kid_subset_size=130, verbose=False)
                  for r, f in subsets]  # fmt: skip
    per_subset = [out["kernel_inception_distance_mean"] for out in per_subset]
    assert len(subsets[0][0]) == 130 and mean.item() == pytest.approx(np.mean(per_subset), rel=1e-10)
    assert std.item() == pytest.approx(np.std(per_subset), rel=1e-8)


def test_kid_near_zero_for_same_distribution() -> None:
    """KID > 0 between different distributions; ≈ 0 for the same set (a small negative bias of order 1/n from
    real and fake subsets sharing points) and for an independent sample of the same distribution."""
    g = torch.Generator().manual_seed(13)
    x, x2 = (torch.randn(1000, 16, generator=g, dtype=torch.float64) for _ in range(2))
    values = []
    for fake in (x, x2, x2 + 0.5):
        kid = KernelDistance(subsets=20, subset_size=250)
        kid.update(x, True, torch.arange(1000))
        kid.update(fake, False, torch.arange(1000))
        values.append(kid.compute()[0].item())
    same, same_distribution, shifted = values
    assert shifted > 0.5 and abs(same) < 0.03 * shifted and abs(same_distribution) < 0.01 * shifted


def test_kid_cached_real_features_duplicates_and_gathered_state() -> None:
    real, fake, _ = data3(100, 17)
    ref = KernelDistance(subsets=4, subset_size=40)
    ref.update(real, True, torch.arange(100))
    ref.update(fake, False, torch.arange(100))
    kid = KernelDistance(subsets=4, subset_size=40, reset_real_features=False)
    kid.set_real_features(real.flip(0), torch.arange(100).flip(0))
    kid.update(torch.zeros(3, 8), False, torch.arange(3))
    kid.reset()  # keeps the real samples, drops the fakes
    kid.update(fake[:60], False, torch.arange(60))
    kid.update(fake[50:], False, torch.arange(50, 100))  # 50..59 twice, as a padded DistributedSampler does
    assert torch.equal(kid.compute()[0], ref.compute()[0])
    kid.update(torch.ones(1, 8), False, torch.tensor([0]))
    with pytest.raises(ValueError, match="repeat with different features"):
        kid.compute()
    # After a DDP gather a list state is one tensor, with a 1-D float empty tensor from a rank without data.
    kid.fake_features = torch.cat([torch.tensor([]), fake])
    kid.fake_indices = torch.cat([torch.tensor([]), torch.arange(100)])
    assert torch.equal(kid.side("fake"), fake)


def test_scores_invariant_to_update_order_and_rank_layout() -> None:
    """Simulated ranks merged with torchmetrics' own reduction (sum / cat)."""
    data = data3(200, 3)
    results = []
    for layout in layouts(200):
        ranks = [make_metrics() for _ in layout]
        for metrics, chunks in zip(ranks, layout):
            for idx in chunks:
                feed(metrics, data, idx)
        for other in ranks[1:]:
            for mine, theirs in zip(ranks[0], other):
                mine.merge_state(theirs)
        results.append(scores(ranks[0]))
    for got in results[1:]:
        assert_same_scores(got, results[0])


def ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    """One gloo rank: cached real statistics on rank 0 only, fakes interleaved (uneven: 51 / 50 samples)."""
    import torch.distributed as dist

    torch.set_num_threads(1)  # forked child: stay off the parent's OpenMP pool
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        data, metrics = data3(101, 20), make_metrics()
        real = data[0] if rank == 0 else data[0][:0]
        metrics[0].set_real_statistics(real.sum(0), real.T @ real, len(real))
        metrics[2].set_real_features(real, torch.arange(len(real)))
        for chunk in torch.arange(rank, 101, world).split(7):
            feed(metrics, data, chunk, with_real=False)
        torch.save((*scores(metrics), metrics[0].real_statistics()[2]), os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process(tmp_path: Path) -> None:
    """The real torchmetrics DDP sync (gloo, 2 forked processes) gives the single-process scores."""
    assert run_forked_ranks(ddp_worker, 2, str(tmp_path)) == [0, 0]
    single = make_metrics()
    feed(single, data3(101, 20), torch.arange(101))
    for rank in range(2):
        *got, real_n = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert real_n.item() == 101, "real statistics are summed over the ranks"
        assert_same_scores(tuple(got), scores(single))


# -------------------------------------------------------------------------------------------------------- cache
def test_reference_cache_round_trip(tmp_path: Path) -> None:
    cache = ReferenceCache(tmp_path / "ref")
    protocol = {"dataset": "mnist", "split": "test", "n": 64, "extractor": "lenet-mnist", "weights": "abc"}
    stats = {"sum": torch.randn(8, dtype=torch.float64), "outer": torch.randn(8, 8), "n": torch.tensor(64)}
    assert cache.load(protocol) is None
    path = cache.save(protocol, stats)
    loaded = cache.load(dict(reversed(list(protocol.items()))))  # key order does not matter
    assert loaded is not None and all(
        torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in stats.items()
    )
    assert len(cache.key(protocol)) == 16 and path.name == f"{cache.key(protocol)}.npz"
    assert not list(path.parent.glob(".*.tmp"))
    assert cache.load({**protocol, "n": 65}) is None and cache.key({**protocol, "n": 65}) != cache.key(protocol)
    path.write_bytes(path.read_bytes()[:100])  # torn
    with pytest.warns(UserWarning, match="unreadable"):
        assert cache.load(protocol) is None


# ----------------------------------------------------------------------------------------------------- registry
class TinyNet(FeatureExtractor):  # the module docstring's example
    name, num_features, num_classes, image_size = "tiny-net", 64, None, 32

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 64))

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.body(images.float().mean(1) / 127.5 - 1), None


def test_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"inception-v3-compat", "lenet-mnist"} <= set(available_extractors())
    for attempt in (build_extractor, check_extractor):
        with pytest.raises(ValueError, match="unknown feature extractor 'nope'.*inception-v3-compat.*lenet-mnist"):
            attempt("nope")
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    register_extractor("tiny-net")(TinyNet)
    with pytest.raises(ValueError, match="already registered"):
        register_extractor("tiny-net")(lambda: TinyNet())
    check_extractor("tiny-net")
    net = build_extractor("tiny-net")
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert not net.train().training
    features, logits = net.features_and_logits(torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8))
    assert features.shape == (5, 64) and features.dtype == torch.float32 and logits is None
    assert net.protocol() == {"name": "tiny-net", "weights_id": "none", "image_size": 32, "resize": "none"}
    with pytest.raises(TypeError, match="uint8"):
        net(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        net(torch.zeros(2, 2, 32, 32, dtype=torch.uint8))


# ---------------------------------------------------------------------------------------------------- inception
def test_inception_missing_weights_never_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", None)  # any download attempt would fail loudly
    for attempt in (lambda: check_extractor("inception-v3-compat"),
                    lambda: build_extractor("inception-v3-compat", download=False)):  # fmt: skip
        with pytest.raises(ExtractorWeightsError) as err:
            attempt()
        text = str(err.value)
        name = "weights-inception-2015-12-05-6726825d.pth"
        assert name in text and str(tmp_path / "torch" / "hub" / "checkpoints" / name) in text
        assert f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{name}" in text
        assert "wget -O" in text and "mkdir -p" in text and "weights_path" in text
    with pytest.raises(ExtractorWeightsError, match="elsewhere.pth"):
        check_extractor("inception-v3-compat", weights_path=tmp_path / "elsewhere.pth")


def test_inception_builds_from_a_weights_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Randomly initialised weights in the real file format: shapes, grey → RGB, weights id, protocol."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    torch.save({}, tmp_path / "empty.pth")
    with monkeypatch.context() as patch:
        patch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        net = FeatureExtractorInceptionV3("x", ["2048"], feature_extractor_weights_path=str(tmp_path / "empty.pth"))
    weights = tmp_path / "random.pth"
    torch.save(net.state_dict(), weights)
    check_extractor("inception-v3-compat", weights_path=weights)
    ext = build_extractor("inception-v3-compat", weights_path=weights)
    grey = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    features, logits = ext.features_and_logits(grey)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008) and torch.isfinite(features).all()
    assert torch.equal(ext(grey.expand(-1, 3, -1, -1)), features)
    assert ext.weights_id == hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    protocol = {"name": "inception-v3-compat", "weights_id": ext.weights_id, "image_size": 299}
    assert ext.protocol() == {**protocol, "resize": "tf1-bilinear-299"}


# -------------------------------------------------------------------------------------------------------- lenet
def test_lenet_train_load_and_errors(mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datamodules.mnist import MNISTDataModule

    monkeypatch.setenv("LIGHTNING_GANS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ExtractorWeightsError, match=r"lightning-gans train-extractor mnist \[--data_dir DIR\]"):
        check_extractor("lenet-mnist")

    path = train_lenet_mnist(data_dir=str(mnist_root), epochs=1, batch_size=64, progress=False)
    assert path == tmp_path / "cache" / "extractors" / "lenet-mnist.pt"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.with_suffix(".sha256").read_text().split() == [digest, "lenet-mnist.pt"]
    meta = torch.load(path, weights_only=True)["meta"]
    assert meta["epochs"] == 1 and meta["seed"] == 0 and 0.0 <= meta["test_accuracy"] <= 1.0

    check_extractor("lenet-mnist")
    ext = build_extractor("lenet-mnist")
    dm = MNISTDataModule(data_dir=str(mnist_root), download=False)
    images, train = dm.real_images("test")[0], dm.real_images("train")[0]
    features, logits = ext.features_and_logits(to_uint8(images))
    assert features.shape == (64, 128) and logits.shape == (64, 10)
    assert torch.equal(features, ext.net.features(images) * meta["feature_scale"])  # the datamodule's scaling
    assert ext(to_uint8(train)).pow(2).mean().item() == pytest.approx(1.0, rel=1e-4)
    assert torch.equal(ext(to_uint8(images).expand(-1, 3, -1, -1)), features)
    assert ext.weights_id == digest[:12] and ext.protocol()["resize"] == "none"
    with pytest.raises(ValueError, match="28×28"):
        ext(torch.zeros(1, 1, 32, 32, dtype=torch.uint8))

    with open(path, "ab") as fh:
        fh.write(b"corrupted")
    for attempt in (lambda: check_extractor("lenet-mnist"), lambda: build_extractor("lenet-mnist")):
        with pytest.raises(ExtractorChecksumError, match="does not match its checksum.*Retrain.*train-extractor"):
            attempt()

    out = tmp_path / "other" / "lenet.pt"  # the CLI entry point, writing elsewhere
    train_extractor_command(["mnist", "--data_dir", str(mnist_root), "--epochs", "1", "--out", str(out)])
    assert build_extractor("lenet-mnist", weights_path=out).weights_id == file_sha256(out)[:12]


def test_building_an_extractor_leaves_the_global_rng_alone(tmp_path: Path) -> None:
    """Adding an evaluation callback must not change a seeded training run."""
    from lightning_gans.metrics import register_extractor

    @register_extractor("rng-probe", overwrite=True)
    def _probe() -> FeatureExtractor:
        class Probe(FeatureExtractor):
            name, num_features, num_classes = "rng-probe", 4, None

            def __init__(self) -> None:
                super().__init__()
                self.linear = torch.nn.Linear(3, 4)  # random init draws from the global RNG

            def extract(self, images):
                return self.linear(images.float().mean((2, 3))), None

        return Probe()

    torch.manual_seed(123)
    before = torch.get_rng_state()
    build_extractor("rng-probe")
    assert torch.equal(torch.get_rng_state(), before)
