"""Mixed precision for manual GAN optimisation: one loss scaler per optimizer, and every path that takes
gradients itself scaled and unscaled correctly.

Under ``--trainer.precision=16-mixed`` Lightning's ``MixedPrecision`` plugin runs each ``*_step`` under
``torch.autocast`` and holds one ``GradScaler``. Its scaler is right for one ``loss.backward()`` per optimizer,
but a GAN step is more: the simultaneous update takes two ``torch.autograd.grad`` of its own, and a gradient
penalty (WGAN-GP) or R1 differentiates D with respect to its input inside the loss. An unscaled ``autograd.grad``
under fp16 underflows; a gradient that the plugin then unscales is wrong by the scale factor; a penalty computed
from scaled input gradients is wrong by it too — all silently. And one scaler shared by G and D lets one
network's overflow halve the other's scale.

So the module takes the plugin's scaler over when fit starts (``compat.take_grad_scaler``: the plugin keeps
autocast, the module owns scaling) and gives **every optimizer its own copy** (same settings). Then, for the
optimizer an update steps:

* ``_backward(loss, optimizer)`` / ``_scaled(loss, optimizer)`` multiply the loss by that optimizer's scale before
  ``backward`` or ``autograd.grad`` (the simultaneous update);
* ``loss_scale(optimizer)`` is the scale as a device tensor: the penalties take ∇x of ``scale · ΣD(x)`` and divide
  by it (``losses.gradient_penalty(..., loss_scale=)``; the recipe of the PyTorch AMP notes, "gradient penalty"),
  so their values are those of fp32 and an fp16 overflow there reaches D's scaler through D's gradients;
* ``_step_optimizer`` (``mechanics``) reduces the still-scaled gradients over the ranks, unscales them, clips,
  steps through the scaler (a non-finite gradient skips **that optimizer's** step only; the batch still counts as
  one GAN step, so the D/G schedule stays in order) and updates that scale.

The scalers' states are saved in checkpoints (``lightning_gans_loss_scalers``) and restored on resume. Under a
scaler the loss NaN/Inf guard is the scaler's: non-finite gradients are expected now and then (they lower the
scale), so instead the control check raises ``NonFiniteLossError`` when a scale collapses below
``MIN_LOSS_SCALE`` (65 536 halved 32 times: every step of that network non-finite for a long while). bf16-mixed
needs no scaler (bf16 has fp32's exponent range) and none of this is active there; 64-true and 32-true neither.

Cost: ``GradScaler.step`` reads its found-inf flag on the host, one sync per optimizer step under 16-mixed (torch's
contract; bf16-mixed has none). Prefer bf16-mixed on hardware that has it (docs/precision.md).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from lightning_gans.compat import attached_trainer, take_grad_scaler

MIN_LOSS_SCALE = 2.0**-16  # 2**16 (GradScaler's initial scale) halved 32 times
SCALER_STATES = "lightning_gans_loss_scalers"


def inner_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer behind a ``LightningOptimizer`` (or the optimizer itself)."""
    return getattr(optimizer, "optimizer", optimizer)


