"""2-D mixture-of-Gaussians benchmarks for mode collapse.

* ``ring8``: 8 modes evenly spaced on a circle of radius 2, σ = 0.02
  (Metz et al. 2017, "Unrolled Generative Adversarial Networks", arXiv:1611.02163).
* ``grid25``: 25 modes on the 5×5 grid {-4, -2, 0, 2, 4}², σ = 0.05
  (Srivastava et al. 2017, "VEEGAN", arXiv:1705.07761; Lin et al. 2018, "PacGAN", arXiv:1712.04086).

Metrics follow those papers: a generated point is *high quality* if it lies within 3σ of its nearest mode,
and a mode is *covered* when enough high-quality points land on it (see :func:`toy_metrics`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from datamodules._loading import LoaderOptions, Workers
from datamodules._resume import make_loader

__all__ = [
    "GRID25",
    "MIXTURES",
    "RING8",
    "MixtureSpec",
    "ToyDataModule",
    "mode_centers",
    "mode_std",
    "sample_mixture",
    "scatter_plot",
    "toy_metrics",
]

HIGH_QUALITY_STDS = 3.0  # a sample is high quality within this many σ of its nearest mode
MIN_MODE_FRACTION = 0.01  # a mode is covered with at least this fraction of all samples (high-quality ones)
VAL_SIZE = 10_000


@dataclass(frozen=True)
class MixtureSpec:
    """One benchmark mixture: its mode centres (K×2), per-mode isotropic std, and plot half-width."""

    name: str
    centers: tuple[tuple[float, float], ...]
    std: float
    plot_limit: float

    @property
    def num_modes(self) -> int:
        return len(self.centers)


RING8 = MixtureSpec(
    name="ring8",
    centers=tuple((2.0 * math.cos(2 * math.pi * k / 8), 2.0 * math.sin(2 * math.pi * k / 8)) for k in range(8)),
    std=0.02,
    plot_limit=3.0,
)
GRID25 = MixtureSpec(
    name="grid25",
    centers=tuple((float(x), float(y)) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)),
    std=0.05,
    plot_limit=6.0,
)
MIXTURES: dict[str, MixtureSpec] = {RING8.name: RING8, GRID25.name: GRID25}


def _spec(name: str | MixtureSpec) -> MixtureSpec:
    if isinstance(name, MixtureSpec):
        return name
    try:
        return MIXTURES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown toy dataset {name!r}; choose one of {sorted(MIXTURES)}") from None


def mode_centers(name: str) -> Tensor:
    """Mode centres of dataset ``name`` as a float32 K×2 tensor."""
    return torch.tensor(_spec(name).centers, dtype=torch.float32)


def mode_std(name: str) -> float:
    """Per-coordinate standard deviation σ of every mode of dataset ``name``."""
    return _spec(name).std


def _sample_with_modes(name: str, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    centers = mode_centers(name)
    modes = torch.randint(len(centers), (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator) * mode_std(name)
    return centers[modes] + noise, modes


def sample_mixture(name: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` float32 points (n×2) from dataset ``name``: a mode drawn uniformly, plus N(0, σ²I) noise."""
    return _sample_with_modes(name, n, generator)[0]


def toy_metrics(samples: Tensor, name: str) -> dict[str, int | float]:
    """Mode-coverage metrics of ``samples`` (N×2) against dataset ``name``.

    Rule (Srivastava et al. 2017; Lin et al. 2018): each sample is assigned to its nearest mode centre
    (Euclidean). It is *high quality* if that distance is at most 3σ. A mode is *covered* when the number of
    high-quality samples assigned to it is at least 1 % of all N samples, and at least 1.

    Returns ``{"modes_covered": int, "num_modes": int, "high_quality_pct": float in [0, 100]}``.
    """
    spec = _spec(name)
    centers = mode_centers(spec.name)
    x = samples.detach().reshape(-1, 2).to(device="cpu", dtype=torch.float32)
    n = x.shape[0]
    if n == 0:
        return {"modes_covered": 0, "num_modes": spec.num_modes, "high_quality_pct": 0.0}
    dist, nearest = torch.cdist(x, centers).min(dim=1)
    high_quality = dist <= HIGH_QUALITY_STDS * spec.std  # NaN/inf samples compare False
    counts = torch.bincount(nearest[high_quality], minlength=spec.num_modes)
    covered = (counts >= max(1.0, MIN_MODE_FRACTION * n)).sum()
    return {
        "modes_covered": int(covered),
        "num_modes": spec.num_modes,
        "high_quality_pct": 100.0 * float(high_quality.sum()) / n,
    }


def scatter_plot(samples: Tensor, name: str, real: Tensor | None = None, title: str = "") -> np.ndarray:
    """Scatter of generated ``samples`` (and, lightly, ``real`` points) with mode centres marked.

    Rendered with the Agg canvas on a standalone Figure (no pyplot global state, nothing to close).
    Axis limits are fixed per dataset so plots of different epochs line up. Returns uint8 H×W×3.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    spec = _spec(name)
    fig = Figure(figsize=(4, 4), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    c = mode_centers(spec.name).numpy()
    ax.scatter(c[:, 0], c[:, 1], s=80, marker="o", facecolors="none", edgecolors="tab:red", linewidths=0.6)
    if real is not None and len(real):
        r = real.detach().reshape(-1, 2).float().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="tab:gray", alpha=0.15, linewidths=0)
    s = samples.detach().reshape(-1, 2).float().cpu().numpy()
    ax.scatter(s[:, 0], s[:, 1], s=2, c="tab:blue", alpha=0.5, linewidths=0)
    lim = spec.plot_limit
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title or spec.name, fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class ToyDataModule(LoaderOptions, pl.LightningDataModule):
    """In-memory 2-D mixture samples; batches are ``(points [B×2] float32, mode_index [B] int64)``.

    Training points are drawn deterministically from ``seed``; the held-out validation set
    (10,000 points) from ``seed + 1``. Nothing is downloaded.
    """

    in_memory = True  # num_workers auto → 0 (batches are slices of in-memory tensors)
    sample_dim = 2

    def __init__(
        self,
        dataset: Literal["ring8", "grid25"] = "grid25",
        num_samples: int = 100_000,
        batch_size: int = 512,
        seed: int = 0,
        num_workers: Workers = "auto",
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        prefetch_factor: int = 2,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.name = _spec(dataset).name
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.set_loader_options(num_workers, persistent_workers, pin_memory, prefetch_factor)
        self.num_modes = _spec(dataset).num_modes
        self._data: dict[str, tuple[Tensor, Tensor]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self._data:
            return
        for split, seed, n in (("train", self.seed, self.num_samples), ("val", self.seed + 1, VAL_SIZE)):
            gen = torch.Generator().manual_seed(seed)
            self._data[split] = _sample_with_modes(self.name, n, gen)

    def real_points(self, split: str = "val") -> tuple[Tensor, Tensor]:
        """The in-memory ``(points, mode_index)`` of ``split`` ("train" or "val")."""
        self.setup()
        return self._data[split]

    def _loader(self, split: str, shuffle: bool, drop_last: bool = False) -> DataLoader:
        self.setup()
        dataset = TensorDataset(*self._data[split])
        return make_loader(dataset, self.batch_size, shuffle, drop_last, self.loader_kwargs(), self)

    def train_dataloader(self) -> DataLoader:
        # Equal batch sizes (e.g. for PacGAN packing); only drop the ragged tail when a full batch exists.
        return self._loader("train", shuffle=True, drop_last=self.num_samples >= self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)
