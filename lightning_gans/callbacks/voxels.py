"""Voxel outputs of the 3D-GAN: rendered sample grids (every logger), W&B point clouds, and coverage / MMD.

* :func:`render_volumes` — occupancies thresholded at 0.5, drawn with matplotlib's ``Axes3D.voxels`` (one 3-D
  panel per volume, z up) into one uint8 H×W×3 grid: what the run directory, W&B and ``lightning-gans sample``
  get. Volumes larger than ``max_resolution`` are max-pooled to it for drawing only (``voxels`` draws every
  exposed face; 64³ shapes take seconds each) — the saved ``.npy`` samples keep full resolution.
* :class:`VoxelRenderCallback` — every ``every_n_epochs`` epochs renders ``pl_module.sample_fixed()``
  (the fixed-noise volumes) to ``samples/voxels_epochNNNN.png`` and every image logger; with a ``WandbLogger``
  also one ``wandb.Object3D`` point cloud (the occupied voxel centres) per volume.
* :class:`VoxelQualityCallback` — coverage and MMD by voxel IoU (:mod:`lightning_gans.metrics.voxel`) of
  ``num_samples`` fakes against the first ``num_samples`` volumes of the datamodule's ``split``, exact under DDP;
  logged as ``coverage/voxel-iou/<N>`` and ``mmd/voxel-iou/<N>`` and appended to ``metrics.jsonl``
  (``kind="voxel_quality"``), like the image metrics. ``at_start=True`` also scores the untrained generator.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from lightning_gans.callbacks._timing import epoch_due
from lightning_gans.callbacks.image_quality import ImageQualityCallback, _progress
from lightning_gans.compat import logged_step
from lightning_gans.errors import ConfigError
from lightning_gans.evaluation import ModuleSampler, metric_names
from lightning_gans.evaluation.voxels import evaluate_voxel_quality
from lightning_gans.metrics.voxel import EXTRACTOR_NAME, THRESHOLD, VoxelCoverage
from lightning_gans.outputs import append_metrics, log_image


def _for_drawing(volume: torch.Tensor, threshold: float, max_resolution: int) -> np.ndarray:
    """One D×H×W occupancy volume → bool array of at most ``max_resolution`` per side (max-pooled)."""
    occupied = (volume.detach().float().cpu().reshape(1, 1, *volume.shape[-3:]) > threshold).float()
    side = max(occupied.shape[-3:])
    if side > max_resolution:
        occupied = F.adaptive_max_pool3d(occupied, max_resolution)
    return occupied[0, 0].numpy() > 0


# The unit square of each face direction, as corner offsets from the voxel's low corner (axis, side) → 4×3.
_FACE_CORNERS = {
    0: np.array([[0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1]]),
    1: np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]]),
    2: np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]),
}
_FACE_SHADE = {(0, 0): 0.55, (0, 1): 0.8, (1, 0): 0.65, (1, 1): 0.9, (2, 0): 0.45, (2, 1): 1.0}


def exposed_faces(occupied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The boundary of a bool volume as quads: (M×4×3 corner coordinates, M shades in (0, 1]).

    A face is drawn where an occupied voxel meets an empty one (or the grid border) — the surface
    ``Axes3D.voxels`` draws, built with array operations instead of its per-voxel Python loop.
    """
    padded = np.pad(occupied, 1)
    quads, shades = [], []
    for axis in range(3):
        for side in (0, 1):
            neighbour = np.roll(padded, -1 if side else 1, axis=axis)
            index = np.argwhere((padded & ~neighbour)[1:-1, 1:-1, 1:-1])
            if len(index) == 0:
                continue
            offset = np.zeros(3, dtype=int)
            offset[axis] = side
            quads.append(index[:, None, :] + offset + _FACE_CORNERS[axis][None])
            shades.append(np.full(len(index), _FACE_SHADE[(axis, side)]))
    if not quads:
        return np.zeros((0, 4, 3)), np.zeros(0)
    return np.concatenate(quads).astype(float), np.concatenate(shades)


