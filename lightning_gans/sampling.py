"""Draw samples from a checkpoint into ``OUT.npz`` + ``OUT.png`` (``lightning-gans sample``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lightning_gans.models.base import GANModule
from lightning_gans.outputs import make_grid, save_png, to_uint8


def load_module(ckpt: str | Path) -> GANModule:
    """Rebuild the LightningModule a ``lightning-gans fit`` run saved (class and networks from its hparams)."""
    path = Path(ckpt)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (runs keep them in runs/<exp>/<run>/checkpoints/)")
    import lightning_gans.models  # noqa: F401 - registers every model class for the checkpoint's class_path

    module = GANModule.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    return module.eval()


def _toy_dataset(ckpt: str | Path) -> str:
    """The toy mixture a checkpoint was trained on (its datamodule's ``dataset``), for the scatter plot."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    return (checkpoint.get("datamodule_hyper_parameters") or {}).get("dataset") or "grid25"


def write_samples(
    ckpt: str | Path, n: int, out: str | Path, seed: int = 0, use_ema: bool = True, **condition
) -> tuple[Path, Path]:
    """Write ``OUT.npz`` (``images`` uint8 N×C×H×W, or ``samples`` float32 N×D for point data, plus
    ``labels`` for conditional models) and ``OUT.png`` (an image grid, or a scatter plot for 2-D points)."""
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    module = load_module(ckpt)
    if not use_ema:
        module.generator_ema = None
    torch.manual_seed(seed)
    result = module.sample(n, **condition)
    labels = None
    if isinstance(result, tuple):
        result, labels = result
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    npz, png = out.with_suffix(".npz"), out.with_suffix(".png")
    arrays: dict[str, np.ndarray] = {}
    if result.dim() == 2:  # point data (toy benchmark)
        arrays["samples"] = result.float().cpu().numpy()
        from datamodules.toy import scatter_plot

        name = _toy_dataset(ckpt)
        save_png(scatter_plot(result.cpu(), name), png)
    else:
        arrays["images"] = to_uint8(result).numpy()
        save_png(make_grid(result), png)
    if labels is not None:
        arrays["labels"] = labels.cpu().numpy()
    np.savez(npz, **arrays)
    return npz, png
