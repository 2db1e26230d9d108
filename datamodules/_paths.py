"""Where datasets live on disk, and the one error type raised when they are missing."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from lightning_gans.errors import DatasetNotFoundError  # noqa: F401 - re-exported (old import path)

DATA_ENV_VAR = "LIGHTNING_GANS_DATA"
# What scipy.io.loadmat raises on a truncated or corrupt file (measured: IndexError below 128 bytes, MatReadError
# "appears to be truncated", OSError "could not read bytes", ValueError for damaged compressed elements,
# NotImplementedError for v7.3/HDF5 files, zlib.error); MatReadError derives from Exception itself.
MAT_READ_ERRORS: tuple[type[Exception], ...] = (
    ValueError, OSError, TypeError, IndexError, KeyError, EOFError, NotImplementedError, zlib.error,
)  # fmt: skip


def mat_read_errors() -> tuple[type[Exception], ...]:
    """:data:`MAT_READ_ERRORS` plus scipy's ``MatReadError`` (scipy imported only here, when a .mat is read)."""
    from scipy.io.matlab import MatReadError

    return (*MAT_READ_ERRORS, MatReadError)


DEFAULT_DATA_DIR = "./data"


def resolve_data_dir(data_dir: str | None) -> Path:
    """The data root: ``data_dir`` if given, else ``$LIGHTNING_GANS_DATA``, else ``./data``."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(DEFAULT_DATA_DIR)
