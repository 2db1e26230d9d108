"""History of generated images for the discriminator (Shrivastava et al. 2017, §2.3; CycleGAN paper §4: "a buffer
that stores the 50 previously created images").

``query(fakes)`` returns a batch of the same size: while the pool holds fewer than ``size`` images every fake is
stored and returned as is; once it is full, each fake is, with probability ½, swapped for a uniformly chosen
stored image (which the new fake replaces) and otherwise returned unchanged. ``size=0`` disables the pool.
The pool is per process (each DDP rank keeps its own history) and is not saved in checkpoints: a resumed run
refills it within ``size`` images.
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

    @torch.no_grad()
    def query(self, fakes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch like ``fakes`` (detached): stored past images mixed in with probability ½ once full."""
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
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
