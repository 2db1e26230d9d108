"""PRDC (precision, recall, density, coverage), intra-class FID and repeated evaluations (error bars).

PRDC is checked against a direct NumPy transcription of the papers' formulas (Kynkäänniemi et al. 2019, Naeem et
al. 2020), including ties at the k-th neighbour; intra-FID against the existing FID class by class; both against
a 2-process gloo evaluation with an odd N.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from gloo_ranks import run_forked_ranks
from quality_fakes import TinyExtractor

from lightning_gans.evaluation import (
    EvalSettings,
    evaluate_image_quality,
    make_protocol,
    metric_names,
    sample_size_warning,
)
from lightning_gans.metrics import ClassFrechetDistance, FrechetDistance, PrecisionRecallDensityCoverage
from lightning_gans.metrics.prdc import prdc


# ---------------------------------------------------------------------------------------------- PRDC
def numpy_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """The formulas, verbatim: balls reach the k-th nearest other sample; strict < (the authors' code)."""
    d_rr = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
    d_ff = np.sqrt(((fake[:, None] - fake[None]) ** 2).sum(-1))
    d_rf = np.sqrt(((real[:, None] - fake[None]) ** 2).sum(-1))  # (N, M)
    r = np.sort(d_rr, axis=1)[:, k]  # index 0 is the point itself
    s = np.sort(d_ff, axis=1)[:, k]
    inside = d_rf < r[:, None]  # fake j inside real ball i
    return {
        "precision": inside.any(0).mean(),
        "recall": (d_rf < s[None, :]).any(1).mean(),
        "density": inside.sum() / (k * fake.shape[0]),
        "coverage": (d_rf.min(1) < r).mean(),
    }


def _close(got: dict[str, torch.Tensor], want: dict[str, float]) -> None:
    assert {k: float(v) for k, v in got.items()} == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_equals_the_formulas_on_random_sets(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    real, fake = torch.randn(120, 6, generator=g), torch.randn(97, 6, generator=g) * 1.3 + 0.4
    want = numpy_prdc(real.double().numpy(), fake.double().numpy(), k)
    assert 0.05 < want["precision"] < 0.99 and 0.05 < want["recall"] < 0.99  # not a degenerate case
    _close(prdc(real, fake, k), want)
    _close(prdc(real, fake, k, chunk_elements=50), want)  # chunked: rows of a few distances at a time


def test_prdc_ties_at_the_kth_neighbour() -> None:
    """Integer grid points: many distances tie with the k-th neighbour's, and duplicates sit at distance 0."""
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randint(0, 3, (80, 3), generator=g).float(), torch.randint(0, 4, (70, 3), generator=g).float()
    for k in (2, 5):
        r = np.sort(np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1).numpy()), axis=1)[:, k]
        d_rf = np.sqrt(((real[:, None] - fake[None]) ** 2).sum(-1).numpy())
        assert (np.isclose(d_rf, r[:, None])).sum() > 50, "the case must contain ties at the radius"
        _close(prdc(real, fake, k), numpy_prdc(real.numpy().astype(float), fake.numpy().astype(float), k))


def test_prdc_limits() -> None:
    g = torch.Generator().manual_seed(1)
    real, other = torch.randn(1500, 8, generator=g), torch.randn(1500, 8, generator=g)
    same = {k: float(v) for k, v in prdc(real, real).items()}
    assert same == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}
    twin = {k: float(v) for k, v in prdc(real, other).items()}  # two samples of one distribution
    assert twin["precision"] > 0.85 and twin["recall"] > 0.85 and twin["coverage"] > 0.95
    assert 0.9 < twin["density"] < 1.1
    apart = {k: float(v) for k, v in prdc(real, other + 20.0).items()}  # disjoint blobs
    assert apart == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    shrunk = {k: float(v) for k, v in prdc(real, other * 0.3).items()}  # fidelity without diversity
    assert shrunk["precision"] > 0.99 and shrunk["recall"] < 0.5 and shrunk["density"] > 1.5


