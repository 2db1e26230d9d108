"""``ParameterSyncCheck``: verify that every DDP rank ends training with bit-identical parameters.

DDP keeps replicas in sync only if every rank applies the same averaged gradients; manual-optimisation
GANs can break that silently (a gradient taken outside DDP's reducer, a rank skipping a step). This
callback gathers a SHA-256 of each rank's parameters at the end of fit, writes them to ``metrics.jsonl``
and raises when they differ. It also records a digest of each rank's torch RNG state: those must *differ*,
or every rank drew the same noise (see ``GANModule._decorrelate_ranks``).
"""

from __future__ import annotations

import hashlib

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from lightning_gans.outputs import append_metrics


def parameter_digest(module: torch.nn.Module) -> str:
    """SHA-256 over the bytes of every parameter, in registration order."""
    digest = hashlib.sha256()
    for name, param in module.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _gather_digests(trainer: pl.Trainer, digest: str) -> list[str]:
    """Every rank's hex digest, in rank order (collective: call on all ranks)."""
    mine = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.int32)
    gathered = trainer.strategy.all_gather(mine)
    if gathered.dim() == 1:
        gathered = gathered.unsqueeze(0)
    return [bytes(row.to(torch.uint8).tolist()).hex() for row in gathered.cpu()]


class ParameterSyncCheck(Callback):
    def __init__(self) -> None:
        self.digests: list[str] = []
        self.rng_digests: list[str] = []

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.digests = _gather_digests(trainer, parameter_digest(pl_module))
        rng = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
        self.rng_digests = _gather_digests(trainer, rng)
        append_metrics(
            trainer,
            {"rank_parameter_sha256": self.digests, "rank_rng_sha256": self.rng_digests},
            kind="ddp_sync_check",
        )
        if len(set(self.digests)) != 1:
            raise RuntimeError(f"DDP ranks diverged: parameter digests per rank {self.digests}")
