"""``lightning-gans`` command line: LightningCLI (fit/validate/test/predict) plus project subcommands.

    lightning-gans fit --config experiments/dcgan_mnist.yaml [--trainer.max_epochs=3] [--model.schedule.n_critic=5]
    lightning-gans sample --ckpt runs/dcgan_mnist/<run>/checkpoints/last.ckpt --n 64 --out samples
    lightning-gans sample --ckpt runs/cgan_mnist/<run>/checkpoints/last.ckpt --labels 0,1,2 --n 8 --out digits

Every ``fit`` writes a run directory ``<runs_dir>/<experiment>/<timestamp>/`` holding the resolved config
(``config.yaml``), ``checkpoints/last.ckpt``, ``samples/*.png``, ``metrics.jsonl``, the CSV log and the W&B
offline run. The experiment name is the stem of the first ``--config`` file unless ``--experiment`` is given.

Decisions made here (and why):

* **DDP strategy.** Several devices train with ``gan_ddp`` (``lightning_gans.strategies``): no DDP wrapper, one
  bucketed gradient all-reduce per optimizer step. ``strategy=ddp`` (and ``ddp_spawn``/``ddp_fork``/
  ``ddp_notebook`` and their variants) map to the matching ``gan_ddp*`` name (logged); ``auto`` with several
  devices or nodes means ``gan_ddp``; other multi-process strategies (FSDP, DeepSpeed, a ``DDPStrategy`` object)
  are refused with a line naming ``gan_ddp``. SyncBatchNorm stays a trainer option (``--trainer.sync_batchnorm``).
* **Rejected trainer options.** ``gradient_clip_val`` and ``accumulate_grad_batches`` cannot work with
  manual optimisation; they are refused before fit with the model option to use instead.
* **W&B** is offline unless ``WANDB_MODE=online`` (or ``--wandb.mode=online``); ``disabled`` turns it off.
  Offline runs are synced later with ``wandb sync <run_dir>/wandb/offline-run-*``.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.strategies import ParallelStrategy, Strategy
from lightning.pytorch.utilities import rank_zero_info

from lightning_gans import config_files, user_errors
from lightning_gans.callbacks import FitSummary, MetricsJsonl, Preemption, RunCheckpoint
from lightning_gans.callbacks.checkpoint import AtomicCheckpointIO
from lightning_gans.callbacks.preemption import slurm_job_id
from lightning_gans.checkpoints import model_class_path, read_checkpoint
from lightning_gans.compat import wandb_init_kwargs
from lightning_gans.console import quiet_console
from lightning_gans.errors import (
    ConfigError,
    LightningGANsError,
    NonFiniteLossError,  # noqa: F401 - re-exported (old import path)
)
from lightning_gans.models.base import GANModule
from lightning_gans.strategies import GANDDPStrategy, gan_strategy_for
from lightning_gans.user_errors import OneLineParser, fail, instantiation_error, wandb_api_key

RUN_DIR_ENV = "LIGHTNING_GANS_RUN_DIR"
REJECTED_TRAINER_OPTIONS = {
    "gradient_clip_val": (
        None,
        "GANs clip each network separately: use --model.regularisers.gradient_clip_d=<v> and/or "
        "--model.regularisers.gradient_clip_g=<v>",
    ),
    "accumulate_grad_batches": (
        1,
        "manual optimisation steps every batch; raise --data.batch_size (or use more devices) instead",
    ),
}


class RunConfigSaver(SaveConfigCallback):
    """Write the resolved config to ``<run_dir>/config.yaml`` and send it to the loggers (W&B config)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.already_saved or not trainer.is_global_zero:
            return
        path = Path(trainer.default_root_dir) / self.config_filename
        path.parent.mkdir(parents=True, exist_ok=True)
        self.parser.save(self.config, path, skip_unset=False, overwrite=True, multifile=False)
        self.already_saved = True
        config = self.parser.dump(self.config, skip_unset=False, format="json")
        import json

        for logger in trainer.loggers:
            logger.log_hyperparams({"config": json.loads(config)})


