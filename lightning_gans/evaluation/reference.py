"""``--reference FILE``: real statistics from a shareable stats file, refused unless computed under this protocol."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from lightning_gans.errors import ReferenceStatsError
from lightning_gans.evaluation.protocol import EvalProtocol, reference_keys
from lightning_gans.metrics.reference import read_statistics


def load_reference(path: str | Path, protocol: EvalProtocol, metrics: list[str]) -> dict[str, Tensor]:
    """The statistics in ``path`` (checksums verified) if its protocol equals ``protocol`` and it holds what
    ``metrics`` need; otherwise one :class:`~lightning_gans.errors.ReferenceStatsError` line saying why."""
    stats = read_statistics(path, expected_protocol=dict(protocol)).stats
    missing = sorted(reference_keys(metrics) - stats.keys())
    if missing:
        raise ReferenceStatsError(
            f"reference statistics {path} lack {', '.join(missing)} (held: {', '.join(sorted(stats))}), which "
            f"{', '.join(metrics)} need: compute them with `lightning-gans stats compute --metrics "
            f"{','.join(m for m in metrics if reference_keys([m]))} …`"
        )
    return stats
