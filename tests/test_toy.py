"""Mode-coverage metrics on hand-made samples (rule in ``datamodules.toy.toy_metrics``)."""

from __future__ import annotations

import numpy as np
import torch

from datamodules.toy import mode_centers, mode_std, scatter_plot, toy_metrics


def _at_modes(name: str, per_mode: int, jitter: float = 0.5) -> torch.Tensor:
    """``per_mode`` points on every mode, offset by ``jitter``·σ (well inside the 3σ radius)."""
    centers = mode_centers(name)
    offset = torch.tensor([jitter * mode_std(name), 0.0])
    return (centers + offset).repeat_interleave(per_mode, dim=0)


def test_grid_all_modes() -> None:
    m = toy_metrics(_at_modes("grid25", 40), "grid25")
    assert m == {"modes_covered": 25, "num_modes": 25, "high_quality_pct": 100.0}


def test_ring_all_modes() -> None:
    m = toy_metrics(_at_modes("ring8", 100), "ring8")
    assert (m["modes_covered"], m["num_modes"], m["high_quality_pct"]) == (8, 8, 100.0)


def test_single_mode_collapse() -> None:
    x = mode_centers("grid25")[7].repeat(1000, 1)
    m = toy_metrics(x, "grid25")
    assert m["modes_covered"] == 1 and m["high_quality_pct"] == 100.0


def test_far_from_every_mode() -> None:
    x = torch.full((500, 2), 1.0)  # halfway between grid modes, far beyond 3σ
    assert toy_metrics(x, "grid25") == {"modes_covered": 0, "num_modes": 25, "high_quality_pct": 0.0}
    assert toy_metrics(torch.full((500, 2), 10.0), "ring8")["modes_covered"] == 0


def test_three_sigma_boundary() -> None:
    sigma = mode_std("grid25")
    inside = torch.tensor([[2.0 + 2.9 * sigma, 0.0]]).repeat(50, 1)
    outside = torch.tensor([[2.0 + 3.1 * sigma, 0.0]]).repeat(50, 1)
    m = toy_metrics(torch.cat([inside, outside]), "grid25")
    assert m["high_quality_pct"] == 50.0 and m["modes_covered"] == 1


def test_one_percent_rule() -> None:
    centers = mode_centers("grid25")
    # 1000 samples: 995 on mode 0, 5 (0.5 % < 1 %) on mode 1 → mode 1 not covered.
    x = torch.cat([centers[0].repeat(995, 1), centers[1].repeat(5, 1)])
    m = toy_metrics(x, "grid25")
    assert m["modes_covered"] == 1 and m["high_quality_pct"] == 100.0
    # exactly 1 % (10 of 1000) is enough.
    x = torch.cat([centers[0].repeat(990, 1), centers[1].repeat(10, 1)])
    assert toy_metrics(x, "grid25")["modes_covered"] == 2
    # only high-quality samples count towards the 1 %: 10 near mode 1 but outside 3σ → not covered.
    near = centers[1] + torch.tensor([4 * mode_std("grid25"), 0.0])
    x = torch.cat([centers[0].repeat(990, 1), near.repeat(10, 1)])
    assert toy_metrics(x, "grid25")["modes_covered"] == 1


def test_at_least_one_sample_and_nan() -> None:
    x = torch.cat([mode_centers("ring8")[:1], torch.full((3, 2), float("nan"))])
    m = toy_metrics(x, "ring8")  # 50 samples would be needed for 1 %: here 1 % of 4 < 1 sample → 1 needed
    assert m["modes_covered"] == 1 and m["high_quality_pct"] == 25.0
    assert toy_metrics(torch.empty(0, 2), "ring8")["modes_covered"] == 0


def test_scatter_plot_image() -> None:
    samples = _at_modes("ring8", 50)
    img = scatter_plot(samples, "ring8", real=_at_modes("ring8", 10), title="t")
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img.min() < 128 < img.max()  # something was drawn on the white background
    assert scatter_plot(samples, "grid25").shape == img.shape