def test_prdc_metric_is_order_and_duplicate_invariant() -> None:
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(50, 4, generator=g), torch.randn(41, 4, generator=g)
    metric = PrecisionRecallDensityCoverage(k=3)
    metric.update(real.flip(0), True, torch.arange(50).flip(0))
    metric.update(fake[:30], False, torch.arange(30))
    metric.update(fake[20:], False, torch.arange(20, 41))  # 20..29 twice, as a padded sampler does
    _close(metric.compute(), numpy_prdc(real.double().numpy(), fake.double().numpy(), 3))
    with pytest.raises(ValueError, match="more than 3 samples"):
        prdc(real[:3], fake, 3)


# ---------------------------------------------------------------------------------------------- intra-FID
def test_intra_fid_is_the_mean_of_per_class_fids() -> None:
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(400, 5, generator=g), torch.randn(400, 5, generator=g) * 1.2
    real_y, fake_y = torch.randint(0, 4, (400,), generator=g), torch.randint(0, 4, (400,), generator=g)
    fake += fake_y[:, None] * 0.3  # classes differ in quality
    metric = ClassFrechetDistance(5, 4)
    metric.update(real, real_y, True)
    metric.update(fake, fake_y, False)
    mean, per_class = metric.compute()
    expected = []
    for c in range(4):
        fid = FrechetDistance(5)
        fid.update(real[real_y == c], real=True)
        fid.update(fake[fake_y == c], real=False)
        expected.append(float(fid.compute()))
    assert per_class.tolist() == pytest.approx(expected, rel=1e-9)
    assert float(mean) == pytest.approx(np.mean(expected), rel=1e-9)
    assert expected[3] > expected[0]
    lonely = ClassFrechetDistance(5, 4)
    lonely.update(real, real_y, True)
    lonely.update(fake[fake_y != 2], fake_y[fake_y != 2], False)
    with pytest.raises(RuntimeError, match="2: .* real/0 fake"):
        lonely.compute()


