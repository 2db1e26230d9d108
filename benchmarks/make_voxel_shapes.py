"""A procedurally generated voxel shape set in the 3D ShapeNets layout, for CPU-sized 3D-GAN runs and tests.

Writes ``OUT/volumetric_data/<category>/30/{train,test}/<category>_<NNNNN>.mat`` — real MATLAB files written with
``scipy.io.savemat`` holding a 30³ uint8 occupancy grid under the ``instance`` key, exactly what
``datamodules.shapenet.ShapeNetVoxelsDataModule`` reads from ``3DShapeNetsCode.zip`` (``--data.folder=OUT``).
Categories (z is up): ``box`` (random extents), ``sphere``, ``cylinder`` (upright), ``chair`` (a seat, four
legs and a backrest, all boxes) and ``airplane`` (fuselage, wings and a tail fin, all boxes). Sizes and positions
are drawn from ``numpy.random.default_rng(seed)``, so a seed fixes the whole set::

    .venv/bin/python benchmarks/make_voxel_shapes.py OUT [--train 200] [--test 50] [--seed 0]
        [--categories box,sphere,cylinder,chair,airplane]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

SIDE = 30  # the 3D ShapeNets grid
Grid = tuple[np.ndarray, np.ndarray, np.ndarray]


def _grid() -> Grid:
    return tuple(np.indices((SIDE, SIDE, SIDE)))  # type: ignore[return-value]


def _box(lo: tuple[int, int, int], hi: tuple[int, int, int]) -> np.ndarray:
    """A solid box covering voxels lo[i] ≤ index < hi[i] (clipped to the grid)."""
    volume = np.zeros((SIDE,) * 3, dtype=bool)
    sl = tuple(slice(max(0, a), min(SIDE, b)) for a, b in zip(lo, hi))
    volume[sl] = True
    return volume


def box(rng: np.random.Generator) -> np.ndarray:
    half = rng.integers(3, 12, size=3)
    centre = SIDE // 2 + rng.integers(-2, 3, size=3)
    return _box(tuple(centre - half), tuple(centre + half))


def sphere(rng: np.random.Generator) -> np.ndarray:
    x, y, z = _grid()
    radius = rng.uniform(5, 13)
    cx, cy, cz = SIDE / 2 - 0.5 + rng.uniform(-2, 2, size=3)
    return (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius**2


def cylinder(rng: np.random.Generator) -> np.ndarray:
    x, y, z = _grid()
    radius, height = rng.uniform(4, 10), int(rng.integers(8, 27))
    cx, cy = SIDE / 2 - 0.5 + rng.uniform(-2, 2, size=2)
    bottom = int(rng.integers(1, SIDE - height))
    return ((x - cx) ** 2 + (y - cy) ** 2 <= radius**2) & (z >= bottom) & (z < bottom + height)


def chair(rng: np.random.Generator) -> np.ndarray:
    """A seat slab on four legs with a backrest along one edge (z up)."""
    width, depth = int(rng.integers(12, 22)), int(rng.integers(12, 20))
    leg_height, leg = int(rng.integers(7, 12)), int(rng.integers(2, 4))
    seat, back_height = int(rng.integers(2, 4)), int(rng.integers(8, 14))
    x0, y0, z0 = (SIDE - width) // 2, (SIDE - depth) // 2, 1
    volume = _box((x0, y0, z0 + leg_height), (x0 + width, y0 + depth, z0 + leg_height + seat))
    for dx in (0, width - leg):
        for dy in (0, depth - leg):
            volume |= _box((x0 + dx, y0 + dy, z0), (x0 + dx + leg, y0 + dy + leg, z0 + leg_height))
    top = z0 + leg_height + seat
    volume |= _box((x0, y0, top), (x0 + width, y0 + 2, min(SIDE - 1, top + back_height)))
    return volume


def airplane(rng: np.random.Generator) -> np.ndarray:
    """A fuselage along x, wings along y at mid-length, a tail fin up at the back (z up)."""
    length, body = int(rng.integers(20, 28)), int(rng.integers(3, 5))
    span, chord = int(rng.integers(16, 28)), int(rng.integers(4, 7))
    fin, tail = int(rng.integers(4, 8)), int(rng.integers(3, 5))
    x0, c = (SIDE - length) // 2, SIDE // 2
    z0 = c - body // 2
    volume = _box((x0, c - body // 2, z0), (x0 + length, c - body // 2 + body, z0 + body))
    wing_x = x0 + length // 2 - chord // 2 + int(rng.integers(-2, 3))
    volume |= _box((wing_x, c - span // 2, z0 + body // 2), (wing_x + chord, c + span // 2, z0 + body // 2 + 1))
    volume |= _box((x0, c - 1, z0 + body), (x0 + tail, c + 1, z0 + body + fin))
    volume |= _box((x0, c - span // 4, z0 + body - 1), (x0 + tail, c + span // 4, z0 + body))
    return volume


CATEGORIES: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "box": box,
    "sphere": sphere,
    "cylinder": cylinder,
    "chair": chair,
    "airplane": airplane,
}


def write_voxel_shapes(
    out: Path, train: int = 200, test: int = 50, seed: int = 0, categories: list[str] | None = None
) -> Path:
    """Write ``train`` + ``test`` shapes per category as 3D ShapeNets ``.mat`` files; returns ``out``."""
    from scipy.io import savemat

    chosen = categories or list(CATEGORIES)
    unknown = sorted(set(chosen) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"unknown categories {unknown}; choose from {list(CATEGORIES)}")
    rng = np.random.default_rng(seed)
    for category in chosen:
        for split, count in (("train", train), ("test", test)):
            folder = Path(out) / "volumetric_data" / category / "30" / split
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                instance = CATEGORIES[category](rng).astype(np.uint8)
                savemat(folder / f"{category}_{i:05d}.mat", {"instance": instance}, do_compression=True)
    return Path(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder (use it as --data.folder)")
    parser.add_argument("--train", type=int, default=200, help="training shapes per category")
    parser.add_argument("--test", type=int, default=50, help="test shapes per category")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--categories", default=",".join(CATEGORIES), help="comma-separated subset")
    args = parser.parse_args()
    write_voxel_shapes(args.out, args.train, args.test, args.seed, args.categories.split(","))
    total = (args.train + args.test) * len(args.categories.split(","))
    print(f"wrote {total} shapes (30³ .mat, key 'instance') under {args.out}/volumetric_data/")


if __name__ == "__main__":
    main()