class GANLightningCLI(LightningCLI):
    def __init__(self, args: Any = None, run: bool = True) -> None:
        config_files.install()  # experiment files compose: `defaults:` and named callbacks (config_files.py)
        super().__init__(
            model_class=GANModule,
            datamodule_class=pl.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=RunConfigSaver,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            args=args,
            run=run,
            auto_configure_optimizers=False,
            parser_class=OneLineParser,  # parse errors: one line naming the option (user_errors.py)
        )

    def _parse_ckpt_path(self) -> None:
        """``--ckpt_path``: one line for a file that is not a checkpoint, or one of another model than ``--config``
        (Lightning would otherwise swap in the checkpoint's model class silently); then Lightning's parsing."""
        subcommand = self.config.get("subcommand")
        ckpt = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt and str(ckpt) not in ("last", "best", "hpc", "registry"):
            saved = model_class_path(read_checkpoint(ckpt))
            model = self.config[subcommand].get("model")
            configured = str(model.get("class_path") if hasattr(model, "get") else "") or None
            if saved and configured and saved.rsplit(".", 1)[-1] != configured.rsplit(".", 1)[-1]:
                raise ConfigError(
                    f"--ckpt_path {ckpt} holds a {saved.rsplit('.', 1)[-1]} model but --config builds a "
                    f"{configured.rsplit('.', 1)[-1]}: resume with the config the run was trained with (its run "
                    "folder's config.yaml)"
                )
        super()._parse_ckpt_path()

    def instantiate_classes(self) -> None:
        """Build model, data and trainer; an ``__init__`` that rejects its options is one ``--model: …`` line."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as err:
            config = self.config[self.subcommand] if self.subcommand else self.config
            sections = {str(self._get(config, k, {}).get("class_path")): k for k in ("model", "data")}
            condensed = instantiation_error(err, sections)
            if condensed is None:
                raise
            raise condensed from None

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--experiment", type=str | None, default=None, help="Run name (default: config stem)")
        parser.add_argument(
            "--runs_dir",
            type=str,
            default=os.environ.get("LIGHTNING_GANS_RUNS", "runs"),
            help="Root of run dirs",
        )
        parser.add_argument(
            "--wandb.mode",
            type=str,
            # "dryrun": W&B's old name for offline, which wandb itself writes to WANDB_MODE during an offline run
            default=os.environ.get("WANDB_MODE", "offline").replace("dryrun", "offline"),
            help="offline (default) | online | disabled",
        )
        parser.add_argument("--wandb.project", type=str, default="lightning-gans")
        every = "also write last.ckpt every N GAN steps (exact mid-epoch resume; default: at epoch ends)"
        parser.add_argument("--checkpoint_every_n_steps", type=int | None, default=None, help=every)  # fmt: skip

    # ------------------------------------------------------------------ run directory and loggers
    def _experiment_name(self, config: Any) -> str:
        if config.get("experiment"):
            return config["experiment"]
        paths = [Path(str(p)) for p in (config.get("config") or [])]
        for path in paths:
            if path.parent.name == "experiments":
                return path.stem
        return paths[0].stem if paths else "default"

    def _run_dir(self, config: Any, experiment: str) -> Path:
        inherited = os.environ.get(RUN_DIR_ENV)
        if inherited and os.environ.get("LOCAL_RANK", "0") != "0":
            return Path(inherited)  # a DDP child process: use the directory its launcher chose
        base = Path(config["runs_dir"]) / experiment
        shared = _launcher_run_name()
        if shared is not None:  # every process of the job (and a requeued job) names the same directory
            os.environ[RUN_DIR_ENV] = str(base / shared)
            return base / shared
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path, n = base / stamp, 1
        while path.exists():
            n += 1
            path = base / f"{stamp}-{n}"
        os.environ[RUN_DIR_ENV] = str(path)
        return path

    def _loggers(self, config: Any, experiment: str, run_dir: Path) -> list[Logger]:
        loggers: list[Logger] = [CSVLogger(save_dir=str(run_dir), name="csv", version="")]
        mode = config["wandb"]["mode"]
        if mode not in ("offline", "online", "disabled"):
            raise ConfigError(f"--wandb.mode must be offline, online or disabled, got {mode!r}")
        if mode == "online" and not wandb_api_key():
            raise ConfigError(
                "--wandb.mode=online needs W&B credentials and none were found (WANDB_API_KEY, ~/.netrc): run "
                "`wandb login`, export WANDB_API_KEY, or use --wandb.mode=offline (sync later with `wandb sync`)"
            )
        if mode != "disabled":
            wandb_logger = WandbLogger(
                save_dir=str(run_dir),
                project=config["wandb"]["project"],
                group=experiment,
                name=f"{experiment}-{run_dir.name}",
                offline=mode != "online",
                job_type=self.subcommand or "fit",
                settings=_wandb_settings(),
            )
            # Lightning passes anonymous=None, which wandb >= 0.2x warns about on every run: leave it out.
            wandb_init_kwargs(wandb_logger).pop("anonymous", None)
            loggers.append(wandb_logger)
            sync = f"; sync it later: wandb sync {run_dir}/wandb/offline-run-*" if mode == "offline" else ""
            rank_zero_info(f"lightning-gans: W&B {mode} run in {run_dir}/wandb{sync}")
        return loggers

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer_cfg = self._get(self.config_init, "trainer", default={})
        self._reject_manual_optimisation_conflicts(trainer_cfg)
        experiment = self._experiment_name(config)
        config["experiment"] = experiment  # saved in config.yaml: a re-run from it keeps the experiment name
        run_dir = self._run_dir(config, experiment)
        if trainer_cfg.get("default_root_dir") in (None, os.getcwd()):
            kwargs["default_root_dir"] = str(run_dir)
        if trainer_cfg.get("logger") in (None, True):
            kwargs["logger"] = self._loggers(config, experiment, run_dir)
        strategy = _gan_strategy(trainer_cfg)
        if strategy is not None:
            kwargs["strategy"] = strategy
        plugins = trainer_cfg.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, list | tuple) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]  # no torn last.ckpt after a kill mid-save
        extra = [self._get(self.config_init, c) for c in self._parser(self.subcommand).callback_keys]
        callbacks = list(trainer_cfg.get("callbacks") or [])
        if not any(isinstance(c, RichProgressBar) for c in callbacks) and trainer_cfg.get("enable_progress_bar", True):
            extra.append(RichProgressBar())
        if trainer_cfg.get("enable_checkpointing", True) is not False:
            every = config.get("checkpoint_every_n_steps")
            if every is not None and every < 1:
                raise ConfigError(f"--checkpoint_every_n_steps must be >= 1 (or unset), got {every}")
            extra.append(RunCheckpoint(save_last=True, save_top_k=0, enable_version_counter=False,
                                       every_n_train_steps=every))  # fmt: skip
        extra += [MetricsJsonl(), FitSummary()]  # FitSummary: the end-of-fit report (callbacks/summary.py)
        if not any(isinstance(c, Preemption) for c in callbacks):
            extra.append(Preemption())
        rank_zero_info(f"lightning-gans: run directory {run_dir}")
        return self._instantiate_trainer({**trainer_cfg, **kwargs}, extra)

    @staticmethod
    def _reject_manual_optimisation_conflicts(trainer_cfg: dict) -> None:
        for option, (allowed, advice) in REJECTED_TRAINER_OPTIONS.items():
            value = trainer_cfg.get(option, allowed)
            if value not in (allowed, None):
                raise ConfigError(
                    f"--trainer.{option}={value} is not supported: GAN modules use manual optimisation. {advice}."
                )


def _launcher_run_name() -> str | None:
    """The run directory name shared by every process an external launcher started, or None (one process, or
    Lightning's own launcher, which hands its directory to the children in ``LIGHTNING_GANS_RUN_DIR``).

    SLURM: ``slurm-<job id>`` (``<array job>_<task>`` for arrays) — stable across a requeue, so the requeued job
    finds its ``hpc_ckpt_*.ckpt`` and resumes. torchrun: ``torchrun-<rendezvous id>`` (``--rdzv-id``; a random
    one with ``--standalone``), or ``torchrun-<master address>-<port>`` when the id is left at ``none``.
    """
    if SLURMEnvironment.detect():
        job = slurm_job_id()
        return f"slurm-{job}" if job else None
    if TorchElasticEnvironment.detect():
        run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
        if run_id != "none":
            return f"torchrun-{run_id}"
        return f"torchrun-{os.environ.get('MASTER_ADDR', 'local')}-{os.environ.get('MASTER_PORT', '0')}"
    return None


def _gan_strategy(trainer_cfg: dict) -> Any:
    """The strategy a GAN fit runs with: ``gan_ddp*`` for Lightning's DDP names and for ``auto`` on several
    devices or nodes; None to keep the configured one (one device, or already a GAN strategy)."""
    strategy = trainer_cfg.get("strategy", "auto")
    several = _many(trainer_cfg.get("devices")) or (trainer_cfg.get("num_nodes") or 1) > 1
    if isinstance(strategy, GANDDPStrategy):
        return None
    if isinstance(strategy, Strategy):
        if not several and not isinstance(strategy, ParallelStrategy):
            return None
        raise ConfigError(
            f"--trainer.strategy: {type(strategy).__name__} cannot train a GAN module; use "
            "--trainer.strategy=gan_ddp (one gradient reduction per optimizer step, see docs/training.md)"
        )
    if strategy == "auto":
        return "gan_ddp" if several else None
    mapped = gan_strategy_for(str(strategy))
    if mapped is not None:
        if mapped != strategy:
            rank_zero_info(
                f"lightning-gans: strategy {strategy!r} → {mapped!r} (one gradient reduction per network update)"
            )
        return mapped
    if strategy == "single_device":
        return None
    raise ConfigError(
        f"--trainer.strategy={strategy} cannot train a GAN module; use --trainer.strategy=gan_ddp "
        "(one gradient reduction per optimizer step) or one device"
    )


def _wandb_settings() -> dict[str, Any]:
    """W&B without its banner and end-of-run summary (the CLI prints where the run is), and with the git state of
    the checkout the run was started from (W&B would otherwise look for a repository in the run directory)."""
    settings: dict[str, Any] = {"quiet": True}
    root = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / ".git").exists()), None)
    if root is not None:
        settings["git_root"] = str(root)
    else:
        settings["disable_git"] = True
    return settings


def _many(devices: Any) -> bool:
    """True when a ``devices`` setting asks for more than one device (``2``, ``"2"``, ``[0, 1]``, ``-1``)."""
    if isinstance(devices, (list, tuple)):
        return len(devices) > 1
    if isinstance(devices, str):
        devices = devices.strip()
        if devices in ("auto", ""):
            return False
        if "," in devices:
            return len([d for d in devices.split(",") if d.strip()]) > 1
        devices = int(devices)
    return isinstance(devices, int) and (devices > 1 or devices == -1)


def run_subcommand(name: str, argv: list[str]) -> None:
    """Run ``lightning_gans.commands.<module>.main(argv)`` for a project subcommand."""
    importlib.import_module(f"lightning_gans.commands.{SUBCOMMANDS[name]}").main(argv)


# subcommand → module of lightning_gans.commands (imported only when it runs: keeps `--help` and `fit` fast)
SUBCOMMANDS = {
    "sample": "sample",
    "eval": "eval",
    "compare": "compare",
    "train-extractor": "train_extractor",
    "prepare": "prepare",
    "interpolate": "interpolate",
    "upscale": "upscale",
    "age": "age",
    "translate": "translate",
    "stats": "stats",
}


def _finish_wandb() -> None:
    """Close the W&B run this process opened, if any. Without this, a second in-process ``main()`` call (tests,
    notebooks) gets a WandbLogger that reuses the still-open run and logs into the previous run's directory."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


USAGE = """usage: lightning-gans COMMAND [options]   (COMMAND --help for its options)

training (LightningCLI):  fit | validate | test | predict   --config experiments/<name>.yaml [--x.y=value …]
project commands:
  sample           draw samples from a checkpoint into OUT.npz + OUT.png (voxel models: OUT.npy + OUT.png)
  eval             FID / IS / KID of a checkpoint, printed and appended to the run's metrics.jsonl
  compare          leaderboard of run directories by FID, one table per evaluation protocol
  stats            real-feature statistics as checksummed files: compute | verify | list
  train-extractor  train the offline feature extractor for digits (lenet-mnist)
  interpolate      latent interpolation strips (PNG) and a GIF from a checkpoint
  upscale          super-resolve an image or a folder with an SRGAN/SRResNet checkpoint (--input, --out)
  age              re-render face pictures at all six ages with an Age-cGAN checkpoint (grid PNG)
  translate        translate images A→B or B→A with a CycleGAN/DiscoGAN checkpoint (keeps file names)
  prepare          make a training image folder (anime-faces SRC DST: crop faces with animeface;
                   pix2pix-split SRC DST: side-by-side JPGs → trainA/trainB/testA/testB;
                   cache --config EXP: decode the training images once into the decoded-image cache)
"""


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    quiet_console()
    user_errors.ARGV[:] = argv
    try:
        if argv and argv[0] in SUBCOMMANDS:
            run_subcommand(argv[0], argv[1:])
        else:
            try:
                GANLightningCLI(args=argv)
            finally:
                _finish_wandb()
    except (LightningGANsError, FileNotFoundError) as err:
        fail("lightning-gans", err)


if __name__ == "__main__":
    main()
