"""``lightning-gans stats compute|verify|list``: real-feature statistics as shareable, checksummed files.

    lightning-gans stats compute --config experiments/dcgan_mnist.yaml --n 10000 --metrics fid,kid,prdc --out s.npz
    lightning-gans stats verify s.npz [--recompute --config experiments/dcgan_mnist.yaml]
    lightning-gans stats list [DIR_OR_FILE …]                # default: the reference cache

The datamodule comes from an experiment file's ``data:`` section (composed like ``fit --config``) or from a
checkpoint written by ``lightning-gans fit``; the statistics are those of the evaluation's real pass
(:func:`lightning_gans.evaluation.reference_statistics`), so a file equals what ``eval`` and the callback compute
and cache. The file format and its manifest: :mod:`lightning_gans.metrics.reference`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_gans.errors import ConfigError, ReferenceStatsError
from lightning_gans.evaluation import EvalProtocol, EvalSettings, make_protocol, reference_statistics
from lightning_gans.metrics import ReferenceCache, build_extractor
from lightning_gans.metrics.extractors import file_sha256
from lightning_gans.metrics.reference import StatsFile, protocol_differences, read_statistics, write_statistics
from lightning_gans.workflows.data import datamodule_from_config
from lightning_gans.workflows.evaluate import describe, load_datamodule

FLOAT_TOLERANCE = 1e-5  # relative, for --recompute on other hardware (float features differ in the last bits)


@dataclass(frozen=True)
class StatsSource:
    """Where the real images come from and how they are scored (everything of ``stats compute`` but the output)."""

    config: str | None = None
    ckpt: str | None = None
    data_dir: str | None = None
    split: str = "test"
    n: int = 10000
    extractor: str = "lenet-mnist"
    extractor_kwargs: dict = field(default_factory=dict)
    metrics: tuple[str, ...] = ("fid",)
    batch_size: int = 500
    device: str | None = None


def datamodule_of(source: StatsSource) -> pl.LightningDataModule:
    """The datamodule of ``--config`` (its composed ``data:`` section) or ``--ckpt``, ``prepare_data()`` done."""
    if (source.config is None) == (source.ckpt is None):
        raise ConfigError("give exactly one of --config (an experiment file) or --ckpt (a fit checkpoint)")
    if source.ckpt is not None:
        if not Path(source.ckpt).is_file():
            raise ConfigError(f"--ckpt {source.ckpt}: no such file")
        datamodule = load_datamodule(source.ckpt, source.data_dir)
    else:
        overrides = {"data_dir": source.data_dir} if source.data_dir is not None else {}
        datamodule = datamodule_from_config(source.config, **overrides)
    datamodule.prepare_data()
    return datamodule


def source_hashes(datamodule: pl.LightningDataModule, split: str) -> dict[str, str] | None:
    """sha256 of the dataset files behind ``split`` when the datamodule lists them (``source_files(split)``)."""
    files = getattr(datamodule, "source_files", None)
    if not callable(files):
        return None
    return {Path(f).name: file_sha256(f) for f in files(split)}


def compute(source: StatsSource) -> tuple[EvalProtocol, dict[str, torch.Tensor], dict[str, str] | None]:
    """(protocol, statistics, source-file hashes) of ``source`` (one process)."""
    datamodule = datamodule_of(source)
    images, labels = datamodule.real_images(source.split)
    if source.n > len(images):
        name = getattr(datamodule, "name", type(datamodule).__name__)
        raise ConfigError(f"--n {source.n} but the {source.split} split of {name} has {len(images)} images: lower --n")
    device = torch.device(source.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    extractor = build_extractor(source.extractor, **source.extractor_kwargs).to(device)
    protocol = make_protocol(getattr(datamodule, "name", type(datamodule).__name__), source.split, source.n, extractor)
    stats = reference_statistics(
        images,
        labels,
        extractor,
        protocol,
        list(source.metrics),
        EvalSettings(batch_size=source.batch_size),
        device=device,
        progress=True,
    )
    return protocol, stats, source_hashes(datamodule, source.split)


def compute_file(source: StatsSource, out: str | Path, cache: bool = False) -> StatsFile:
    """Compute and write the statistics file ``out`` (and, with ``cache``, the reference cache's entry)."""
    protocol, stats, sources = compute(source)
    path = write_statistics(out, protocol, stats, sources, list(source.metrics))
    if cache:
        write_statistics(ReferenceCache().path(protocol), protocol, stats, sources, list(source.metrics))
    return read_statistics(path, expected_protocol=protocol)


def _compare_arrays(path: Path, stored: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> float:
    """The largest relative difference of the float arrays; integer arrays must be equal."""
    if set(stored) != set(fresh):
        raise ReferenceStatsError(f"{path}: holds {sorted(stored)}, a recomputation gives {sorted(fresh)}")
    worst = 0.0
    for name, value in stored.items():
        other = fresh[name].to(value.dtype)
        if value.shape != other.shape or (not value.is_floating_point() and not torch.equal(value, other)):
            raise ReferenceStatsError(f"{path}: array {name!r} differs from a recomputation (shape or counts)")
        if value.is_floating_point() and value.numel():
            scale = value.abs().max().clamp_min(1e-12)
            worst = max(worst, float((value - other).abs().max() / scale))
    if worst > FLOAT_TOLERANCE:
        raise ReferenceStatsError(
            f"{path}: differs from a recomputation by {worst:.2e} (relative; tolerance {FLOAT_TOLERANCE:g})"
        )
    return worst


def verify(path: str | Path, source: StatsSource | None = None, recompute: bool = False) -> str:
    """Check a file (format, checksums, protocol key); with ``source``, that its protocol is the source's; with
    ``recompute``, that recomputing gives the same arrays. Returns an ``OK …`` line or raises one error line."""
    stats_file = read_statistics(path)
    lines = [f"OK {path}: {describe(stats_file.protocol)}, arrays and protocol key verified"]
    if source is not None:
        protocol, fresh, _ = compute(source) if recompute else (_expected_protocol(source), None, None)
        differences = protocol_differences(stats_file.protocol, dict(protocol))
        if differences:
            raise ReferenceStatsError(f"{path}: protocol differs from the expected one: {'; '.join(differences)}")
        lines.append("protocol equals the expected one")
        if fresh is not None:
            worst = _compare_arrays(Path(path), stats_file.stats, fresh)
            lines.append(f"recomputed: equal (max relative difference {worst:.1e})")
    return "; ".join(lines)


def _expected_protocol(source: StatsSource) -> EvalProtocol:
    datamodule = datamodule_of(source)
    extractor = build_extractor(source.extractor, **source.extractor_kwargs)
    return make_protocol(getattr(datamodule, "name", type(datamodule).__name__), source.split, source.n, extractor)


def list_files(paths: list[str]) -> list[dict[str, Any]]:
    """One row per stats file under ``paths`` (files or directories; default: the reference cache)."""
    roots = [Path(p) for p in paths] or [ReferenceCache().root]
    files = sorted({f for r in roots for f in ([r] if r.is_file() else sorted(r.glob("*.npz")))})
    rows = []
    for file in files:
        try:
            stats_file = read_statistics(file)
        except ReferenceStatsError as err:
            rows.append({"file": str(file), "error": str(err)})
            continue
        manifest, protocol = stats_file.manifest, stats_file.protocol
        rows.append(
            {
                "file": str(file),
                "protocol": describe(protocol),
                "arrays": ", ".join(sorted(stats_file.stats)),
                "size": f"{file.stat().st_size / 2**20:.1f} MiB",
                "created": manifest.get("created", "?"),
            }
        )
    return rows


def markdown_rows(rows: list[dict[str, Any]]) -> str:
    lines = ["| file | protocol | arrays | size | created |", "|---|---|---|---:|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['file']} | unreadable: {row['error']} | | | |")
        else:
            lines.append(f"| {row['file']} | {row['protocol']} | {row['arrays']} | {row['size']} | {row['created']} |")
    return "\n".join(lines)