def render_volumes(
    volumes: torch.Tensor,
    threshold: float = THRESHOLD,
    nrow: int | None = None,
    max_resolution: int = 32,
    panel_inches: float = 2.0,
    dpi: int = 80,
) -> np.ndarray:
    """N×1×D×H×W occupancies → one uint8 H×W×3 grid of voxel renders (``nrow`` panels per row).

    Each panel draws the exposed voxel faces (:func:`exposed_faces`) as a shaded ``Poly3DCollection``, z up.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    n = volumes.shape[0]
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    figure = Figure(figsize=(nrow * panel_inches, rows * panel_inches), dpi=dpi)
    base = np.array([0.29, 0.56, 0.85])
    for i in range(n):
        axes = figure.add_subplot(rows, nrow, i + 1, projection="3d")
        occupied = _for_drawing(volumes[i], threshold, max_resolution)
        quads, shades = exposed_faces(occupied)
        if len(quads):
            axes.add_collection3d(Poly3DCollection(quads, facecolors=shades[:, None] * base, edgecolors="none"))
        side = occupied.shape[0]
        axes.set(xlim=(0, side), ylim=(0, side), zlim=(0, side))
        axes.set_axis_off()
        axes.set_title(f"{int(occupied.sum())} vox", fontsize=7)
    figure.subplots_adjust(left=0, right=1, bottom=0, top=0.95, wspace=0, hspace=0.1)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def point_cloud(volume: torch.Tensor, threshold: float = THRESHOLD) -> np.ndarray:
    """The occupied voxel centres of one D×H×W volume as an M×3 float array (for ``wandb.Object3D``)."""
    return torch.nonzero(volume.detach().reshape(volume.shape[-3:]) > threshold).float().cpu().numpy()


class VoxelRenderCallback(Callback):
    """Render ``pl_module.sample_fixed()`` every ``every_n_epochs`` epochs (see the module docstring)."""

    def __init__(
        self,
        every_n_epochs: int = 1,
        threshold: float = THRESHOLD,
        nrow: int | None = None,
        max_resolution: int = 32,
        point_clouds: bool = True,
    ) -> None:
        if every_n_epochs < 1 or not 0.0 < threshold < 1.0:
            raise ValueError(f"need every_n_epochs >= 1 and 0 < threshold < 1, got {every_n_epochs}, {threshold}")
        self.every_n_epochs, self.threshold, self.nrow = every_n_epochs, threshold, nrow
        self.max_resolution, self.point_clouds = max_resolution, point_clouds
        self.paths: list[Any] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not epoch_due(trainer, self.every_n_epochs):
            return
        volumes = pl_module.sample_fixed()
        if volumes.dim() != 5:
            raise ConfigError(f"VoxelRenderCallback needs N×1×D×H×W volumes, got shape {tuple(volumes.shape)}")
        if not trainer.is_global_zero:
            return
        grid = render_volumes(volumes, self.threshold, self.nrow, self.max_resolution)
        epoch = trainer.current_epoch + 1
        path = log_image(trainer, "samples/voxels", grid, filename=f"voxels_epoch{epoch:04d}.png")
        self.paths.append(path)
        if self.point_clouds:
            self._log_point_clouds(trainer, volumes)

    def _log_point_clouds(self, trainer: pl.Trainer, volumes: torch.Tensor) -> None:
        from lightning.pytorch.loggers import WandbLogger

        for logger in trainer.loggers:
            if not isinstance(logger, WandbLogger):
                continue
            import wandb

            clouds = [wandb.Object3D(point_cloud(v, self.threshold)) for v in volumes if (v > self.threshold).any()]
            if clouds:
                step = logged_step(trainer)
                logger.experiment.log({"samples/voxel_points": clouds}, step=step)


class VoxelQualityCallback(ImageQualityCallback):
    """Coverage / MMD by voxel IoU during training (see the module docstring); reuses the image-quality
    callback's schedule (``every_n_epochs``, ``every_n_steps``, after the last epoch) and logging."""

    metric_objects: dict[str, type] = {"coverage": VoxelCoverage, "mmd": VoxelCoverage}

    def __init__(
        self,
        num_samples: int = 200,
        split: str = "test",
        every_n_epochs: int | None = 1,
        every_n_steps: int | None = None,
        batch_size: int = 50,
        at_start: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            num_samples=num_samples,
            split=split,
            every_n_epochs=every_n_epochs,
            every_n_steps=every_n_steps,
            batch_size=batch_size,
            seed=seed,
        )
        self.metrics = ["coverage", "mmd"]  # the FID-style defaults of the parent are replaced here
        self.names = metric_names(self.metrics, EXTRACTOR_NAME, num_samples)
        self.at_start = at_start
        self._references: torch.Tensor | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._skip = bool(trainer.fast_dev_run)
        if self._skip:
            rank_zero_info("VoxelQualityCallback: skipped under fast_dev_run")
            return
        if not getattr(pl_module, "volumetric", False):
            raise ConfigError(f"VoxelQualityCallback needs a voxel model (GAN3D), got {type(pl_module).__name__}")
        self._reference_volumes(trainer)

    def _reference_volumes(self, trainer: pl.Trainer) -> torch.Tensor:
        if self._references is None:
            real_volumes = getattr(trainer.datamodule, "real_volumes", None)
            if not callable(real_volumes):
                raise ConfigError(
                    "VoxelQualityCallback needs a datamodule with real_volumes(split) (e.g. ShapeNetVoxelsDataModule)"
                )
            volumes = real_volumes(self.split)
            if len(volumes) < self.num_samples:
                raise ConfigError(
                    f"VoxelQualityCallback: num_samples={self.num_samples} but the {self.split} split has "
                    f"{len(volumes)} volumes; lower init_args.num_samples"
                )
            self._references = volumes[: self.num_samples]
        return self._references

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.at_start:
            self._run(trainer, pl_module, epoch_end=True)

    def _evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch_end: bool) -> None:
        values, seconds = evaluate_voxel_quality(
            ModuleSampler(pl_module, seed=self.seed),
            self._reference_volumes(trainer),
            self.num_samples,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            device=pl_module.device,
            batch_size=self.batch_size,
            progress=_progress(trainer),
            seed=self.seed,
        )
        logged = {self.names[k]: v for k, v in values.items()}
        self.last_metrics = dict(logged)
        self._log(trainer, pl_module, logged, epoch_end)
        dataset = getattr(trainer.datamodule, "name", type(trainer.datamodule).__name__)
        protocol = {"dataset": dataset, "split": self.split, "n": self.num_samples, "distance": "1 - voxel IoU"}
        protocol["threshold"] = THRESHOLD
        append_metrics(trainer, logged, kind="voxel_quality", wall_time_s=round(seconds, 3), protocol=protocol)
