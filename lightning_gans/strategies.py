"""``gan_ddp``: data-parallel training for GANs without DDP's wrapper and its unused-parameter search.

Why not ``DistributedDataParallel``: a GAN step runs several backward passes per batch, each reaching only one
network (D's update leaves G unused, G's update leaves D's parameters frozen), takes gradients with
``torch.autograd.grad`` (the simultaneous update, the gradient penalty, R1) and, in SGAN, steps two optimizers
on shared weights. DDP's reducer expects every parameter to receive a gradient in every backward; the usual
workaround (DDP's unused-parameter search) walks the autograd graph after every backward and still cannot serve
``autograd.grad``. Wrapping each network in its own DDP (one wrapper per G, D, the four CycleGAN networks, the
Age-cGAN encoder) trades that for one wrapper per network and the same problem inside each network whenever a
penalty differentiates through it twice.

The design here is stylegan2-ada's: no wrapper. The training mechanics (``LoopMechanics._step_optimizer``) call
``reduce_gradients(params)`` for the parameters of the optimizer about to step, right before the step, so every
network's gradients are averaged exactly once per optimizer step, whatever produced them (``backward``,
``autograd.grad``, a double backward), in buckets of at most ``bucket_cap_mb`` issued asynchronously and awaited
together. The module's state is broadcast from rank 0 once at the start of ``fit`` (as DDP's constructor does),
so ranks that start equal and apply equal averaged gradients stay equal.

Control flags ride along: the mechanics pass a small float vector (a non-finite-loss flag, a stop request) that is
summed across ranks in the last gradient bucket, so the NaN guard and preemption agree across ranks without a
collective of their own (``lightning_gans.models.mechanics``).

BatchNorm buffers are per rank during training (train-mode BatchNorm normalises with batch statistics, so the
running statistics never change the training trajectory); rank 0's are the model's: rank 0 writes checkpoints,
and the strategy broadcasts rank 0's buffers to every rank before validation/test, as the evaluation callbacks do
before scoring. ``--trainer.sync_batchnorm=true`` makes the batch statistics (and so the buffers) global.

Checkpoint keys are the LightningModule's own (no ``module.`` prefix): nothing is wrapped.

Registered names: ``gan_ddp`` (Lightning's ``ddp`` launch: a subprocess per device, or the processes torchrun/SLURM
started), ``gan_ddp_spawn``, ``gan_ddp_fork`` and ``gan_ddp_notebook`` (start methods as in Lightning's names).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

from lightning_gans.compat import defer_sigterm
from lightning_gans.errors import ConfigError

GAN_STRATEGIES = {"gan_ddp": "popen", "gan_ddp_spawn": "spawn", "gan_ddp_fork": "fork", "gan_ddp_notebook": "fork"}
DEFAULT_BUCKET_CAP_MB = 25.0  # DDP's default


def gan_strategy_for(name: str) -> str | None:
    """The ``gan_ddp*`` name that replaces a Lightning DDP strategy name (``ddp`` → ``gan_ddp``, ``ddp_spawn`` →
    ``gan_ddp_spawn``, also their unused-parameter variants), or None for any other name."""
    if name in GAN_STRATEGIES:
        return name
    if not name.startswith("ddp"):
        return None
    for start in ("ddp_notebook", "ddp_spawn", "ddp_fork", "ddp"):  # the start-method prefix of Lightning's names
        if name == start or name.startswith(start + "_find_"):
            return "gan_" + start
    return None


class GANDDPStrategy(DDPStrategy):
    """Data-parallel GAN training: broadcast once, then one bucketed gradient all-reduce per optimizer step.

    ``bucket_cap_mb`` bounds each flattened all-reduce (DDP's default 25 MB). Everything else (launch, process
    group, cluster environments, ``sync_batchnorm``, samplers, checkpoint I/O on rank 0) is Lightning's
    ``DDPStrategy``. The options ``DDPStrategy`` hands to the DDP wrapper (its ``**kwargs``: the unused-parameter
    search, ``static_graph``, …; comm hooks, model averaging) are refused: there is no wrapper to configure.
    """

    strategy_name = "gan_ddp"

    def __init__(self, *args: Any, bucket_cap_mb: float = DEFAULT_BUCKET_CAP_MB, **kwargs: Any) -> None:
        wrapper_options = sorted(k for k in kwargs if k not in _STRATEGY_OPTIONS or k in _HOOK_OPTIONS and kwargs[k])
        if wrapper_options:
            raise ValueError(
                f"GANDDPStrategy does not wrap the model in DistributedDataParallel, so {wrapper_options} do not "
                "apply: gradients are reduced by the GAN training mechanics (see lightning_gans.strategies)"
            )
        super().__init__(*args, **kwargs)
        if bucket_cap_mb <= 0:
            raise ValueError(f"GANDDPStrategy: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        self.bucket_cap_bytes = int(bucket_cap_mb * 2**20)
        self.collectives = 0  # all-reduce calls issued by reduce_gradients (read by benchmarks/bench_ddp.py)

    # ------------------------------------------------------------------ no wrapper
    def setup(self, trainer: pl.Trainer) -> None:
        if self._layer_sync is not None and self.root_device.type == "cpu":
            raise ConfigError(
                "--trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm runs on CUDA only): drop it for CPU "
                "runs; each rank then normalises with its own batch statistics"
            )
        super().setup(trainer)
        defer_sigterm(trainer, lambda: self._fold_sigterm(trainer))

    @staticmethod
    def _fold_sigterm(trainer: pl.Trainer) -> None:
        """Instead of Lightning's per-batch broadcast of rank 0's SIGTERM flag: a rank that received SIGTERM asks to
        stop through the control flags of the next gradient reduction (``request_stop``), no collective of its own."""
        request = getattr(trainer.lightning_module, "request_stop", None)
        if getattr(trainer, "received_sigterm", False) and callable(request):
            request()

    def configure_ddp(self) -> None:
        """Instead of wrapping: every rank starts from rank 0's parameters and buffers (DDP's constructor does
        the same broadcast)."""
        assert isinstance(self.model, pl.LightningModule)
        broadcast_tensors([*self.model.parameters(), *self.model.buffers()], self.bucket_cap_bytes)

    def on_validation_start(self) -> None:
        super().on_validation_start()
        self.broadcast_buffers()

    def on_test_start(self) -> None:
        super().on_test_start()
        self.broadcast_buffers()

    def broadcast_buffers(self) -> None:
        """Rank 0's buffers (BatchNorm running statistics, EMA copies) on every rank."""
        if self.lightning_module is not None:
            broadcast_tensors(list(self.lightning_module.buffers()), self.bucket_cap_bytes)

    # ------------------------------------------------------------------ the one gradient reduction
    def reduce_gradients(self, params: Iterable[torch.nn.Parameter], control: torch.Tensor | None = None) -> Any:
        """Average ``params``' gradients over ranks (in place); return ``control`` summed over ranks.

        Parameters without a gradient are skipped (they are the same on every rank: every rank runs the same
        graph). ``control`` (a small float vector on the gradients' device) travels in the last bucket, so it
        costs no collective of its own. Buckets are issued asynchronously and then awaited, so the transport
        overlaps the flattening of the next bucket.
        """
        grads = [p.grad for p in params if p.grad is not None]
        if self.world_size <= 1 or not dist.is_initialized():
            return control
        buckets = _buckets(grads, self.bucket_cap_bytes)
        if control is not None and (not buckets or buckets[-1][0].dtype != control.dtype):
            buckets.append([])  # the control vector gets a bucket of its own only when no bucket matches it
        pending = []
        for i, bucket in enumerate(buckets):
            parts = [g.reshape(-1) for g in bucket]
            if control is not None and i == len(buckets) - 1:
                parts.append(control.reshape(-1))
            flat = torch.cat(parts) if len(parts) > 1 else parts[0].clone()
            pending.append((dist.all_reduce(flat, async_op=True), flat, bucket))
            self.collectives += 1
        reduced = control
        for work, flat, bucket in pending:
            work.wait()
            used = sum(g.numel() for g in bucket)
            _unflatten(flat[:used].div_(self.world_size), bucket)  # sums → means (the control slots stay sums)
            if used < flat.numel():
                reduced = flat[used:].view_as(control)
        return reduced

    @classmethod
    def register_strategies(cls, strategy_registry: Any) -> None:
        for name, start_method in GAN_STRATEGIES.items():
            strategy_registry.register(
                name,
                cls,
                description=f"GAN data-parallel training, one gradient reduction per optimizer step ({start_method})",
                start_method=start_method,
                override=True,
            )


