"""Callbacks for the translation models (``CycleGAN``, ``DiscoGAN``): a per-epoch sample grid of fixed test images
and FID per direction plus mean cycle-reconstruction L1 on the test split.

Both read the datamodule's ``domain_dataset(domain, split)`` (``datamodules.paired`` / ``datamodules.unpaired``) and
the model's ``translate(images, "AtoB" | "BtoA")``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from lightning_gans.callbacks._timing import epoch_due
from lightning_gans.callbacks.image_quality import ImageQualityCallback, _progress
from lightning_gans.capabilities import is_translator
from lightning_gans.errors import ConfigError
from lightning_gans.evaluation import EvalSettings, count_label, evaluate_image_quality, make_protocol, shard_indices
from lightning_gans.metrics import ReferenceCache, check_extractor
from lightning_gans.outputs import append_metrics, define_wandb_summaries, log_image, make_grid

DIRECTIONS = (("AtoB", "A", "B"), ("BtoA", "B", "A"))  # (direction, source domain, target domain)
BACK = {"AtoB": "BtoA", "BtoA": "AtoB"}


def domain_images(trainer: pl.Trainer, domain: str, split: str, limit: int | None = None) -> torch.Tensor:
    """The first ``limit`` (all if None) images of one domain of ``split`` as one N×C×H×W tensor in [-1, 1]."""
    datamodule = trainer.datamodule
    if not callable(getattr(datamodule, "domain_dataset", None)):
        raise ConfigError(
            f"translation callbacks need a datamodule with domain_dataset(domain, split) (datamodules.paired, "
            f"datamodules.unpaired); {type(datamodule).__name__} has none"
        )
    dataset = datamodule.domain_dataset(domain, split)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise ConfigError(f"the {split} split of domain {domain} is empty")
    return torch.stack([dataset[i] for i in range(n)])


def _check_translator(pl_module: pl.LightningModule, name: str) -> None:
    if not is_translator(pl_module):
        raise ConfigError(f"{name} needs a translation model with translate(images, direction), e.g. CycleGAN")


class TranslationGridCallback(Callback):
    """Every ``every_n_epochs`` epochs, a grid of ``num_images`` fixed test images of each domain: one row per
    image, columns a | G_AB(a) | G_BA(G_AB(a)) | b | G_BA(b) | G_AB(G_BA(b)) (input | translated | reconstructed),
    saved as ``samples/translation_epochNNNN.png`` and sent to the image loggers (uint8)."""

    def __init__(self, every_n_epochs: int = 1, num_images: int = 4, split: str = "test") -> None:
        if num_images < 1 or every_n_epochs < 1:
            raise ValueError(f"need num_images >= 1 and every_n_epochs >= 1, got {num_images}, {every_n_epochs}")
        self.every_n_epochs, self.num_images, self.split = every_n_epochs, num_images, split
        self.fixed: dict[str, torch.Tensor] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        _check_translator(pl_module, type(self).__name__)
        self.fixed = {d: domain_images(trainer, d, self.split, self.num_images) for d in "AB"}

    def grid(self, pl_module: pl.LightningModule) -> torch.Tensor:
        """The 6 × k images of the grid, row-major (k = images per domain shown)."""
        k = min(len(self.fixed["A"]), len(self.fixed["B"]))
        columns = []
        for direction, source, _ in DIRECTIONS:
            images = self.fixed[source][:k].to(pl_module.device)
            translated = pl_module.translate(images, direction)
            columns += [images, translated, pl_module.translate(translated, BACK[direction])]
        return torch.stack(columns, dim=1).flatten(0, 1)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not epoch_due(trainer, self.every_n_epochs):
            return
        grid = make_grid(self.grid(pl_module).cpu(), nrow=6)
        name = f"translation_epoch{trainer.current_epoch + 1:04d}.png"
        log_image(trainer, "samples/translation", grid, filename=name)


class TranslationQualityCallback(ImageQualityCallback):
    """FID per direction and mean cycle-reconstruction L1 on ``split``, every ``every_n_epochs`` epochs (and/or
    ``every_n_steps`` steps) and at the end of training.

    * ``fid_AtoB/<extractor>/<N>``: G_AB(test A) against real test B; ``fid_BtoA/…``: G_BA(test B) against real
      test A; N = ``num_samples`` (default: the smaller test domain). The evaluation is
      :func:`lightning_gans.evaluation.evaluate_image_quality`: exact N under DDP (rank r translates the test images at
      the global indices r, r + W, …), FrechetDistance sum states, the reference-statistics cache keyed by the
      protocol (dataset/domain, split, N, extractor, weights, ``resize_to``).
    * ``cycle_l1_A/<split>``: mean over every test image of domain A of mean |G_BA(G_AB(a)) − a| in [-1, 1] units
      (likewise B); each rank sums its interleaved shard and the sums are all-reduced, so it is exact under DDP.

    ``resize_to`` resizes translated and real images (bilinear, antialiased) before an extractor that takes one
    size only (``lenet-mnist``: 28); the extractor's own resizing applies otherwise. Skipped under ``fast_dev_run``.
    """

    def __init__(
        self,
        extractor: str = "inception-v3-compat",
        extractor_kwargs: dict | None = None,
        num_samples: int | None = None,
        split: str = "test",
        every_n_epochs: int | None = 1,
        every_n_steps: int | None = None,
        batch_size: int = 100,
        use_cache: bool = True,
        resize_to: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            metrics=["fid"],
            extractor=extractor,
            extractor_kwargs=extractor_kwargs,
            num_samples=num_samples or 2,
            split=split,
            every_n_epochs=every_n_epochs,
            every_n_steps=every_n_steps,
            batch_size=batch_size,
            use_cache=use_cache,
            seed=seed,
        )
        self.requested_samples = num_samples
        self.resize_to = resize_to
        self.domains: dict[str, torch.Tensor] = {}
        self.references: dict[str, dict[str, torch.Tensor] | None] = {"A": None, "B": None}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._skip = bool(trainer.fast_dev_run)
        if self._skip:
            rank_zero_info("TranslationQualityCallback: skipped under fast_dev_run")
            return
        _check_translator(pl_module, type(self).__name__)
        check_extractor(self.extractor_name, **self.extractor_kwargs)  # missing weights: fail now, not at epoch 1
        self.domains = {d: domain_images(trainer, d, self.split) for d in "AB"}
        shorter = min(len(v) for v in self.domains.values())
        n = self.requested_samples or shorter
        if not 2 <= n <= shorter:
            raise ConfigError(
                f"TranslationQualityCallback: num_samples={n} but the {self.split} split has {shorter} images in its "
                "smaller domain (FID compares N translated with N real images): lower num_samples or leave it unset"
            )
        self.num_samples = n
        suffix = f"{self.extractor_name}/{count_label(n)}"
        self.names = {f"fid_{direction}": f"fid_{direction}/{suffix}" for direction, _, _ in DIRECTIONS}
        self.names.update({f"cycle_l1_{d}": f"cycle_l1_{d}/{self.split}" for d in "AB"})

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        if self.resize_to is None or images.shape[-1] == self.resize_to:
            return images
        size = (self.resize_to, self.resize_to)
        return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)

    def _evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch_end: bool) -> None:
        extractor = self._get_extractor(pl_module.device)
        dataset = getattr(trainer.datamodule, "dataset_name", type(trainer.datamodule).__name__)
        rank, world = trainer.global_rank, trainer.world_size
        logged: dict[str, float] = {}
        for direction, source, target in DIRECTIONS:
            images = self.domains[source]

            def translate(count: int, labels: Any = None, indices: torch.Tensor = None, _d=direction, _x=images):
                return self._resize(pl_module.translate(_x[indices].to(pl_module.device), _d))

            protocol = make_protocol(f"{dataset}/{target}", self.split, self.num_samples, extractor)
            protocol = protocol.with_extra(resize_to=self.resize_to)
            result = evaluate_image_quality(
                translate,
                self._resize(self.domains[target]),
                None,
                extractor,
                protocol,
                ["fid"],
                EvalSettings(batch_size=self.batch_size, seed=self.seed),
                rank=rank,
                world_size=world,
                device=pl_module.device,
                reference=self.references[target],
                cache=ReferenceCache() if self.use_cache else None,
                progress=_progress(trainer),
            )
            if result.reference is not None:
                self.references[target] = result.reference
            logged[self.names[f"fid_{direction}"]] = result.values["fid"]
        for domain in "AB":
            logged[self.names[f"cycle_l1_{domain}"]] = self.cycle_l1(trainer, pl_module, domain)
        self.last_metrics = dict(logged)
        self._log(trainer, pl_module, logged, epoch_end)
        protocol = {"dataset": dataset, "split": self.split, "n": self.num_samples, "resize_to": self.resize_to}
        protocol.update(extractor.protocol())
        append_metrics(trainer, logged, kind="translation_quality", protocol=protocol, seed=self.seed)

    @torch.no_grad()
    def cycle_l1(self, trainer: pl.Trainer, pl_module: pl.LightningModule, domain: str) -> float:
        """Mean over all ``split`` images of ``domain`` of the per-image mean |reconstruction − input| (exact under
        DDP: interleaved shards, summed over ranks)."""
        images = self.domains[domain]
        mine = shard_indices(len(images), trainer.global_rank, trainer.world_size)
        total = torch.zeros((), dtype=torch.float64, device=pl_module.device)
        for start in range(0, len(mine), self.batch_size):
            x = images[mine[start : start + self.batch_size]].to(pl_module.device)
            there = "AtoB" if domain == "A" else "BtoA"
            reconstructed = pl_module.translate(pl_module.translate(x, there), BACK[there])
            total += (reconstructed - x).abs().flatten(1).mean(1).double().sum()
        total = trainer.strategy.reduce(total, reduce_op="sum")
        return float(total) / len(images)

    def _define_summaries(self, trainer: pl.Trainer) -> None:
        """Every value here is better lower: W&B "min" summaries."""
        if not self._summaries_defined:
            self._summaries_defined = True
            define_wandb_summaries(trainer, dict.fromkeys(self.names.values(), "min"), type(self).__name__)
