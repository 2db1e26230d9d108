"""The bad-input matrix: (case, argv builder, text the one-line error must contain), shared by
``tests/test_bad_inputs.py`` and ``benchmarks/bench_faults.py``.

Each builder gets a workspace folder holding factory MNIST under ``data/`` (``make_workspace``) and returns the
``lightning-gans`` argv; some also damage a file first.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from data_factories import write_binvox, write_mnist_idx, write_pix2pix, write_voxel_shapes, write_wiki_crop
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXP = REPO / "experiments"


def make_workspace(root: Path) -> Path:
    """Factory MNIST under ``root/data`` and the odd files the cases name."""
    write_mnist_idx(root / "data", n_train=64, n_test=32)
    (root / "random.ckpt").write_bytes(random.Random(0).randbytes(4096))
    (root / "notes.ckpt").write_text("this is a text file, not a checkpoint\n")
    torch.save({"weights": torch.zeros(3)}, root / "tensors.pt")
    cgan = {"state_dict": {}, "hyper_parameters": {"_class_path": "lightning_gans.models.CGAN"}}
    torch.save(cgan, root / "cgan.ckpt")
    data = (root / "tensors.pt").read_bytes()
    (root / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (root / "pictures").mkdir(exist_ok=True)
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 40 * i, dtype=np.uint8)).save(root / "pictures" / f"p{i}.png")
    return root


def _fit(config: str, *extra: str) -> Callable[[Path], list[str]]:
    return lambda ws: ["fit", "--config", str(EXP / config), "--trainer.max_steps=1", *extra]


def _damage_idx(how: str) -> Callable[[Path], list[str]]:
    def build(ws: Path) -> list[str]:
        path = ws / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 100] if how == "truncate" else b"\x00\x00\x09\x99" + data[4:])
        return _fit("dcgan_mnist.yaml")(ws)

    return build


def _voxels(kind: str, workers: int) -> Callable[[Path], list[str]]:
    """3D-GAN on damaged voxel files: every training ``.mat`` truncated (``kind="mat"``), or ``.binvox`` files
    whose ``dim`` line is not numbers; ``workers`` loader processes (a worker's error must stay one line too)."""

    def build(ws: Path) -> list[str]:
        folder = ws / "data" / f"voxels-{kind}"
        if kind == "mat":
            write_voxel_shapes(folder, train=4, test=2, categories=["airplane"])
            for path in (folder / "volumetric_data" / "airplane" / "30" / "train").glob("*.mat"):
                path.write_bytes(path.read_bytes()[:150])
        else:
            cube = np.zeros((32, 32, 32), dtype=bool)
            cube[8:24, 8:24, 8:24] = True
            for i in range(12):
                path = write_binvox(folder / "02691156" / f"m{i}" / "model.binvox", cube)
                path.write_bytes(path.read_bytes().replace(b"dim 32 32 32", b"dim 32 x 32"))
        config = ws / f"gan3d_{kind}.yaml"
        config.write_text(
            f"defaults: [{EXP / 'gan3d_shapes32.yaml'}]\n"
            f"data: {{init_args: {{folder: {folder}, batch_size: 2, num_workers: {workers}, format: {kind}}}}}\n"
            "trainer: {callbacks: {voxel_quality: {init_args: {num_samples: 2, at_start: false}}}}\n"
        )
        return ["fit", "--config", str(config), "--trainer.max_steps=1"]

    return build


def _wiki_truncated(ws: Path) -> list[str]:
    write_wiki_crop(ws / "data")
    mat = ws / "data" / "wiki_crop" / "wiki.mat"
    mat.write_bytes(mat.read_bytes()[:300])
    return _fit("age_cgan_wiki.yaml", "--data.download=false")(ws)


def _pix2pix_damaged(ws: Path) -> list[str]:
    """edges2handbags whose side-by-side JPGs are all cut short: the first is probed for the A|B layout."""
    write_pix2pix(ws / "data" / "edges2handbags", n_train=4, n_val=2)
    for path in (ws / "data" / "edges2handbags").rglob("*.jpg"):
        path.write_bytes(path.read_bytes()[:200])
    return _fit("discogan_edges2handbags.yaml", "--data.batch_size=2", "--data.num_workers=0")(ws)


def _with_ckpt(command: str, name: str, *extra: str) -> Callable[[Path], list[str]]:
    return lambda ws: [command, "--ckpt", str(ws / name), *[e.format(ws=ws) for e in extra]]


CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("fit: unknown loss", _fit("dcgan_mnist.yaml", "--model.loss=bogus"), "Unknown adversarial loss 'bogus'"),
    ("fit: option of another class", _fit("wgan_gp_mnist.yaml", "--model.n_critic=0"), "--model.n_critic"),
    ("fit: n_critic 0", _fit("wgan_gp_mnist.yaml", "--model.schedule.n_critic=0"), "n_critic must be >= 1"),
    ("fit: latent_dim not an int", _fit("dcgan_mnist.yaml", "--model.latent_dim=x"), "latent_dim"),
    ("fit: batch_size 0", _fit("dcgan_mnist.yaml", "--data.batch_size=0"), "batch_size must be an integer >= 1"),
    ("fit: num_workers -1", _fit("dcgan_mnist.yaml", "--data.num_workers=-1"), "num_workers must be"),
    ("fit: prefetch_factor 0", _fit("dcgan_mnist.yaml", "--data.prefetch_factor=0"), "prefetch_factor must be"),
    ("fit: max_steps not an int", _fit("dcgan_mnist.yaml", "--trainer.max_steps=abc"), "--trainer.max_steps"),
    ("fit: unknown trainer option", _fit("dcgan_mnist.yaml", "--trainer.max_stepz=3"), "max_stepz"),
    ("fit: gradient clipping", _fit("dcgan_mnist.yaml", "--trainer.gradient_clip_val=1"), "gradient_clip_val"),
    ("fit: missing config", lambda ws: ["fit", "--config", str(ws / "nope.yaml")], "nope.yaml"),
    ("fit: W&B mode bogus", _fit("dcgan_mnist.yaml", "--wandb.mode=bogus"), "--wandb.mode must be"),
    ("fit: W&B online, no key", _fit("dcgan_mnist.yaml", "--wandb.mode=online"), "WANDB_API_KEY"),
    (
        "fit: ckpt_path random bytes",
        lambda ws: _fit("dcgan_mnist.yaml", f"--ckpt_path={ws / 'random.ckpt'}")(ws),
        "random.ckpt is not a checkpoint",
    ),
    (
        "fit: ckpt_path of a CGAN",
        lambda ws: _fit("dcgan_mnist.yaml", f"--ckpt_path={ws / 'cgan.ckpt'}")(ws),
        "holds a CGAN model but --config builds a DCGAN",
    ),
    ("data: truncated MNIST IDX", _damage_idx("truncate"), "is truncated or damaged"),
    ("data: wrong IDX magic", _damage_idx("magic"), "is not an MNIST IDX image file"),
    ("data: truncated 3D ShapeNets .mat", _voxels("mat", workers=0), "not a readable .mat file"),
    ("data: truncated .mat, in a loader worker", _voxels("mat", workers=1), "not a readable .mat file"),
    ("data: binvox dim not numbers", _voxels("binvox", workers=0), "'dim 32 x 32' is not three integers"),
    ("data: truncated wiki.mat", _wiki_truncated, "wiki.mat is not the IMDB-WIKI metadata file"),
    ("data: side-by-side JPGs all damaged", _pix2pix_damaged, "consecutive unreadable images"),
    ("sample: random bytes", _with_ckpt("sample", "random.ckpt", "--out", "{ws}/s"), "is not a checkpoint"),
    ("sample: text file", _with_ckpt("sample", "notes.ckpt", "--out", "{ws}/s"), "notes.ckpt is not a checkpoint"),
    ("sample: truncated", _with_ckpt("sample", "truncated.ckpt", "--out", "{ws}/s"), "truncated.ckpt is not a"),
    (
        "sample: torch file, no state_dict",
        _with_ckpt("sample", "tensors.pt", "--out", "{ws}/s"),
        "not a Lightning checkpoint",
    ),
    ("sample: missing file", _with_ckpt("sample", "absent.ckpt", "--out", "{ws}/s"), "does not exist"),
    ("eval: text file", _with_ckpt("eval", "notes.ckpt"), "is not a checkpoint"),
    ("interpolate: random bytes", _with_ckpt("interpolate", "random.ckpt", "--out", "{ws}/i"), "is not a checkpoint"),
    (
        "translate: text file",
        _with_ckpt("translate", "notes.ckpt", "--input", "{ws}/pictures", "--direction", "AtoB", "--out", "{ws}/t"),
        "is not a checkpoint",
    ),  # fmt: skip
    (
        "upscale: random bytes",
        _with_ckpt("upscale", "random.ckpt", "--input", "{ws}/pictures", "--out", "{ws}/u"),
        "is not a checkpoint",
    ),
    (
        "age: truncated",
        _with_ckpt("age", "truncated.ckpt", "--input", "{ws}/pictures", "--out", "{ws}/a.png"),
        "is not a checkpoint",
    ),
    (
        "stats: --n 1",
        lambda ws: [
            "stats",
            "compute",
            "--config",
            str(EXP / "dcgan_mnist.yaml"),
            "--n",
            "1",
            "--out",
            str(ws / "s.npz"),
        ],
        "--n >= 2",
    ),  # fmt: skip
    ("stats verify: not a stats file", lambda ws: ["stats", "verify", str(ws / "notes.ckpt")], "unreadable"),
    (
        "prepare cache: in-memory data",
        lambda ws: ["prepare", "cache", "--config", str(EXP / "dcgan_mnist.yaml")],
        "has no decoded cache",
    ),
]


def environment(ws: Path) -> dict[str, str]:
    """The environment the cases run in: factory data, offline W&B, no W&B credentials, runs under ``ws``."""
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "LIGHTNING_GANS_DEBUG")}
    empty_netrc = ws / "netrc"
    empty_netrc.write_text("")
    return {**env, "LIGHTNING_GANS_DATA": str(ws / "data"), "WANDB_MODE": "offline", "NETRC": str(empty_netrc),
            "LIGHTNING_GANS_RUNS": str(ws / "runs"), "LIGHTNING_GANS_CACHE": str(ws / "cache")}  # fmt: skip