# DDPStrategy's own options (launch, process group, plugins); everything else it would pass to the DDP wrapper.
_STRATEGY_OPTIONS = set(inspect.signature(DDPStrategy.__init__).parameters) - {"self", "kwargs"}
_HOOK_OPTIONS = {"ddp_comm_state", "ddp_comm_hook", "ddp_comm_wrapper", "model_averaging_period"}


def _buckets(tensors: Sequence[torch.Tensor], cap_bytes: int) -> list[list[torch.Tensor]]:
    """Consecutive groups of same-dtype, same-device tensors of at most ``cap_bytes`` (a tensor larger than the
    cap is a bucket alone), in reverse order: the last layers' gradients, ready first in backward, go first."""
    buckets: list[list[torch.Tensor]] = []
    size = 0
    for t in reversed(tensors):
        nbytes = t.numel() * t.element_size()
        last = buckets[-1] if buckets else None
        if last is None or size + nbytes > cap_bytes or (last[0].dtype, last[0].device) != (t.dtype, t.device):
            buckets.append([t])
            size = nbytes
        else:
            last.append(t)
            size += nbytes
    return buckets


def _unflatten(flat: torch.Tensor, tensors: Sequence[torch.Tensor]) -> int:
    """Copy consecutive slices of ``flat`` into ``tensors`` (the inverse of flattening a bucket); returns the number
    of elements used."""
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
    return offset


@torch.no_grad()
def broadcast_tensors(tensors: Sequence[torch.Tensor], cap_bytes: int = int(DEFAULT_BUCKET_CAP_MB * 2**20)) -> None:
    """Overwrite every rank's ``tensors`` with rank 0's, one broadcast per bucket (a no-op without a process group
    of several ranks). Collective: every rank calls it with the same tensors."""
    if not dist.is_initialized() or dist.get_world_size() <= 1:
        return
    for bucket in _buckets(list(tensors), cap_bytes):
        flat = torch.cat([t.detach().reshape(-1) for t in bucket])
        dist.broadcast(flat, 0)
        _unflatten(flat, bucket)


GANDDPStrategy.register_strategies(StrategyRegistry)