class LossScaling:
    """One ``GradScaler`` per optimizer under 16-mixed, owned by the module (see module docstring)."""

    def _take_loss_scaling(self) -> None:
        """At fit start, before a resumed checkpoint's training state is restored: take the precision plugin's
        scaler (if any) as the template of the per-optimizer scalers."""
        trainer = attached_trainer(self)
        template = take_grad_scaler(trainer) if trainer is not None else None
        if template is not None:
            self._scaler_template = template
        self._scalers: dict[int, torch.amp.GradScaler] = getattr(self, "_scalers", {})

    def _optimizer_index(self, optimizer: Any) -> int:
        inner = inner_optimizer(optimizer)
        for i, candidate in enumerate(self.trainer.optimizers):
            if inner_optimizer(candidate) is inner:
                return i
        raise ValueError("this optimizer is not one of the trainer's optimizers")

    def loss_scaler(self, optimizer: Any) -> torch.amp.GradScaler | None:
        """The scaler of ``optimizer`` (created on first use, restored from a checkpoint), or None without one."""
        template = getattr(self, "_scaler_template", None)
        if template is None or attached_trainer(self) is None:
            return None
        index = self._optimizer_index(optimizer)
        scaler = self._scalers.get(index)
        if scaler is None:
            scaler = self._scalers[index] = copy.deepcopy(template)
            saved = getattr(self, "_saved_scaler_states", {}).pop(index, None)
            if saved:
                scaler.load_state_dict(saved)
        return scaler

    def loss_scale(self, optimizer: Any) -> torch.Tensor | None:
        """``optimizer``'s current loss scale as a 0-d device tensor (no host sync), or None without a scaler."""
        scaler = self.loss_scaler(optimizer)
        return None if scaler is None else scaler.scale(torch.ones((), device=self.device))

    def _critic_loss_scale(self) -> torch.Tensor | None:
        """D's loss scale for the input-gradient penalties (``GANModule``'s optimizers are [G, D]); None without."""
        return self.loss_scale(self.optimizers()[1]) if self._scaler_guard_active() else None

    def _scaled(self, loss: torch.Tensor, optimizer: Any) -> torch.Tensor:
        """``loss`` times ``optimizer``'s loss scale (unchanged without a scaler): what to differentiate."""
        scaler = self.loss_scaler(optimizer)
        return loss if scaler is None else scaler.scale(loss)

    def _backward(self, loss: torch.Tensor, optimizer: Any) -> None:
        """``manual_backward`` of ``loss`` scaled for ``optimizer`` (the one backward path of every update)."""
        self.manual_backward(self._scaled(loss, optimizer))

    def _scaler_step(self, optimizer: Any, clip: float | None) -> None:
        """Unscale, clip, step (skipped on non-finite gradients) and update ``optimizer``'s scaler; or, without a
        scaler, clip and step."""
        scaler = self.loss_scaler(optimizer)
        if scaler is not None:
            scaler.unscale_(optimizer)  # before clipping: the clip threshold is in unscaled units
        if clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        if scaler is None:
            optimizer.step()
            return
        scaler.step(optimizer)
        scaler.update()

    def _loss_scales(self) -> list[torch.Tensor]:
        """The scalers' current scales (device tensors), for the control check."""
        one = torch.ones((), device=self.device)
        return [s.scale(one).double() for s in getattr(self, "_scalers", {}).values()]

    def _scaler_guard_active(self) -> bool:
        """Whether non-finite values are the scaler's business (16-mixed): the loss guard stands down."""
        return getattr(self, "_scaler_template", None) is not None and attached_trainer(self) is not None

    def _collapsed_scale(self, scales: list[float]) -> str | None:
        """A message naming the optimizer whose loss scale collapsed, or None."""
        for index, scale in zip(list(self._scalers), scales):
            if scale < MIN_LOSS_SCALE:
                return (
                    f"the 16-mixed loss scale of optimizer {index} fell to {scale:.3g} (its gradients were non-finite "
                    "at almost every step)"
                )
        return None

    def _save_scalers(self, checkpoint: dict[str, Any]) -> None:
        states = dict(getattr(self, "_saved_scaler_states", {}))
        states.update({i: s.state_dict() for i, s in getattr(self, "_scalers", {}).items()})
        if states:
            checkpoint[SCALER_STATES] = states

    def _load_scalers(self, checkpoint: dict[str, Any]) -> None:
        """Keep the saved scaler states; each is applied when its scaler is created (``loss_scaler``)."""
        states = checkpoint.get(SCALER_STATES)
        if states:
            self._saved_scaler_states = {int(i): s for i, s in states.items()}
            for index, scaler in getattr(self, "_scalers", {}).items():
                if index in self._saved_scaler_states:
                    scaler.load_state_dict(self._saved_scaler_states.pop(index))
