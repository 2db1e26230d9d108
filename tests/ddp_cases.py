"""Fits that must give the same result on 1 process at batch 2B and on 2 ``gan_ddp`` processes at batch B each.

What makes that hold exactly (to float rounding): BatchNorm-free networks; every random draw of a step depends only
on the *dataset index* of the sample it belongs to (a test-only noise source, ``IndexedGAN``), never on the rank or
the per-rank position; the real data unshuffled, so the 2B samples of a global step are the same set in both
layouts (an unshuffled ``DistributedSampler`` gives rank r the indices r, r + 2, …). Then the mean loss over 2B
samples has the gradient of the two ranks' averaged gradients — which is what ``gan_ddp``'s one reduction per
optimizer step must produce.

Each worker runs in a forked process (``gloo_ranks.run_forked_ranks``) with the environment variables torchrun
would set, so Lightning joins the process group instead of launching children; rank 0 saves the module state and
the optimizer states.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

import lightning_gans.models.base as base_module
from lightning_gans.losses import gradient_penalty
from lightning_gans.models import GAN, CycleGAN
from lightning_gans.models.options import Regularisers, Schedule
from lightning_gans.networks import MLPDiscriminator, MLPGenerator

STEPS = 5
LATENT = 4


def indexed_draw(indices: torch.Tensor, call: int, size: int, kind: str = "normal") -> torch.Tensor:
    """One draw of ``size`` numbers per dataset index, seeded by (call, index) only."""
    rows = []
    for i in indices.tolist():
        g = torch.Generator().manual_seed(1_000_003 * call + int(i))
        rows.append(torch.randn(size, generator=g) if kind == "normal" else torch.rand(size, generator=g))
    return torch.stack(rows)


class IndexedGAN(GAN):
    """A GAN whose noise (and gradient-penalty interpolation) is a function of the batch's dataset indices."""

    def training_step(self, batch, batch_idx):
        self._indices = batch[1]
        return super().training_step(batch, batch_idx)

    def generate(self, batch):
        self._calls = getattr(self, "_calls", 0) + 1
        z = indexed_draw(batch[1], self._calls, LATENT).to(self.device)
        return self.generator(z)


def _indexed_penalty(module: IndexedGAN):
    def penalty(critic, real, fake, loss_scale=None):
        module._calls = getattr(module, "_calls", 0) + 1
        epsilon = indexed_draw(module._indices, module._calls, 1, kind="uniform").reshape(-1)
        return gradient_penalty(critic, real, fake, epsilon=epsilon, loss_scale=loss_scale)

    return penalty


GAN_CASES = {
    "alternating": {},
    "n_critic_3": {"schedule": Schedule(n_critic=3)},
    "real_then_fake": {"schedule": Schedule(d_steps="real_then_fake")},
    "simultaneous": {"schedule": Schedule(update="simultaneous")},
    "wgan_gp": {"loss": "wasserstein", "regularisers": Regularisers(gradient_penalty=10.0)},
    "r1": {"regularisers": Regularisers(r1_gamma=1.0)},
}
MIXED_CASES = {"wgan_gp_16_mixed": "wgan_gp", "simultaneous_16_mixed": "simultaneous"}  # fp16 + a scaler each
CASES = [*GAN_CASES, "cyclegan", *MIXED_CASES]


def _gan(case: str) -> IndexedGAN:
    torch.manual_seed(0)
    return IndexedGAN(
        generator=MLPGenerator(latent_dim=LATENT, hidden=[16], out_shape=[2], output="linear"),
        discriminator=MLPDiscriminator(in_shape=[2], hidden=[16]),
        latent_dim=LATENT,
        **GAN_CASES[case],
    )