# ------------------------------------------------------------------------ a class-conditional stand-in generator
TEMPLATES = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(4)) * 1.4 - 0.7
WAVE = torch.rand(784, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 3


def digits(labels: torch.Tensor, indices: torch.Tensor, phase: float) -> torch.Tensor:
    """Class template + a per-index pattern: sample i depends only on (label, index), whatever the batch."""
    pattern = 0.25 * torch.sin(indices.double()[:, None] * WAVE + phase).float().view(-1, 1, 28, 28)
    return (TEMPLATES[labels] + pattern).clamp(-1, 1)


def conditional_sampler(swap: bool = False):
    """Fakes of the requested labels; ``swap``: label 0 gets the 1 the good sampler draws for the neighbouring
    index and vice versa (labels are i % 10), so the pooled fakes are the same images, only under swapped labels."""

    def sample(count: int, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if not swap:
            return digits(labels, indices, phase=1.0)
        drawn = torch.where(labels == 0, 1, torch.where(labels == 1, 0, labels))
        partner = indices + (labels == 0).long() - (labels == 1).long()
        return digits(drawn, partner, phase=1.0)

    return sample


def _reals(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % 10
    return digits(labels, torch.arange(n), phase=0.0), labels


def _evaluate(sample_fn, n: int, metrics: list[str], rank: int = 0, world: int = 1, **settings):
    images, labels = _reals(n)
    extractor = TinyExtractor()
    return evaluate_image_quality(
        sample_fn,
        images,
        labels,
        extractor,
        make_protocol("digits", "test", n, extractor),
        metrics,
        EvalSettings(batch_size=32, kid_subsets=3, kid_subset_size=50, **settings),
        conditional=True,
        rank=rank,
        world_size=world,
    )


def test_swapped_labels_keep_fid_but_raise_intra_fid() -> None:
    """A generator drawing 1s for label 0 and 0s for label 1: the pooled fakes are the same images, so FID stays
    (up to summation order), but the classes' FIDs for 0 and 1 blow up."""
    good = _evaluate(conditional_sampler(), 1000, ["fid", "intra_fid"])
    swapped = _evaluate(conditional_sampler(swap=True), 1000, ["fid", "intra_fid"])
    assert swapped.values["fid"] == pytest.approx(good.values["fid"], rel=1e-9)
    assert swapped.values["intra_fid"] > 3 * good.values["intra_fid"]
    bad, fine = swapped.details["intra_fid_per_class"], good.details["intra_fid_per_class"]
    assert min(bad[0], bad[1]) > 5 * max(fine) and bad[2:] == pytest.approx(fine[2:], rel=1e-6)
    assert good.values["intra_fid"] == pytest.approx(np.mean(fine), rel=1e-6)


def ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = _evaluate(conditional_sampler(), 101, ["fid", "kid", "prdc", "intra_fid"], rank, world, prdc_k=3)
        torch.save((result.values, result.details), os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process_with_an_odd_n(tmp_path: Path) -> None:
    """N = 101 over 2 ranks (51 + 50): PRDC identical (index-tagged float64 features), FID/intra-FID to 1e-9."""
    assert run_forked_ranks(ddp_worker, 2, str(tmp_path)) == [0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = _evaluate(conditional_sampler(), 101, ["fid", "kid", "prdc", "intra_fid"], prdc_k=3)
    for rank in range(2):
        values, details = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert values.keys() == single.values.keys()
        for key in ("prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage", "kid"):
            assert values[key] == single.values[key], key
        assert values["fid"] == pytest.approx(single.values["fid"], rel=1e-9)
        assert values["intra_fid"] == pytest.approx(single.values["intra_fid"], rel=1e-9)
        assert details["intra_fid_per_class"] == pytest.approx(single.details["intra_fid_per_class"], rel=1e-6)
    assert 0 < single.values["prdc_precision"] <= 1 and single.values["prdc_density"] > 0


# ---------------------------------------------------------------------------------------------- repeats
def test_repeats_are_disjoint_fake_sets_with_mean_and_std() -> None:
    """Repeat r draws the latents of indices r·N … r·N + N − 1: each equals a plain evaluation of shifted fakes."""
    n, metrics = 200, ["fid", "kid", "prdc"]
    result = _evaluate(conditional_sampler(), n, metrics, repeats=3)
    singles = []
    base = conditional_sampler()
    for r in range(3):
        shifted = lambda c, labels, indices, r=r: base(c, labels, indices + r * n)  # noqa: E731
        singles.append(_evaluate(shifted, n, metrics).values)
    for key in ("fid", "kid", "prdc_precision", "prdc_coverage"):
        column = [s[key] for s in singles]
        assert result.details["per_repeat"][key] == pytest.approx(column, rel=1e-9)
        assert result.values[key] == pytest.approx(np.mean(column), rel=1e-9)
        if key != "kid":  # KID's std pools the subsets of every repeat (below)
            assert result.values[f"{key}_std"] == pytest.approx(np.std(column, ddof=1), rel=1e-6, abs=1e-12)
    assert result.values["fid_std"] > 0 and result.details["repeats"] == 3
    kids = np.array([(s["kid"], s["kid_std"]) for s in singles])
    pooled = np.sqrt(np.mean(kids[:, 1] ** 2 + kids[:, 0] ** 2) - kids[:, 0].mean() ** 2)
    assert result.values["kid_std"] == pytest.approx(pooled, rel=1e-6)
    assert set(metric_names(metrics, "tiny-test", n, repeats=3)) == set(result.values)


def test_sample_size_warning_names_the_n_to_use() -> None:
    assert sample_size_warning(["fid"], 10000, 128) is None
    message = sample_size_warning(["fid", "is"], 5000, 2048)
    assert "N=5000" in message and "N >= 10240" in message and "Chong & Forsyth" in message
    per_class = sample_size_warning(["intra_fid"], 10000, 2048, classes=10)
    assert "N/K (K=10)=1000" in per_class
    with pytest.warns(UserWarning, match=r"N >= 80"):
        _evaluate(conditional_sampler(), 60, ["fid"])
