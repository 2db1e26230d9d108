"""``compile`` and ``channels_last``: the GPU fast path of a model's networks, as model options.

* ``--model.compile=true`` (or torch.compile keyword arguments: ``--model.compile='{mode: reduce-overhead}'`` for
  CUDA graphs, ``{mode: max-autotune}``, ``{backend: aot_eager}``) compiles the generator and the discriminator
  (each network of a ``ModuleDict``, e.g. CycleGAN's four) **in place** with ``nn.Module.compile`` when fit starts:
  the modules stay the same objects, so state-dict keys, checkpoints, the EMA copy (made from the eager generator
  at init) and sampling are unchanged. Each network compiles once per variant it meets — train mode with its
  parameters trainable (its own update) and frozen (the other network's update, ``toggle_optimizer``), eval mode
  for sampling — and never again after that warm-up (``tests/test_precision.py`` counts the graphs). The graph
  breaks of the first GAN step are reported once. Gradient penalties (WGAN-GP, R1) differentiate D twice, which
  compiled graphs do not support: those D calls run eagerly (``compat.eager_calls``); everything else stays compiled.
* ``--model.channels_last=true`` stores the networks' conv weights NHWC (``channels_last_3d`` for 3-D convs) and
  converts the image tensors of every training batch on the device, the memory format cuDNN's tensor-core convolutions
  prefer (fp16/bf16 on Volta and later). Off by default: on CPU it does not pay (docs/precision.md).

On CPU neither pays for these small GANs (measured: compile made the DCGAN-MNIST step slower); they are for GPUs,
where MNIST-sized GANs are bound by kernel launches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import apply_to_collection
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from lightning_gans.compat import dynamo_graph_breaks
from lightning_gans.errors import ConfigError


def compile_options(value: bool | dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``torch.compile`` keyword arguments of a ``compile`` option (None: off)."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, dict):
        return dict(value)
    raise ConfigError(
        f"model.compile must be true/false or torch.compile options such as {{mode: reduce-overhead}}, got {value!r}"
    )


def networks_of(*modules: nn.Module | None) -> list[nn.Module]:
    """The networks to compile: each module, or each value of a ``ModuleDict`` (CycleGAN's G_AB/G_BA, D_A/D_B)."""
    found: list[nn.Module] = []
    for module in modules:
        if module is None:
            continue
        found.extend(module.values() if isinstance(module, nn.ModuleDict) else [module])
    return found


def compile_networks(networks: Iterable[nn.Module], options: dict[str, Any]) -> int:
    """Compile every network in place (``nn.Module.compile``); return how many. Already compiled ones are left."""
    count = 0
    for net in networks:
        if getattr(net, "_compiled_call_impl", None) is None:
            net.compile(**options)
            count += 1
    return count


def report_graph_breaks(before: dict[str, int]) -> None:
    """One line on rank 0 after the first compiled GAN step: the graph breaks it caused, or none."""
    after = dynamo_graph_breaks()
    new = {reason: n - before.get(reason, 0) for reason, n in after.items() if n > before.get(reason, 0)}
    if not new:
        rank_zero_info("compile: the first GAN step compiled without graph breaks")
        return
    reasons = "; ".join(f"{reason.splitlines()[0][:120]} (×{n})" for reason, n in new.items())
    rank_zero_info(f"compile: {sum(new.values())} graph break(s) in the first GAN step: {reasons}")


def _format_for(net: nn.Module) -> torch.memory_format:
    return torch.channels_last_3d if any(p.dim() == 5 for p in net.parameters()) else torch.channels_last


def to_channels_last(networks: Iterable[nn.Module]) -> None:
    """Store each network's conv weights channels-last (in place; the parameters stay the same objects)."""
    for net in networks:
        net.to(memory_format=_format_for(net))


def batch_to_channels_last(batch: Any) -> Any:
    """Every 4-D (5-D) float tensor of a batch in channels-last (-3d) memory format; other leaves unchanged."""

    def convert(t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point() or t.dim() not in (4, 5):
            return t
        return t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)

    return apply_to_collection(batch, torch.Tensor, convert)
