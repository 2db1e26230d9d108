"""``ImageQualityCallback``: FID / IS / KID during training, exact under DDP (see :mod:`lightning_gans.evaluation`).

Every rank takes part in an evaluation: rank r of W scores the real images at global indices r, r+W, … < N and
exactly its share of N fakes; the metric states reduce exactly, so a 2-process run logs the 1-process number.
Metrics are logged with their protocol in the name (``fid/lenet-mnist/10k``, ``is/…``, ``kid/…``,
``kid_std/…``, and for conditional models ``cond_acc/…``: how often the extractor's classifier recognises the
requested label; for models scored by a classifier extractor ``coverage/…`` and ``class_kl/…``: how many classes
get ≥ ``coverage_threshold`` of the fakes, and the KL of their class histogram from uniform), appended to
``metrics.jsonl`` (``kind="image_quality"`` with the full protocol and the wall
time) and FID is declared a W&B "min" summary. Real statistics come from memory, the reference cache
(``$LIGHTNING_GANS_CACHE/reference``) or one real pass, whose result rank 0 caches.

    trainer:
      callbacks:
        - class_path: lightning_gans.callbacks.ImageQualityCallback
          init_args: {metrics: [fid, is], extractor: lenet-mnist, num_samples: 10000, every_n_epochs: 5}

**Collapse detection.** With ``collapse_coverage: 8`` (needs ``coverage`` in ``metrics``) a warning is raised (and a
``kind="collapse"`` line written to ``metrics.jsonl``) whenever class coverage has been below 8 classes for
``collapse_patience`` consecutive evaluations; ``stop_on_collapse: true`` also ends training there, so a collapsed
run does not burn its GPU budget. Coverage is identical on every rank, so under DDP all ranks stop together. The
streak is saved in checkpoints and continues after a resume. Generators learn digits one group at a time, so early
evaluations are below any useful threshold: evaluations before ``collapse_grace_steps`` GAN steps do not count, so
``stop_on_collapse`` cannot end a run that is still learning its first digits (how long that takes for the MNIST
recipes: ``docs/results.md``).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lightning_gans.callbacks._timing import epoch_due, is_last_epoch
from lightning_gans.capabilities import is_conditional, is_sampler
from lightning_gans.compat import logged_step
from lightning_gans.errors import ConfigError
from lightning_gans.evaluation import (
    METRIC_OBJECTS,
    EvalProtocol,
    EvalSettings,
    ModuleSampler,
    broadcast_buffers,
    check_metrics,
    evaluate_image_quality,
    evaluation_metadata,
    load_reference,
    make_protocol,
    metric_names,
)
from lightning_gans.metrics import (
    FeatureExtractor,
    ReferenceCache,
    build_extractor,
    check_extractor,
)
from lightning_gans.outputs import append_metrics, define_wandb_summaries, summary_direction


class CollapseWarning(UserWarning):
    """Class coverage stayed below ``collapse_coverage`` for ``collapse_patience`` evaluations."""


class ImageQualityCallback(Callback):
    """Evaluate FID/IS/KID every ``every_n_epochs`` epochs and/or ``every_n_steps`` steps, and at the end of
    training, on ``num_samples`` fakes against the first ``num_samples`` images of ``split`` of the datamodule
    (which must offer ``real_images(split) -> (images in [-1, 1], labels)``).

    ``every_n_epochs=None`` (or 0) evaluates only every ``every_n_steps`` steps and after the last epoch.
    ``seed`` fixes the latents (sample i's latent depends only on (seed, i)), so successive evaluations differ
    only by the generator's weights. ``last_metrics`` holds the latest values by logged name.
    """

    metric_objects: dict[str, type] = METRIC_OBJECTS

    def __init__(
        self,
        metrics: list[str] = ["fid", "is"],  # noqa: B006 - jsonargparse shows list defaults; never mutated
        extractor: str = "lenet-mnist",
        extractor_kwargs: dict | None = None,
        num_samples: int = 10000,
        split: str = "test",
        every_n_epochs: int | None = 1,
        every_n_steps: int | None = None,
        batch_size: int = 500,
        use_cache: bool = True,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        seed: int = 0,
        coverage_threshold: float = 0.05,
        collapse_coverage: int | None = None,
        collapse_patience: int = 3,
        collapse_grace_steps: int = 0,
        stop_on_collapse: bool = False,
        prdc_k: int = 5,
        repeats: int = 1,
        reference: str | None = None,
    ) -> None:
        """Long because every option is checked and stored here; ``reference``: a stats file (``lightning-gans
        stats compute``) for the real side, refused at fit start unless its protocol is this callback's."""
        super().__init__()
        self.metrics = check_metrics(metrics)
        if prdc_k < 1 or repeats < 1:
            raise ConfigError(f"ImageQualityCallback: prdc_k and repeats must be >= 1, got {prdc_k}, {repeats}")
        if collapse_coverage is not None and "coverage" not in self.metrics:
            raise ConfigError(
                f"ImageQualityCallback: collapse_coverage={collapse_coverage} needs the coverage metric: add coverage "
                f"to metrics (got {self.metrics}) or set collapse_coverage: null"
            )
        if collapse_patience < 1 or (collapse_coverage is not None and collapse_coverage < 1):
            raise ConfigError("ImageQualityCallback: collapse_patience and collapse_coverage must be >= 1")
        if collapse_grace_steps < 0:
            raise ConfigError(f"ImageQualityCallback: collapse_grace_steps must be >= 0, got {collapse_grace_steps}")
        if num_samples < 2 or batch_size < 1:
            raise ValueError(f"need num_samples >= 2 and batch_size >= 1, got {num_samples}, {batch_size}")
        if (every_n_epochs or 0) < 0 or (every_n_steps or 0) < 0:
            raise ValueError("every_n_epochs and every_n_steps must be positive (or None)")
        self.extractor_name = extractor
        self.extractor_kwargs = dict(extractor_kwargs or {})
        self.num_samples = num_samples
        self.split = split
        self.every_n_epochs = every_n_epochs or None
        self.every_n_steps = every_n_steps or None
        self.batch_size = batch_size
        self.use_cache = use_cache
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.seed = seed
        self.coverage_threshold = coverage_threshold
        self.collapse_coverage = collapse_coverage
        self.collapse_patience = collapse_patience
        self.collapse_grace_steps = collapse_grace_steps
        self.stop_on_collapse = stop_on_collapse
        self.prdc_k, self.repeats, self.reference_file = prdc_k, repeats, reference
        self.low_coverage_streak = 0  # consecutive evaluations with coverage < collapse_coverage (checkpointed)
        self.names = metric_names(self.metrics, extractor, num_samples, repeats)
        self.last_metrics: dict[str, float] = {}
        self._extractor: FeatureExtractor | None = None  # a callback attribute: never in the model's checkpoint
        self._reference: dict[str, torch.Tensor] | None = None  # rank 0's real statistics, reused within a run
        self._real: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._skip = False
        self._last_step: int | None = None
        self._summaries_defined = False

    # ------------------------------------------------------------------ setup: fail before training
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._skip = bool(trainer.fast_dev_run)
        if self._skip:
            rank_zero_info("ImageQualityCallback: skipped under fast_dev_run")
            return
        check_extractor(self.extractor_name, **self.extractor_kwargs)  # missing weights: fail now, not at epoch 1
        if self._extractor is None:
            self._extractor = build_extractor(self.extractor_name, **self.extractor_kwargs)
        check_metrics(self.metrics, self._extractor)
        if not is_sampler(pl_module):
            raise ConfigError(f"ImageQualityCallback: {type(pl_module).__name__} has no sample(n) method")
        for metric in ("cond_acc", "intra_fid"):
            if metric in self.metrics and not is_conditional(pl_module):
                raise ConfigError(
                    f"ImageQualityCallback: {metric} needs a conditional model, {type(pl_module).__name__} is not "
                    f"one: drop {metric} from the callback's metrics"
                )
        self._real_data(trainer)
        if self.reference_file is not None:
            self._reference = load_reference(
                self.reference_file, self._protocol(trainer, self._extractor), self.metrics
            )

    def _real_data(self, trainer: pl.Trainer) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._real is not None:
            return self._real
        datamodule = trainer.datamodule
        real_images = getattr(datamodule, "real_images", None)
        if not callable(real_images):
            raise ConfigError(
                f"ImageQualityCallback needs a datamodule with real_images(split) -> (images, labels); "
                f"{type(datamodule).__name__} has none"
            )
        out = real_images(self.split)
        images, labels = out if isinstance(out, (tuple, list)) else (out, None)
        if len(images) < self.num_samples:
            dataset = getattr(datamodule, "name", type(datamodule).__name__)
            raise ConfigError(
                f"ImageQualityCallback: num_samples={self.num_samples} but the {self.split} split of {dataset} has "
                f"{len(images)} images; lower the callback's num_samples (--trainer.callbacks…num_samples / "
                f"init_args.num_samples in the YAML) or evaluate on a larger split (init_args.split)"
            )
        self._real = (images, labels)
        return self._real

    # ------------------------------------------------------------------ when
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._run(trainer, pl_module, epoch_end=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        due = epoch_due(trainer, self.every_n_epochs) if self.every_n_epochs else is_last_epoch(trainer)
        if due:
            self._run(trainer, pl_module, epoch_end=True)

    # ------------------------------------------------------------------ evaluation
    def _get_extractor(self, device: torch.device) -> FeatureExtractor:
        if self._extractor is None:
            self._extractor = build_extractor(self.extractor_name, **self.extractor_kwargs)
        if self._extractor.device != device:
            self._extractor = self._extractor.to(device)
        return self._extractor

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch_end: bool) -> None:
        if self._skip or trainer.sanity_checking or trainer.global_step == self._last_step:
            return
        self._last_step = trainer.global_step
        broadcast_buffers(pl_module, trainer.world_size)  # every rank scores rank 0's generator (BN statistics)
        self._evaluate(trainer, pl_module, epoch_end)

    def _protocol(self, trainer: pl.Trainer, extractor: FeatureExtractor) -> EvalProtocol:
        dataset = getattr(trainer.datamodule, "name", type(trainer.datamodule).__name__)
        return make_protocol(dataset, self.split, self.num_samples, extractor)

    def _evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch_end: bool) -> None:
        """One evaluation (subclasses score other things here; ``_run`` decides when and syncs the buffers)."""
        extractor = self._get_extractor(pl_module.device)
        images, labels = self._real_data(trainer)
        protocol = self._protocol(trainer, extractor)
        settings = EvalSettings(
            self.batch_size,
            self.kid_subsets,
            self.kid_subset_size,
            self.coverage_threshold,
            self.seed,
            self.prdc_k,
            self.repeats,
        )
        result = evaluate_image_quality(
            ModuleSampler(pl_module, seed=self.seed),
            images,
            labels,
            extractor,
            protocol,
            self.metrics,
            settings,
            conditional=is_conditional(pl_module),
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            device=pl_module.device,
            reference=self._reference,
            cache=ReferenceCache() if self.use_cache else None,
            progress=_progress(trainer),
        )
        if result.reference is not None:
            self._reference = result.reference
        logged = {self.names[k]: v for k, v in result.values.items()}
        self.last_metrics = dict(logged)
        self._log(trainer, pl_module, logged, epoch_end)
        meta = evaluation_metadata(protocol, result, self.metrics, settings)
        append_metrics(trainer, logged, kind="image_quality", wall_time_s=round(result.wall_time_s, 3), **meta)
        self._check_collapse(trainer, result.values, extractor)

    # ------------------------------------------------------------------ collapse detection
    def _check_collapse(self, trainer: pl.Trainer, values: dict[str, float], extractor: FeatureExtractor) -> None:
        """Count consecutive low-coverage evaluations; warn (and optionally stop) once the streak is long enough."""
        if self.collapse_coverage is None or trainer.global_step < self.collapse_grace_steps:
            return
        coverage = values["coverage"]
        self.low_coverage_streak = self.low_coverage_streak + 1 if coverage < self.collapse_coverage else 0
        if self.low_coverage_streak < self.collapse_patience:
            return
        classes = extractor.num_classes
        message = (
            f"mode collapse suspected at step {trainer.global_step}: the generator covers {coverage:.0f}/{classes} "
            f"classes (< {self.collapse_coverage}) for {self.low_coverage_streak} consecutive evaluations"
            + (": stopping (stop_on_collapse)" if self.stop_on_collapse else "")
            + ". Try a recommended recipe (docs/models/recipes.md) or a lower learning rate / label smoothing."
        )
        rank_zero_warn(message, category=CollapseWarning)
        append_metrics(
            trainer,
            {self.names["coverage"]: coverage},
            kind="collapse",
            streak=self.low_coverage_streak,
            stopped=self.stop_on_collapse,
        )
        if self.stop_on_collapse:
            trainer.should_stop = True  # the same decision on every rank: coverage is a global value

    def state_dict(self) -> dict[str, Any]:
        """The low-coverage streak when collapse detection is on (nothing in the checkpoint otherwise)."""
        return {"low_coverage_streak": self.low_coverage_streak} if self.collapse_coverage is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.low_coverage_streak = int(state_dict.get("low_coverage_streak", 0))

    def _log(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, logged: dict[str, float], epoch_end: bool
    ) -> None:
        """Values are global already: ``sync_dist=False``. ``callback_metrics`` (for checkpoint monitors) via
        ``pl_module.log``; the loggers directly, so a step evaluation is not lost to ``log_every_n_steps``."""
        for name, value in logged.items():  # on_train_epoch_end allows only on_epoch, on_train_batch_end on_step
            pl_module.log(name, value, on_step=not epoch_end, on_epoch=epoch_end, sync_dist=False, logger=False)
        if not trainer.is_global_zero:
            return
        self._define_summaries(trainer)
        step = logged_step(trainer)
        for logger in trainer.loggers:
            logger.log_metrics({**logged, "epoch": trainer.current_epoch}, step=step)

    def _define_summaries(self, trainer: pl.Trainer) -> None:
        """FID (and KID) as W&B "min" summaries, IS as "max": the run table shows the best value, not the last."""
        if self._summaries_defined:
            return
        self._summaries_defined = True
        objects = self.metric_objects
        summaries = {name: summary_direction(objects[key], key) for key, name in self.names.items() if key in objects}
        define_wandb_summaries(trainer, summaries, type(self).__name__)


class _RichTask:
    """An evaluation pass as a task in Lightning's ``RichProgressBar`` display (a tqdm bar would be swallowed by
    rich's live display: it redirects stderr and prints only complete lines)."""

    def __init__(self, progress: Any, total: int, description: str) -> None:
        self.progress, self.total, self.description = progress, total, description

    def __enter__(self) -> _RichTask:
        self.task = self.progress.add_task(self.description, total=self.total)
        self.progress.refresh()
        return self

    def update(self, n: int) -> None:
        self.progress.update(self.task, advance=n)
        self.progress.refresh()

    def __exit__(self, *exc: Any) -> None:
        self.progress.remove_task(self.task)
        self.progress.refresh()


def _progress(trainer: pl.Trainer) -> Any:
    """Progress display for the real/fake passes: none off rank 0 or without a progress bar; a rich task under
    Lightning's ``RichProgressBar`` (the CLI default); tqdm otherwise."""
    bar = trainer.progress_bar_callback
    if not trainer.is_global_zero or bar is None:
        return False
    rich = getattr(bar, "progress", None) if isinstance(bar, RichProgressBar) else None
    if rich is None:
        return True
    return lambda total, description: _RichTask(rich, total, description)
