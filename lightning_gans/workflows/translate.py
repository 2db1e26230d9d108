"""Translate images with a trained translation model (``lightning-gans translate``; CycleGAN, DiscoGAN).

    lightning-gans translate --ckpt runs/cyclegan_horse2zebra/<run>/checkpoints/last.ckpt \\
        --input data/horse2zebra/testA --direction AtoB --out zebras [--side_by_side]
    lightning-gans translate --ckpt … --input data/mnist_edges/val --half A --direction AtoB --out digits

The checkpoint is rebuilt as the model class it names (the ``_class_path`` LightningCLI saves, as ``sample``
does), which must have a ``translate(images, direction)`` method. Inputs — one image, or every image directly in
a folder (sorted by name) — get exactly the translation datamodules' test transform: resize to the model's
``image_size``² (its ``image_size`` hyperparameter, else the training datamodule's; ``--image_size`` overrides) with
the datamodule's ``interpolation`` (bicubic by default), then [-1, 1]. ``--half A|B`` first takes the left/right
half of pix2pix side-by-side JPGs. Images are translated in batches of ``--batch_size`` and each output keeps its
input's name with ``--format``'s extension (``00042_7.jpg`` → ``OUT/00042_7.png``); ``--side_by_side`` also writes
``OUT/side_by_side/<name>``: the model's input | its output. Unreadable inputs are skipped and named.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from PIL import Image
from torchvision import tv_tensors

from datamodules._images import DECODE_ERRORS, IMAGE_EXTENSIONS, describe_files, read_rgb
from datamodules._translation import Half, list_images, translation_transform
from lightning_gans.checkpoints import model_class_path, read_checkpoint
from lightning_gans.outputs import to_uint8

DIRECTIONS = ("AtoB", "BtoA")
FORMATS = ("png", "jpg")


def load_translator(ckpt: str | Path) -> tuple[pl.LightningModule, dict[str, Any]]:
    """(the model in eval mode, the checkpoint's datamodule hyperparameters) for a ``lightning-gans fit`` checkpoint
    whose model class has ``translate``."""
    path = Path(ckpt)
    checkpoint = read_checkpoint(path)
    class_path = model_class_path(checkpoint)
    if class_path is None:
        raise ValueError(f"{path} does not name its model class (_class_path): was it written by `lightning-gans fit`?")
    import lightning_gans.models  # noqa: F401 - registers every model class

    module_name, name = class_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), name, None)
    if not (
        isinstance(cls, type) and issubclass(cls, pl.LightningModule) and callable(getattr(cls, "translate", None))
    ):
        raise ValueError(
            f"{path} holds a {class_path} model, which cannot translate images (no translate(images, direction)); "
            "use a CycleGAN or DiscoGAN checkpoint"
        )
    model = cls.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    return model.eval(), dict(checkpoint.get("datamodule_hyper_parameters") or {})


def input_files(source: Path) -> list[Path]:
    """``source`` itself (one image) or the images directly in the folder ``source``, sorted by name."""
    if source.is_file():
        if source.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ValueError(f"--input {source} is not an image ({', '.join(IMAGE_EXTENSIONS)})")
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"--input {source} does not exist")
    files = list_images(source)
    if not files:
        raise FileNotFoundError(f"--input {source} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def model_image_size(model: pl.LightningModule, data_hparams: dict[str, Any], override: int | None) -> int:
    """``override``, else the model's ``image_size`` hyperparameter, else the training datamodule's."""
    for size in (override, model.hparams.get("image_size"), data_hparams.get("image_size")):
        if size is not None:
            if int(size) < 1:
                raise ValueError(f"image size must be >= 1, got {size}")
            return int(size)
    raise ValueError("the checkpoint records no image_size (model or datamodule): pass --image_size")


def _save(image: torch.Tensor, path: Path) -> None:
    """A [-1, 1] 3×H×W image as PNG/JPG (JPG quality 95, as the datasets' JPGs)."""
    array = to_uint8(image[None])[0].permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))


def translate_images(
    ckpt: str | Path,
    source: str | Path,
    direction: str,
    out: str | Path,
    batch_size: int = 16,
    side_by_side: bool = False,
    half: str | None = None,
    image_size: int | None = None,
    image_format: str = "png",
    device: str = "cpu",
) -> dict[str, list[str]]:
    """Translate every input (see the module docstring); returns ``{"written": [paths], "unreadable": [names]}``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"--direction must be AtoB or BtoA, got {direction!r}")
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
    if image_format not in FORMATS:
        raise ValueError(f"--format must be png or jpg, got {image_format!r}")
    files = input_files(Path(source))
    model, data_hparams = load_translator(ckpt)
    model.to(device)
    size = model_image_size(model, data_hparams, image_size)
    transform = translation_transform(size, None, False, data_hparams.get("interpolation") or "bicubic")
    crop = Half(half) if half else None
    out_dir = Path(out)
    (out_dir / "side_by_side" if side_by_side else out_dir).mkdir(parents=True, exist_ok=True)
    written, unreadable = [], []
    for start in range(0, len(files), batch_size):
        batch, names = [], []
        for path in files[start : start + batch_size]:
            try:
                image = read_rgb(path)
            except DECODE_ERRORS:
                unreadable.append(path.name)
                continue
            batch.append(transform(tv_tensors.Image(crop(image) if crop else image)).as_subclass(torch.Tensor))
            names.append(f"{path.stem}.{image_format}")
        if not batch:
            continue
        inputs = torch.stack(batch).to(device)
        with torch.no_grad():
            outputs = model.translate(inputs, direction)
        if not isinstance(outputs, torch.Tensor) or outputs.shape[0] != inputs.shape[0] or outputs.dim() != 4:
            shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
            raise ValueError(f"{type(model).__name__}.translate returned {shape} for {tuple(inputs.shape)} inputs")
        for name, image, result in zip(names, inputs.cpu(), outputs.cpu(), strict=True):
            _save(result, out_dir / name)
            written.append(str(out_dir / name))
            if side_by_side:
                if result.shape[-2] != image.shape[-2]:
                    result = torch.nn.functional.interpolate(result[None], size=image.shape[-2:], mode="bilinear")[0]
                _save(torch.cat([image, result.expand_as(image)], dim=-1), out_dir / "side_by_side" / name)
    if not written:
        raise ValueError(f"none of the {len(files)} inputs could be read: {describe_files(unreadable)}")
    return {"written": written, "unreadable": unreadable}
