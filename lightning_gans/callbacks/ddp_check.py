"""``ParameterSyncCheck``: verify that every DDP rank ends training with bit-identical parameters.

DDP keeps replicas in sync only if every rank applies the same averaged gradients; manual-optimisation
GANs can break that silently (a gradient taken outside DDP's reducer, a rank skipping a step). This
callback gathers a SHA-256 of each rank's parameters at the end of fit, writes them to ``metrics.jsonl``
and raises when they differ.
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


class ParameterSyncCheck(Callback):
    def __init__(self) -> None:
        self.digests: list[str] = []

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        mine = torch.tensor(list(bytes.fromhex(parameter_digest(pl_module))), dtype=torch.uint8)
        gathered = trainer.strategy.all_gather(mine.to(torch.int32))
        if gathered.dim() == 1:
            gathered = gathered.unsqueeze(0)
        self.digests = [bytes(row.to(torch.uint8).tolist()).hex() for row in gathered.cpu()]
        append_metrics(trainer, {"rank_parameter_sha256": self.digests}, kind="ddp_sync_check")
        if len(set(self.digests)) != 1:
            raise RuntimeError(f"DDP ranks diverged: parameter digests per rank {self.digests}")
