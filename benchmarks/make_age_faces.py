"""Synthetic face-like pictures whose features depend on the age bin, written as a real ``wiki_crop`` layout.

Every picture is one "person" (random skin tone, face width, eye spacing, hair length, background) at one age
bin b ∈ 0..5 (0-18 … 60+). Only three features depend on b — what Age-cGAN must learn to change with the label:

* hair colour: dark brown at b = 0 → grey-white at b = 5 (linear in b, plus per-person jitter of ±12 levels);
* wrinkles: b dark horizontal lines on the forehead;
* skin: the face darkens by 6·b levels (per-person tone varies by ±25, so the bins overlap in skin).

Output (``OUT/wiki_crop/``): ``wiki.mat`` in the IMDB-WIKI struct layout (``datamodules.wiki_faces.write_metadata``;
dates of birth and photo years giving an age inside bin b) and 64×64 JPGs in ``00/`` … ``99/``. ``--invalid``
extra entries with impossible ages (0 or 120) exercise the datamodule's dropping. Train on it with
``--data.data_dir=OUT`` (``experiments/age_cgan_synthetic.yaml``)::

    .venv/bin/python benchmarks/make_age_faces.py --out data/age_faces [--per-bin 1000] [--size 64] [--seed 0]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.wiki_faces import AGE_BIN_UPPER, matlab_datenum, write_metadata

BIN_LOWER = (1, 19, 30, 40, 50, 60)
BIN_UPPER = (*AGE_BIN_UPPER, 90)
PHOTO_YEAR = 2010


@dataclass(frozen=True)
class Person:
    """The age-independent features of one synthetic person (what an identity network should recognise)."""

    background: tuple[float, float, float]
    centre_x: float
    half_width: float
    half_height: float
    hair_length: float
    hair_jitter: float
    skin_jitter: float
    eye_spacing: float
    mouth_width: float


def random_background(rng: np.random.Generator) -> tuple[float, float, float]:
    """A uniform random RGB backdrop (levels 20–200)."""
    return tuple(float(v) for v in rng.uniform(20, 200, 3))


def random_person(rng: np.random.Generator) -> Person:
    """A random person (the draws, in this order, of the original one-picture-per-person faces)."""
    background = random_background(rng)
    centre_x = 0.5 + rng.uniform(-0.04, 0.04)
    half_width, half_height = rng.uniform(0.24, 0.32), rng.uniform(0.32, 0.37)
    hair_length, hair_jitter, skin_jitter = rng.uniform(0.05, 0.2), rng.uniform(-12, 12), rng.uniform(-25, 25)
    eye_spacing, mouth_width = rng.uniform(0.09, 0.13), rng.uniform(0.06, 0.1)
    return Person(background, centre_x, half_width, half_height, hair_length, hair_jitter, skin_jitter, eye_spacing,
                  mouth_width)  # fmt: skip


def render_face(person: Person, age_bin: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """``person`` at ``age_bin`` as an H×W×3 uint8 picture; ``rng`` only adds the pixel noise (σ = 4 levels)."""
    t = age_bin / 5.0
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size  # [0, 1) coordinates
    image = np.empty((size, size, 3), dtype=np.float32)
    image[:] = person.background
    cx, cy, half_w, half_h = person.centre_x, 0.55, person.half_width, person.half_height
    face = ((xx - cx) / half_w) ** 2 + ((yy - cy) / half_h) ** 2 <= 1.0
    # hair: a cap above the face's upper part, length per person
    hair = (((xx - cx) / (half_w + 0.05)) ** 2 + ((yy - cy) / (half_h + 0.06)) ** 2 <= 1.0) & (
        yy < cy - half_h + 0.18 + person.hair_length
    )
    hair_colour = (1 - t) * np.array([70, 45, 25]) + t * np.array([215, 215, 210]) + person.hair_jitter
    image[hair & ~face] = hair_colour
    image[hair & face & (yy < cy - half_h + 0.12)] = hair_colour  # fringe
    skin = np.array([225, 180, 150]) + person.skin_jitter - 6 * age_bin
    skin_mask = face & ~(hair & (yy < cy - half_h + 0.12))
    image[skin_mask] = skin
    # wrinkles: age_bin lines on the forehead
    top = cy - half_h + 0.13
    for k in range(age_bin):
        row = top + 0.045 * k
        line = skin_mask & (np.abs(yy - row) < 0.8 / size) & (np.abs(xx - cx) < half_w * 0.6)
        image[line] = skin * 0.55
    # eyes and mouth
    for ex in (cx - person.eye_spacing, cx + person.eye_spacing):
        image[((xx - ex) / 0.035) ** 2 + ((yy - (cy + 0.02)) / 0.02) ** 2 <= 1.0] = (30, 30, 40)
    mouth = (np.abs(yy - (cy + 0.2)) < 0.015) & (np.abs(xx - cx) < person.mouth_width)
    image[mouth] = (150, 60, 60)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def draw_face(age_bin: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One H×W×3 uint8 face-like picture of a random person at ``age_bin`` (see the module docstring)."""
    return render_face(random_person(rng), age_bin, rng, size)


