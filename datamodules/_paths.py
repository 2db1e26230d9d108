"""Where datasets live on disk, and the one error type raised when they are missing."""

from __future__ import annotations

import os
from pathlib import Path

from lightning_gans.errors import DatasetNotFoundError  # noqa: F401 - re-exported (old import path)

DATA_ENV_VAR = "LIGHTNING_GANS_DATA"
DEFAULT_DATA_DIR = "./data"


def resolve_data_dir(data_dir: str | None) -> Path:
    """The data root: ``data_dir`` if given, else ``$LIGHTNING_GANS_DATA``, else ``./data``."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(DEFAULT_DATA_DIR)
