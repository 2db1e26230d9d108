"""Draw samples from a checkpoint into ``OUT.npz`` + ``OUT.png`` (``lightning-gans sample``)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch

from lightning_gans.capabilities import is_conditional
from lightning_gans.checkpoints import model_class_path, read_checkpoint
from lightning_gans.models.base import GANModule
from lightning_gans.outputs import make_grid, save_png, to_uint8


def load_module(ckpt: str | Path) -> GANModule:
    """Rebuild the LightningModule a ``lightning-gans fit`` run saved (class and networks from its hparams)."""
    path = Path(ckpt)
    read_checkpoint(path)  # one clear line for a missing, truncated or foreign file
    import lightning_gans.models  # noqa: F401 - registers every model class for the checkpoint's class_path

    module = model_class(path).load_from_checkpoint(path, map_location="cpu", weights_only=False)
    return module.eval()


def model_class(ckpt: str | Path) -> type[GANModule]:
    """The GANModule subclass a CLI checkpoint names (its ``_class_path`` hyperparameter), else ``GANModule``.

    Loading through ``GANModule.load_from_checkpoint`` is not enough: Lightning drops ``_class_path`` for classes
    without ``**kwargs`` in ``__init__`` and would rebuild a plain ``GANModule`` around the saved networks, losing
    the subclass's hooks (e.g. a conditional ``sample``).
    """
    class_path = model_class_path(read_checkpoint(ckpt))
    if class_path is None:
        return GANModule
    module_name, name = class_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), name, None)
    if not (isinstance(cls, type) and issubclass(cls, GANModule)):
        raise ValueError(f"{ckpt} names model class {class_path!r}, which is not a GANModule")
    return cls


def _toy_dataset(ckpt: str | Path) -> str:
    """The toy mixture a checkpoint was trained on (its datamodule's ``dataset``), for the scatter plot."""
    checkpoint = read_checkpoint(ckpt)
    return (checkpoint.get("datamodule_hyper_parameters") or {}).get("dataset") or "grid25"


def conditional_labels(module: GANModule, n: int, labels: list[int] | None) -> tuple[torch.Tensor, int | None]:
    """The labels to sample a conditional module with, and the grid's row length.

    ``labels`` given: ``n`` samples of each, label by label (each grid row one label); else ``n`` samples
    cycling through the classes 0, 1, …, K−1, 0, … (default grid layout).
    """
    if labels is None:
        return torch.arange(n) % module.num_classes, None
    bad = [label for label in labels if not 0 <= label < module.num_classes]
    if bad or not labels:
        raise ValueError(f"--labels must be classes in [0, {module.num_classes - 1}], got {labels}")
    return torch.tensor(labels).repeat_interleave(n), n


def write_samples(
    ckpt: str | Path, n: int, out: str | Path, seed: int = 0, use_ema: bool = True, labels: list[int] | None = None
) -> tuple[Path, Path]:
    """Write ``OUT.npz`` (``images`` uint8 N×C×H×W, or ``samples`` float32 N×D for point data, plus
    ``labels`` for conditional models) and ``OUT.png`` (an image grid, or a scatter plot for 2-D points);
    voxel models write ``OUT.npy`` (float32 occupancies N×1×D×H×W in [0, 1]) and a PNG of voxel renders instead.

    Conditional models: ``labels`` asks for ``n`` samples of each listed class (the PNG has one row per label);
    without it the ``n`` samples cycle through the classes. Unconditional models refuse ``labels``.
    """
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    module = load_module(ckpt)
    conditional = is_conditional(module)
    if labels is not None and not conditional:
        name = type(module).__name__
        raise ValueError(f"--labels needs a conditional model (e.g. CGAN); this checkpoint holds a {name}")
    if not use_ema:
        module.generator_ema = None
    torch.manual_seed(seed)
    nrow, sampled_labels = None, None
    if conditional:
        sampled_labels, nrow = conditional_labels(module, n, labels)
        result = module.sample(len(sampled_labels), labels=sampled_labels)
    else:
        result = module.sample(n)
    if isinstance(result, tuple):  # a model that chooses its own conditions returns (samples, labels)
        result, sampled_labels = result
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    npz, png = out.with_suffix(".npz"), out.with_suffix(".png")
    if result.dim() == 5:  # voxel volumes (3D-GAN): float32 occupancies N×1×D×H×W in OUT.npy, renders in OUT.png
        from lightning_gans.callbacks.voxels import render_volumes

        np.save(out.with_suffix(".npy"), result.float().cpu().numpy())
        save_png(render_volumes(result.cpu()), png)
        return out.with_suffix(".npy"), png
    arrays: dict[str, np.ndarray] = {}
    if result.dim() == 2:  # point data (toy benchmark)
        arrays["samples"] = result.float().cpu().numpy()
        from datamodules.toy import scatter_plot

        name = _toy_dataset(ckpt)
        save_png(scatter_plot(result.cpu(), name), png)
    else:
        arrays["images"] = to_uint8(result).numpy()
        save_png(make_grid(result, nrow=nrow), png)
    if sampled_labels is not None:
        arrays["labels"] = sampled_labels.cpu().numpy()
    np.savez(npz, **arrays)
    return npz, png
