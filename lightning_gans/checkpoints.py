"""Reading a file given as a checkpoint, with one clear line for anything that is not one.

Every command that takes ``--ckpt`` (``sample``, ``eval``, ``interpolate``, ``translate``, ``upscale``, ``age``,
``stats``) and ``fit --ckpt_path`` read through :func:`read_checkpoint`: a missing file, random bytes, a text
file, a truncated checkpoint or a torch file that is not a Lightning checkpoint each raise one
:class:`~lightning_gans.errors.CheckpointError` naming the file and what to give instead (a missing file: a
``FileNotFoundError`` line, exit 1).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from lightning_gans.errors import CheckpointError

WHERE = "runs keep them in runs/<experiment>/<run>/checkpoints/ (last.ckpt)"
READ_ERRORS = (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError)


def read_checkpoint(path: str | Path, mmap: bool = True) -> dict[str, Any]:
    """The checkpoint dict at ``path`` (CPU tensors; memory-mapped by default), or one CheckpointError line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist ({WHERE})")  # exit 1, like any missing file
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except READ_ERRORS as err:
        first = " ".join(str(err).split())[:120]
        raise CheckpointError(
            f"{path} is not a checkpoint that can be read ({type(err).__name__}: {first}): it is truncated, damaged "
            f"or another kind of file; give a .ckpt written by `lightning-gans fit` ({WHERE})"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is a torch file but not a Lightning checkpoint (no state_dict): give a .ckpt written by "
            f"`lightning-gans fit` ({WHERE})"
        )
    return checkpoint


def model_class_path(checkpoint: dict[str, Any]) -> str | None:
    """The model class a ``lightning-gans fit`` checkpoint names (its ``_class_path`` hyperparameter)."""
    class_path = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    return class_path if isinstance(class_path, str) and "." in class_path else None