def identity_faces(persons: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``persons`` random people (seeded; other seeds than the data set's give other people), each drawn at all
    six age bins: (images P·6×H×W×3 uint8, person ids, age bins), for training and testing an identity network.
    Every picture gets a new random background (photos of one person in different places), so that a person is
    recognised by the face and hair, not by the backdrop."""
    rng = np.random.default_rng(seed)
    people = [random_person(rng) for _ in range(persons)]
    images = np.stack(
        [
            render_face(replace(person, background=random_background(rng)), age_bin, rng, size)
            for person in people
            for age_bin in range(6)
        ]
    )
    return images, np.repeat(np.arange(persons), 6), np.tile(np.arange(6), persons)


def make_age_faces(out: Path, per_bin: int = 1000, size: int = 64, invalid: int = 20, seed: int = 0) -> Path:
    """Write ``out/wiki_crop/`` (``wiki.mat`` + JPGs): ``per_bin`` faces per age bin plus ``invalid`` bad ages."""
    rng = np.random.default_rng(seed)
    folder = Path(out) / "wiki_crop"
    bins = np.repeat(np.arange(6), per_bin)
    rng.shuffle(bins)
    paths, dobs, taken = [], [], []
    for index, age_bin in enumerate(bins):
        age = int(rng.integers(BIN_LOWER[age_bin], BIN_UPPER[age_bin] + 1))
        month, day = int(rng.integers(1, 7)), int(rng.integers(1, 29))  # born before July: age = year difference
        born = PHOTO_YEAR - age
        path = f"{index % 100:02d}/{index}_{born}-{month:02d}-{day:02d}_{PHOTO_YEAR}.jpg"
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(draw_face(int(age_bin), rng, size)).save(folder / path, quality=95)
        paths.append(path)
        dobs.append(matlab_datenum(born, month, day))
        taken.append(PHOTO_YEAR)
    for k in range(invalid):  # dropped by the datamodule: age 0 or 120
        age = 0 if k % 2 == 0 else 120
        paths.append(f"00/invalid{k}_{PHOTO_YEAR - age}-01-01_{PHOTO_YEAR}.jpg")
        dobs.append(matlab_datenum(PHOTO_YEAR - age, 1, 1))
        taken.append(PHOTO_YEAR)
    write_metadata(folder / "wiki.mat", "wiki", paths, dobs, taken)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="data root to write wiki_crop/ into")
    parser.add_argument("--per-bin", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--invalid", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = make_age_faces(args.out, args.per_bin, args.size, args.invalid, args.seed)
    print(f"wrote {6 * args.per_bin} faces (+{args.invalid} invalid entries) to {folder}")


if __name__ == "__main__":
    main()
