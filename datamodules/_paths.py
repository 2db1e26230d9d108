"""Where datasets live on disk, and the one error type raised when they are missing."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "LIGHTNING_GANS_DATA"
DEFAULT_DATA_DIR = "./data"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing and could not be downloaded. The message says what to put where."""


def resolve_data_dir(data_dir: str | None) -> Path:
    """The data root: ``data_dir`` if given, else ``$LIGHTNING_GANS_DATA``, else ``./data``."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(DEFAULT_DATA_DIR)
