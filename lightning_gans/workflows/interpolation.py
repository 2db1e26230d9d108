"""Latent-space interpolation strips from a checkpoint (``lightning-gans interpolate``; *GANs in Action* ch. 6.1).

Each row walks from one latent z₀ to another z₁ in ``steps`` images; a smooth walk without sudden jumps or
collapsed stretches is the chapter's sign that the generator learned a continuous latent space rather than
memorised images. Writes ``DIR/interpolation.png`` (one row per pair) and ``DIR/interpolation.gif`` (the rows
played forwards and back, frame k = step k of every row).

Interpolation is spherical by default (slerp, Shoemake 1985; recommended for Gaussian latents by White 2016,
"Sampling Generative Networks"): a straight line between two N(0, I) samples passes through points of
atypically small norm in high dimensions (the midpoint of two independent latents has norm ≈ 1/√2 of theirs),
which the generator never saw in training; slerp keeps the norm between the two ends. ``--mode linear`` gives the
straight line. Works for every ``GANModule`` checkpoint; conditional models keep one class per row (row r: class
r mod K), so only the latent changes along a row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lightning_gans.capabilities import is_conditional
from lightning_gans.outputs import make_grid, save_png


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``z0`` and ``z1`` (N×D) at fractions ``t`` (T) → N×T×D.

    The angle is that between the two directions; the norm is interpolated linearly. Parallel vectors fall
    back to the straight line (the spherical formula divides by sin θ).
    """
    n0, n1 = z0.norm(dim=1, keepdim=True), z1.norm(dim=1, keepdim=True)
    cos = ((z0 / n0) * (z1 / n1)).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    theta = torch.acos(cos)[:, None, :]  # N×1×1
    t = t.view(1, -1, 1)
    sin = torch.sin(theta)
    safe = sin.abs() > 1e-6
    w0 = torch.where(safe, torch.sin((1 - t) * theta) / torch.where(safe, sin, 1.0), 1 - t)
    w1 = torch.where(safe, torch.sin(t * theta) / torch.where(safe, sin, 1.0), t)
    u0, u1 = (z0 / n0)[:, None, :], (z1 / n1)[:, None, :]
    direction = w0 * u0 + w1 * u1
    direction = direction / direction.norm(dim=2, keepdim=True).clamp_min(1e-12)
    norm = (1 - t) * n0[:, None, :] + t * n1[:, None, :]
    return direction * norm


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight-line interpolation → N×T×D."""
    t = t.view(1, -1, 1)
    return (1 - t) * z0[:, None, :] + t * z1[:, None, :]


def interpolation_latents(z0: torch.Tensor, z1: torch.Tensor, steps: int, mode: str = "slerp") -> torch.Tensor:
    """``steps`` latents per row from ``z0`` to ``z1`` inclusive: N×steps×D."""
    if steps < 2:
        raise ValueError(f"--steps must be >= 2 (the two ends), got {steps}")
    if mode not in ("slerp", "linear"):
        raise ValueError(f"--mode must be 'slerp' or 'linear', got {mode!r}")
    t = torch.linspace(0.0, 1.0, steps)
    return slerp(z0, z1, t) if mode == "slerp" else lerp(z0, z1, t)


def default_out_dir(ckpt: Path) -> Path:
    """``<run>/interpolation`` for ``<run>/checkpoints/x.ckpt``, else ``interpolation`` beside the checkpoint."""
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return run / "interpolation"


def write_interpolation(
    ckpt: str | Path,
    steps: int = 10,
    out: str | Path | None = None,
    rows: int = 4,
    mode: str = "slerp",
    seed: int = 0,
    use_ema: bool = True,
) -> tuple[Path, Path]:
    """Write the strip PNG and the GIF for ``rows`` latent pairs of a checkpoint; returns their paths."""
    from lightning_gans.workflows.sampling import load_module

    if rows < 1:
        raise ValueError(f"--rows must be >= 1, got {rows}")
    module = load_module(ckpt)
    if not use_ema:
        module.generator_ema = None
    torch.manual_seed(seed)
    with torch.no_grad():
        z0, z1 = module.sample_noise(rows).cpu(), module.sample_noise(rows).cpu()
    if z0.dim() != 2:
        raise ValueError(f"interpolate needs flat latent vectors (N×D); this model samples {tuple(z0.shape)}")
    latents = interpolation_latents(z0, z1, steps, mode)  # rows×steps×D
    condition = {}
    if is_conditional(module):
        condition["labels"] = (torch.arange(rows) % module.num_classes).repeat_interleave(steps)
    images = module.sample(rows * steps, noise=latents.reshape(rows * steps, -1), **condition)
    if isinstance(images, (tuple, list)):
        images = images[0]
    if images.dim() != 4:
        raise ValueError(f"interpolate draws image strips; this model generates {tuple(images.shape)} samples")
    images = images.cpu()
    out_dir = Path(out) if out is not None else default_out_dir(Path(ckpt))
    out_dir.mkdir(parents=True, exist_ok=True)
    png = save_png(make_grid(images, nrow=steps), out_dir / "interpolation.png")
    strips = images.view(rows, steps, *images.shape[1:])
    frames = [make_grid(strips[:, k], nrow=1) for k in range(steps)]
    frames += frames[-2:0:-1]  # forwards, then back (ping-pong loop)
    import imageio.v2 as imageio

    gif = out_dir / "interpolation.gif"
    imageio.mimsave(gif, [np.asarray(f) for f in frames], duration=0.15, loop=0)
    return png, gif
