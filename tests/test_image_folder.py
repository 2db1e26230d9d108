"""ImageFolderDataModule (recursive, mixed formats, unreadable files) and `lightning-gans prepare anime-faces`."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from data_factories import write_image_folder
from PIL import Image

from datamodules._paths import DatasetNotFoundError
from datamodules.image_folder import ImageFolderDataModule
from lightning_gans.cli import main
from lightning_gans.workflows import prepare


def test_recursive_mixed_formats(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "faces", n=8)  # 64×72 pictures: png/jpg/bmp/webp in two subfolders
    (tmp_path / "faces" / "notes.txt").write_text("not an image")
    dm = ImageFolderDataModule(folder="faces", data_dir=str(tmp_path), image_size=64, batch_size=8)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (8, 3, 64, 64) and batch.dtype == torch.float32  # 64×72 → centre 64×64
    assert -1.0 <= batch.min() < -0.9 and 0.9 < batch.max() <= 1.0
    assert {p.suffix for p in dm.real_images("train")[0].dataset.files} == {".png", ".jpg", ".bmp", ".webp"}
    assert dm.name == "faces"
    with pytest.raises(ValueError, match="one split, 'train'"):
        dm.real_images("test")


def test_corrupt_files_reported_once_and_skipped(tmp_path: Path) -> None:
    write_image_folder(tmp_path, n=4)
    (tmp_path / "part0" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "zero.jpg").write_bytes(b"")
    dm = ImageFolderDataModule(folder=str(tmp_path), batch_size=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "skipped 2 files (part0/broken.png, zero.jpg)" in messages[0]
    assert dm.skipped == ["part0/broken.png", "zero.jpg"]
    assert len(dm.real_images()[0]) == 4
    assert next(iter(dm.train_dataloader())).shape == (4, 3, 64, 64)


def test_truncated_file_replaced_lazily(tmp_path: Path) -> None:
    """A truncated JPEG passes PIL's verify() but fails to decode: the next image takes its place."""
    write_image_folder(tmp_path, n=4)
    jpg = tmp_path / "part1" / "face001.jpg"
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    dm = ImageFolderDataModule(folder=str(tmp_path), batch_size=4, shuffle=False, num_workers=0)  # warnings from here
    dm.setup("fit")
    files = [p.name for p in dm.real_images()[0].dataset.files]
    assert files == ["face000.png", "face002.bmp", "face001.jpg", "face003.webp"]  # part0/…, part1/…
    with pytest.warns(UserWarning, match="unreadable image part1/face001.jpg"):
        batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (4, 3, 64, 64)
    assert torch.equal(batch[2], batch[3])  # item 2 (truncated) → item 3
    assert dm.real_images()[0].dataset.skipped == ["part1/face001.jpg"]


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="no image files in .*empty.*prepare anime-faces"):
        ImageFolderDataModule(folder="empty", data_dir=str(tmp_path)).prepare_data()
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        ImageFolderDataModule(folder="nowhere", data_dir=str(tmp_path)).setup("fit")
    (tmp_path / "empty" / "bad.png").write_bytes(b"junk")
    with pytest.raises(DatasetNotFoundError, match="none of the image files"), pytest.warns(UserWarning):
        ImageFolderDataModule(folder="empty", data_dir=str(tmp_path)).setup("fit")


# ---------------------------------------------------------------------------------------- prepare anime-faces
def _face(x: int, y: int, width: int, height: int) -> SimpleNamespace:
    return SimpleNamespace(face=SimpleNamespace(pos=SimpleNamespace(x=x, y=y, width=width, height=height)))


def test_prepare_anime_faces_with_fake_detector(tmp_path: Path, monkeypatch, capsys) -> None:
    """Two pictures with the same stem in different folders (unique outputs), one without a face, one unreadable;
    the crop is the first face's box (a red 40×30 rectangle at (10, 20) → a pure red 64×64 PNG)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    for sub in ("a", "b"):
        picture = np.zeros((90, 120, 3), dtype=np.uint8)
        picture[..., 2] = 255
        picture[20:50, 10:50] = (255, 0, 0)
        (src / sub).mkdir(parents=True)
        Image.fromarray(picture).save(src / sub / "pic.png")
    Image.new("RGB", (50, 50)).save(src / "b" / "noface.png")
    (src / "b" / "junk.jpg").write_bytes(b"junk")

    def fake_detect(image: Image.Image) -> list:
        assert image.mode == "RGB"
        return [] if image.size == (50, 50) else [_face(10, 20, 40, 30), _face(0, 0, 5, 5)]

    monkeypatch.setattr(prepare, "load_animeface_detector", lambda: fake_detect)
    main(["prepare", "anime-faces", str(src), str(dst)])
    out = capsys.readouterr().out
    assert "wrote 2 face crops (64×64 PNG)" in out
    assert "skipped 1 file (b/noface.png): no face detected" in out
    assert "skipped 1 file (b/junk.jpg): unreadable" in out
    written = sorted(p.name for p in dst.iterdir())
    assert written == ["000000_pic.png", "000003_pic.png"]  # numbered in sorted source order
    crop = np.asarray(Image.open(dst / written[0]))
    assert crop.shape == (64, 64, 3) and np.abs(crop.astype(int) - (255, 0, 0)).max() <= 2


def test_prepare_without_animeface(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "src").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "src" / "x.png")
    monkeypatch.setitem(sys.modules, "animeface", None)  # import animeface → ImportError
    with pytest.raises(SystemExit) as info:
        main(["prepare", "anime-faces", str(tmp_path / "src"), str(tmp_path / "dst")])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "pip install animeface" in err and "Traceback" not in err
    assert not (tmp_path / "dst").exists()
