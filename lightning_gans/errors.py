"""User-facing errors: one module every layer (and ``datamodules``) may import; it imports nothing of ours.

Each error's message is written for the person at the terminal: what was wrong and what to do. The CLI prints
any ``LightningGANsError`` as one ``lightning-gans: error: …`` line (no traceback) and exits with
``exit_code``. Every class also derives from the built-in type a caller would expect (``ValueError`` for a
refused setting, ``FileNotFoundError`` for a missing file), so ``except ValueError`` keeps working.

Old import paths (``lightning_gans.cli.ConfigError``, ``datamodules._paths.DatasetNotFoundError``,
``lightning_gans.metrics.extractors.ExtractorWeightsError``, …) re-export these classes.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CheckpointError",
    "CompareError",
    "ConfigError",
    "DamagedDataError",
    "DatasetNotFoundError",
    "DownloadError",
    "ExtractorChecksumError",
    "ExtractorWeightsError",
    "FaceRecognitionWeightsError",
    "LightningGANsError",
    "MissingPackageError",
    "NonFiniteLossError",
    "ReferenceStatsError",
    "VGGWeightsError",
    "VoxelFormatError",
]


class LightningGANsError(Exception):
    """Base of every error the CLI prints as one line. ``exit_code``: 2 for a refused configuration, else 1."""

    exit_code = 1


class ConfigError(LightningGANsError, ValueError):
    """A configuration the framework refuses, with what to do instead."""

    exit_code = 2


class DatasetNotFoundError(LightningGANsError, FileNotFoundError):
    """A dataset's files are missing and could not be downloaded. The message says what to put where."""


class DownloadError(LightningGANsError, OSError):
    """No URL of a download gave a good file (``lightning_gans.download``). ``attempts`` lists ``(url, why)`` for
    every URL tried; ``reason`` is the same on one line, for callers that add their own instructions."""

    def __init__(self, message: str = "download failed", attempts: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)

    @property
    def reason(self) -> str:
        return "; ".join(f"{url}: {why}" for url, why in self.attempts) or str(self)

    def __reduce__(self):  # picklable (DDP spawn, multiprocessing) despite the extra argument
        return type(self), (str(self), self.attempts)


class CheckpointError(LightningGANsError, ValueError):
    """A file given as a checkpoint is not one this project can load (the message names the file)."""


class NonFiniteLossError(LightningGANsError, RuntimeError):
    """A loss became NaN/Inf; training stopped before applying the bad update."""


class ExtractorWeightsError(LightningGANsError, FileNotFoundError):
    """An extractor's weights file is missing (or unusable). The message says which file, where it is expected,
    how to obtain it and how to point the extractor elsewhere (``weights_path``)."""

    @classmethod
    def for_file(cls, extractor: str, path: Path, obtain: str, reason: str | None = None) -> ExtractorWeightsError:
        lines = [
            f"Weights for feature extractor {extractor!r} not found: {path.name}" + (f" ({reason})" if reason else ""),
            f"  Expected at: {path}",
            f"  {obtain}",
            f"  Or pass weights_path=/path/to/{path.name} (the extractor option `weights_path`) to use a file "
            "stored elsewhere.",
        ]
        return cls("\n".join(lines))


class ExtractorChecksumError(ExtractorWeightsError):
    """The weights file exists but does not match its recorded sha256 (corrupted or replaced)."""


class VGGWeightsError(LightningGANsError, FileNotFoundError):
    """The ImageNet VGG19 weights file of the content loss is missing or unusable (the message says what to do)."""


class FaceRecognitionWeightsError(LightningGANsError, FileNotFoundError):
    """The face-recognition network's weights are missing; the message says which file to put where."""


class DamagedDataError(LightningGANsError, ValueError):
    """Data files that exist but cannot be read (truncated, corrupt, not the promised format); the message names
    the file and says how to replace it."""


class VoxelFormatError(LightningGANsError, ValueError):
    """A voxel file is not in the format its extension promises."""


class ReferenceStatsError(LightningGANsError, ValueError):
    """A reference-statistics file that is unreadable, fails its checksums, or was computed under another protocol."""


class CompareError(LightningGANsError, RuntimeError):
    """Nothing to compare, or a source that cannot be read; the message says what was tried."""


class MissingPackageError(LightningGANsError, RuntimeError):
    """An optional package a command needs is not installed; the message says how to install it."""