class _Pairs(Dataset):
    """Domain-A and domain-B 8×8 images, index-aligned (the order is what makes the layouts comparable)."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(1)
        self.a = torch.rand(n, 1, 8, 8, generator=g) * 2 - 1
        self.b = torch.rand(n, 1, 8, 8, generator=g) * 2 - 1

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, i: int) -> dict:
        return {"A": self.a[i], "B": self.b[i]}


def _tiny_translator() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, padding=1), nn.Tanh())


def _tiny_critic() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, padding=1))


def _cyclegan() -> CycleGAN:
    torch.manual_seed(0)
    nets = {"G_AB": _tiny_translator(), "G_BA": _tiny_translator(), "D_A": _tiny_critic(), "D_B": _tiny_critic()}
    return CycleGAN(**nets, image_size=8, pool_size=0)


def _loader(dataset: Dataset, batch: int, world: int, rank: int) -> DataLoader:
    """Unshuffled: rank r reads r, r + world, … (Lightning's own injected sampler would shuffle training data)."""
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False) if world > 1 else None
    return DataLoader(dataset, batch_size=batch, sampler=sampler)


def build(
    case: str, batch: int, world: int, rank: int = 0, steps: int = STEPS
) -> tuple[pl.LightningModule, DataLoader]:
    """The module and the loader of one process: ``batch`` samples per rank and step, ``steps`` steps."""
    n = steps * batch * world
    if case == "cyclegan":
        return _cyclegan(), _loader(_Pairs(n), batch, world, rank)
    case = MIXED_CASES.get(case, case)
    g = torch.Generator().manual_seed(0)
    points = torch.randn(n, 2, generator=g) * 0.5 + 1.0
    module = _gan(case)
    return module, _loader(TensorDataset(points, torch.arange(n)), batch, world, rank)


def join_as_rank(rank: int, world: int, port: int) -> None:
    """One thread, and (``world`` > 1) the variables torchrun sets, so Lightning joins the group as ``rank``."""
    torch.set_num_threads(1)
    if world > 1:
        env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world)}
        os.environ.update(env, NODE_RANK="0", LOCAL_RANK=str(rank), RANK=str(rank))


def quiet_trainer(world: int, out: str, **kwargs) -> pl.Trainer:
    """A CPU ``gan_ddp`` Trainer (single-device for ``world == 1``) without logger, bar or summary; each rank reads
    the sampler its loader brings (``use_distributed_sampler=False``). ``kwargs`` override."""
    options = {
        "accelerator": "cpu",
        "devices": world,
        "strategy": "gan_ddp" if world > 1 else "auto",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": out,
        "use_distributed_sampler": False,
    }
    return pl.Trainer(**{**options, **kwargs})


def fit_worker(rank: int, world: int, port: int, case: str, batch: int, out: str) -> None:
    """One rank of a ``world``-process fit of ``case`` (``world == 1``: a plain single-device fit)."""
    join_as_rank(rank, world, port)
    module, loader = build(case, batch, world, rank)
    if case.startswith("wgan_gp"):  # this forked process only
        base_module._gradient_penalty = _indexed_penalty(module)
    precision = {}
    if case in MIXED_CASES:  # CPU fp16 autocast and a GradScaler (Lightning's 16-mixed would be bf16 on CPU)
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        precision = {"plugins": [MixedPrecision("16-mixed", "cpu", scaler=scaler)]}
    trainer = quiet_trainer(world, out, max_steps=STEPS, **precision)
    trainer.fit(module, loader)
    state = {
        "scalers": {i: s.state_dict() for i, s in getattr(module, "_scalers", {}).items()},
        "module": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "optimizers": [opt.state_dict() for opt in trainer.optimizers],
        "global_step": trainer.global_step,
        "collectives": getattr(trainer.strategy, "collectives", 0),
    }
    torch.save(state, Path(out) / f"{case}-w{world}-rank{rank}.pt")


