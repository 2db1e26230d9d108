"""``lightning-gans prepare``: turn downloaded pictures into a training folder.

    lightning-gans prepare anime-faces SRC DST [--size 64]
    lightning-gans prepare pix2pix-split SRC DST

``anime-faces`` is the crop step of *GAN Projects* ch. 4 (reference: gan-projects-and-dcgan.md §5): for every
picture under SRC (recursive), detect faces with ``animeface.detect`` (``pip install animeface``), crop the
*first* face's box ``(x, y, x + width, y + height)``, resize to 64×64 with Lanczos (the seed's
``Image.ANTIALIAS``) and save a PNG in DST. Pictures without a face are skipped, unreadable ones are counted and
named. The seed wrote every face to one fixed file name; here each output is named
``<running number>_<source stem>.png`` (unique, in sorted source order). Train on DST with
``experiments/dcgan_anime.yaml`` (``--data.folder=DST``).

``pix2pix-split`` is the DiscoGAN chapter's ``image_split.py`` (reference: translation-discogan-cyclegan.md §1.1):
every side-by-side JPG of ``SRC/train`` (and ``SRC/val``) is cut at half width into ``DST/trainA`` (left half) and
``DST/trainB`` (right half) (``testA``/``testB`` from ``val``), same file name in both, JPEG quality 95 — the
CycleGAN folder layout of ``datamodules.unpaired``. **Book bug fixed:** the chapter's script saves the A half into
``trainB`` too, so both domains hold sketches; here ``trainB`` gets the B half. (``datamodules.paired`` reads the
side-by-side files directly — ``mode: unpaired`` is DiscoGAN's unpaired training without this step.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from datamodules._images import DECODE_ERRORS, describe_files, read_rgb
from datamodules.image_folder import find_images
from lightning_gans.errors import MissingPackageError  # noqa: F401 - re-exported (old import path)

Detector = Callable[[Image.Image], list[Any]]
ANIMEFACE_MISSING = (
    "the anime-faces crop step needs the animeface package (a face detector): pip install animeface "
    "(into this environment: .venv/bin/pip install animeface). It is not a dependency of lightning-gans."
)


def load_animeface_detector() -> Detector:
    """``animeface.detect`` (faces sorted by the detector; each has ``.face.pos`` with x, y, width, height)."""
    try:
        import animeface
    except ImportError:
        raise MissingPackageError(ANIMEFACE_MISSING) from None
    return animeface.detect


def first_face_box(faces: list[Any]) -> tuple[int, int, int, int] | None:
    """The seed's crop box of the first detected face, PIL (left, upper, right, lower); None without faces."""
    if not faces:
        return None
    pos = faces[0].face.pos
    return (int(pos.x), int(pos.y), int(pos.x + pos.width), int(pos.y + pos.height))


def crop_anime_faces(
    src: Path, dst: Path, size: int = 64, detector: Detector | None = None
) -> dict[str, list[str] | int]:
    """Crop the first face of every picture under ``src`` into ``dst`` (see the module docstring).

    Returns ``{"saved": n, "no_face": [names], "unreadable": [names]}``.
    """
    detect = detector or load_animeface_detector()
    sources = find_images(src)
    if not sources:
        raise FileNotFoundError(f"no pictures (.jpg/.jpeg/.png/.bmp/.webp) under {src}")
    dst.mkdir(parents=True, exist_ok=True)
    saved, no_face, unreadable = 0, [], []
    for number, path in enumerate(sources):
        name = str(path.relative_to(src))
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except DECODE_ERRORS:
            unreadable.append(name)
            continue
        box = first_face_box(detect(image))
        if box is None:
            no_face.append(name)
            continue
        face = image.crop(box).resize((size, size), Image.Resampling.LANCZOS)
        face.save(dst / f"{number:06d}_{path.stem}.png")
        saved += 1
    return {"saved": saved, "no_face": no_face, "unreadable": unreadable}


def split_pix2pix(src: Path, dst: Path, quality: int = 95) -> dict[str, int]:
    """Cut every side-by-side image of ``src/train`` and ``src/val`` into ``dst/{train,test}{A,B}`` (see the module
    docstring); returns ``{"trainA": n, "trainB": n, ...}``. Unreadable files are named in one error."""
    from datamodules._translation import Half, list_images

    counts: dict[str, int] = {}
    splits = [(name, out) for name, out in (("train", "train"), ("val", "test")) if (src / name).is_dir()]
    if not splits or not list_images(src / splits[0][0]):
        raise FileNotFoundError(f"no side-by-side images in {src}/train (the pix2pix layout: train/*.jpg, val/*.jpg)")
    unreadable = []
    for name, out in splits:
        for path in list_images(src / name):
            try:
                image = read_rgb(path)
            except DECODE_ERRORS:
                unreadable.append(f"{name}/{path.name}")
                continue
            for domain in ("A", "B"):  # the chapter wrote the A half into trainB as well (its bug)
                folder = dst / f"{out}{domain}"
                folder.mkdir(parents=True, exist_ok=True)
                half = Half(domain)(image).permute(1, 2, 0).numpy()
                Image.fromarray(half).save(folder / f"{path.stem}.jpg", quality=quality)
                counts[f"{out}{domain}"] = counts.get(f"{out}{domain}", 0) + 1
    if unreadable:
        raise FileNotFoundError(f"{describe_files(unreadable)} in {src} are not readable images: re-extract them")
    return counts
