"""History of generated images for the discriminator (Shrivastava et al. 2017, §2.3; CycleGAN paper §4: "a buffer
that stores the 50 previously created images").

``query(fakes)`` returns a batch of the same size: while the pool holds fewer than ``size`` images every fake is
stored and returned as is; once it is full, each fake is, with probability ½, swapped for a uniformly chosen
stored image (which the new fake replaces) and otherwise returned unchanged. ``size=0`` disables the pool.
The pool is per process (each DDP rank keeps its own history). ``state_dict``/``load_state_dict`` carry its images
(CycleGAN saves rank 0's pools in every checkpoint, so a one-process resume continues with the same history; under
DDP every rank resumes with rank 0's, which the next ``size`` images replace).
"""

from __future__ import annotations

import torch


class ImagePool:
    """A buffer of ``size`` past fakes; ``query`` mixes them into the D batch (see module docstring)."""

    def __init__(self, size: int = 50) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0 (0 disables the pool), got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def state_dict(self) -> dict[str, object]:
        """The stored images (one N×C×H×W tensor on the CPU; N = 0 when empty) and the size."""
        images = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": images}

    def load_state_dict(self, state: dict[str, object]) -> None:
        images = state["images"]
        if int(state["size"]) != self.size:
            raise ValueError(f"image pool: the checkpoint's pool holds up to {state['size']}, this one {self.size}")
        self.images = [image.clone() for image in images] if isinstance(images, torch.Tensor) and images.ndim else []

    @torch.no_grad()
    def query(self, fakes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch like ``fakes`` (detached): stored past images mixed in with probability ½ once full."""
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        if self.images and self.images[0].device != fakes.device:  # restored from a checkpoint on the CPU
            self.images = [image.to(fakes.device) for image in self.images]
        out = []
        for image in fakes:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                k = int(torch.randint(len(self.images), (), generator=generator))
                out.append(self.images[k])
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)