# ---------------------------------------------------------------------------------------------- guard and syncs
class PoisonRankOne(pl.Callback):
    """NaN real data on rank 1 only, in the batch of GAN step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_rank == 1 and trainer.global_step == self.step:
            batch[0].fill_(float("nan"))


def guard_worker(rank: int, world: int, port: int, out: str, checkpoint_every: int) -> None:
    """12 steps with NaN on rank 1 at step 5, checks every 4 steps; ``checkpoint_every`` > 0 saves that often.
    Writes the error message and the step training stopped at (or "finished")."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from lightning_gans.errors import NonFiniteLossError

    join_as_rank(rank, world, port)
    module, loader = build("alternating", 4, world, rank, steps=12)
    callbacks: list[pl.Callback] = [PoisonRankOne(5)]
    if checkpoint_every:
        ckpt_dir = Path(out) / "ckpt"
        callbacks.append(ModelCheckpoint(ckpt_dir, "{step}", every_n_train_steps=checkpoint_every, save_top_k=-1))
    trainer = quiet_trainer(
        world, out, max_steps=12, log_every_n_steps=4, enable_checkpointing=bool(checkpoint_every), callbacks=callbacks
    )
    try:
        trainer.fit(module, loader)
        result = "finished"
    except NonFiniteLossError as error:
        result = f"{trainer.global_step}|{error}"
    (Path(out) / f"guard-rank{rank}.txt").write_text(result)


class SyncCounter(pl.Callback):
    """Per training batch: torch.distributed calls and host reads of tensor values (``item``, ``tolist``, bool,
    float, int; recorded as ``name@file:line``) from one batch start to the next: the step itself, the loop's work
    after it (a logging step's metric conversion) and before the next batch (Lightning's per-batch checks)."""

    NAMES = ("all_reduce", "broadcast", "all_gather", "all_gather_into_tensor", "reduce_scatter", "barrier")
    NAMES += ("broadcast_object_list", "all_gather_object", "gather", "scatter", "reduce")
    READS = ("item", "tolist", "__bool__", "__float__", "__int__")

    def __init__(self) -> None:
        self.active = False
        self.rows: list[dict] = []
        self._now: dict = {}
        import torch.distributed as dist

        for name in self.NAMES:
            self._wrap(dist, name, "collectives")
        for name in self.READS:
            self._wrap(torch.Tensor, name, "reads")

    def _wrap(self, owner, name: str, kind: str) -> None:
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            if self.active:
                frame = sys._getframe(1)
                caller = f"{frame.f_code.co_filename}:{frame.f_lineno}"
                self._now.setdefault(kind, []).append(name if kind == "collectives" else f"{name}@{caller}")
            return original(*args, **kwargs)

        setattr(owner, name, counted)

    def on_train_batch_start(self, trainer, *args):
        if self.active:
            self.rows.append(self._now)
        self._now, self.active = {}, True

    def on_train_batch_end(self, trainer, *args):
        self._now["step"] = trainer.global_step

    def on_train_end(self, trainer, *args):
        self.rows.append(self._now)
        self.active = False


def sync_worker(rank: int, world: int, port: int, out: str) -> None:
    """12 alternating steps with logging every 4 steps; writes the per-batch counts of rank ``rank``."""
    join_as_rank(rank, world, port)
    module, loader = build("alternating", 4, world, rank, steps=12)
    counter = SyncCounter()
    trainer = quiet_trainer(world, out, max_steps=12, log_every_n_steps=4, callbacks=[counter])
    trainer.fit(module, loader)
    torch.save(counter.rows, Path(out) / f"syncs-rank{rank}.pt")


def seeded_worker(rank: int, world: int, port: int, out: str, tag: str) -> None:
    """A plain seeded 2-rank fit (the model's own noise from the global RNG): weights and the RNG state afterwards."""
    from toy_training import toy_loader, toy_module

    join_as_rank(rank, world, port)
    pl.seed_everything(0, verbose=False)
    module = toy_module()
    trainer = quiet_trainer(world, out, max_steps=4, use_distributed_sampler=True)
    trainer.fit(module, toy_loader(8))
    state = {"module": module.state_dict(), "rng": torch.get_rng_state()}
    torch.save(state, Path(out) / f"seeded-{tag}-rank{rank}.pt")
