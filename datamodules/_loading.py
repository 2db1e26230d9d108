"""DataLoader settings every datamodule shares: ``num_workers`` (``auto``), ``persistent_workers``, ``pin_memory``,
``prefetch_factor`` — init options of each datamodule, so ``--print_config`` shows them and ``--data.…`` sets them.

``num_workers: auto`` — decision:

* file-backed datasets (decoding JPEGs, reading voxel files): one worker per CPU this rank may use, minus one
  for the training process itself, at most :data:`MAX_AUTO_WORKERS` — ``min(cpus // local_ranks - 1, 8)``;
  0 when a rank has fewer than 3 CPUs. Measured (``make bench-data``, 2 CPUs): one worker loads *slower* than
  the main process alone (CelebA-like 64²: 885 vs 1,045 images/s; CycleGAN-like 256²: 135 vs 262) — the batches'
  trip through shared memory costs more than the decode it moves — so workers start paying at two, which
  need a core each besides the training process;
* in-memory datasets (MNIST, the toy mixtures) and the decoded-cache path (``cache: true``): 0 — a batch is a
  slice of a tensor or of a memory map plus cheap per-batch work, and a worker adds a process and a copy through
  shared memory that cost more than they save (``make bench-data``: the cache path at 64² ran ~8× faster in the
  main process than through one worker). The cache *build* decodes with the file rule above.

"CPUs this rank may use" is this process's CPU affinity (what ``taskset``, SLURM's ``--cpus-per-task`` and most
container runtimes set), capped by a cgroup-v2 CPU quota when one is set; the local ranks are the trainer's
devices on this node (``LOCAL_WORLD_SIZE`` / ``SLURM_NTASKS_PER_NODE`` outside a trainer).

``pin_memory: null`` pins when the trainer trains on a CUDA device (or, outside a trainer, when CUDA is
available); ``persistent_workers`` keeps workers alive across epochs; ``prefetch_factor`` batches are loaded ahead
per worker. The last two only apply with workers.

Reproducibility: a worker's torch RNG is seeded from the main process's RNG when the loader starts iterating
(PyTorch's ``base_seed + worker_id``), and ``seed_everything(…, workers=True)`` — what LightningCLI runs — also
seeds ``random`` and NumPy per worker and rank; so random crops and flips repeat exactly for a given seed and
worker count. A different worker count gives a different (equally valid) stream.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch

Workers = int | Literal["auto"]
MAX_AUTO_WORKERS = 8
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _cgroup_cpus(path: Path = CGROUP_CPU_MAX) -> int | None:
    """CPUs allowed by a cgroup-v2 quota (``"200000 100000"`` → 2), None without a quota."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, int(int(quota) // int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def available_cpus() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup-v2 quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(cpus, quota) if quota else cpus)


def local_ranks(trainer: Any = None) -> int:
    """Training processes on this node: the trainer's devices, else the launcher's environment, else 1."""
    if trainer is not None:
        return max(1, int(getattr(trainer, "num_devices", 1) or 1))
    for name in ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"):
        value = os.environ.get(name, "")
        digits = value.split("(")[0]  # SLURM writes "2(x3)" for 2 tasks on each of 3 nodes
        if digits.isdigit():
            return max(1, int(digits))
    return 1


def auto_workers(cpus: int, ranks: int, in_memory: bool = False) -> int:
    """The ``num_workers: auto`` rule (see the module docstring)."""
    if in_memory:
        return 0
    per_rank = cpus // max(1, ranks)
    return 0 if per_rank < 3 else min(per_rank - 1, MAX_AUTO_WORKERS)


def check_workers(num_workers: Workers) -> Workers:
    """``num_workers`` as given (an int >= 0 or ``"auto"``), or one clear ValueError."""
    if num_workers == "auto":
        return "auto"
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0 or 'auto', got {num_workers!r}")
    return num_workers


def _on_gpu(trainer: Any) -> bool:
    if trainer is None:
        return torch.cuda.is_available()
    device = getattr(getattr(trainer, "strategy", None), "root_device", None)
    return getattr(device, "type", "cpu") == "cuda"


class LoaderOptions:
    """Mixin of the datamodules: stores the loader options and resolves them into ``DataLoader`` keyword arguments.

    ``in_memory = True`` on datamodules whose batches are slices of in-memory tensors (``auto`` → 0 workers).
    """

    in_memory: bool = False

    def set_loader_options(
        self, num_workers: Workers, persistent_workers: bool, pin_memory: bool | None, prefetch_factor: int
    ) -> None:
        batch = getattr(self, "batch_size", 1)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch!r}")
        if prefetch_factor < 1:
            raise ValueError(f"prefetch_factor must be >= 1 (batches loaded ahead per worker), got {prefetch_factor}")
        self.num_workers = check_workers(num_workers)
        self.persistent_workers, self.pin_memory, self.prefetch_factor = persistent_workers, pin_memory, prefetch_factor

    def resolved_num_workers(self, decoding: bool = False) -> int:
        """``num_workers`` with ``auto`` resolved for this process and trainer: for the training loader (0 when
        the data are in memory or in the decoded cache), or, with ``decoding``, for a pass that decodes the files
        (the cache build)."""
        if self.num_workers != "auto":
            return int(self.num_workers)
        in_memory = not decoding and (self.in_memory or bool(getattr(self, "cache", False)))
        return auto_workers(available_cpus(), local_ranks(getattr(self, "trainer", None)), in_memory)

    def loader_kwargs(self) -> dict[str, Any]:
        """``num_workers``, ``persistent_workers``, ``pin_memory`` and ``prefetch_factor`` for a ``DataLoader``."""
        workers = self.resolved_num_workers()
        pin = self.pin_memory if self.pin_memory is not None else _on_gpu(getattr(self, "trainer", None))
        return {
            "num_workers": workers,
            "persistent_workers": bool(self.persistent_workers and workers > 0),
            "pin_memory": bool(pin),
            "prefetch_factor": self.prefetch_factor if workers > 0 else None,
        }
