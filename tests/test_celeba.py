"""CelebADataModule on generated files in both layouts (tests/data_factories.py writes real-format JPGs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from data_factories import face_image, write_celeba, write_jpg

from datamodules._paths import DatasetNotFoundError
from datamodules.celeba import CelebADataModule, read_partition

SEED_BOX = [25, 65, 153, 193]


def _uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] C×H×W → H×W×C uint8 values (as floats), the inverse of the datamodule's scaling."""
    return ((images + 1) * 127.5).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("layout", ["torchvision", "kaggle"])
def test_official_split_from_partition_file(layout: str, tmp_path: Path) -> None:
    write_celeba(tmp_path, layout, splits=(5, 3, 2))
    dm = CelebADataModule(data_dir=str(tmp_path), batch_size=4, download=False)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.found_layout() == layout
    assert dm.split_sizes() == {"train": 5, "valid": 3, "test": 2}
    # Partition 1 is 000006.jpg–000008.jpg in the factory.
    assert [p.name for p in dm.real_images("valid")[0].dataset.files] == ["000006.jpg", "000007.jpg", "000008.jpg"]
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (4, 3, 64, 64) and batch.dtype == torch.float32
    assert batch.min() >= -1.0 and batch.max() <= 1.0 and batch.max() > 0.9  # red 255 → 1


def test_kaggle_csv_header_and_txt_parse(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("image_id,partition\n000001.jpg,0\n000002.jpg,2\n")
    (tmp_path / "p.txt").write_text("000001.jpg 0\n000002.jpg 1\n")
    assert read_partition(tmp_path / "p.csv") == {"000001.jpg": 0, "000002.jpg": 2}
    assert read_partition(tmp_path / "p.txt") == {"000001.jpg": 0, "000002.jpg": 1}
    (tmp_path / "bad.txt").write_text("000001.jpg 0\n000002.jpg 7\n")
    with pytest.raises(ValueError, match="line 2 is '000002.jpg 7'"):
        read_partition(tmp_path / "bad.txt")


def test_without_partition_file_official_split_by_number(tmp_path: Path) -> None:
    folder = tmp_path / "celeba-dataset" / "img_align_celeba" / "img_align_celeba"
    for number in (1, 162770, 162771, 182637, 182638, 202599):
        write_jpg(folder / f"{number:06d}.jpg", face_image(number))
    dm = CelebADataModule(data_dir=str(tmp_path), download=False)
    with pytest.warns(UserWarning, match="official split by file number"):
        dm.setup("fit")
    assert dm.split_sizes() == {"train": 2, "valid": 2, "test": 2}


def test_seed_crop_box_is_pil_left_upper_right_lower(tmp_path: Path) -> None:
    """The factory paints the box (25, 65)–(153, 193) red with a 16×16 green corner: the 128×128 crop is exactly
    that square (a box read as (upper, left, …) or off by a few pixels would show blue or move the marker)."""
    write_celeba(tmp_path, "torchvision", splits=(2, 1, 1))
    dm = CelebADataModule(data_dir=str(tmp_path), image_size=128, crop_box=SEED_BOX, download=False)
    image = _uint8(dm.real_images("train")[0][0])
    assert image.shape == (128, 128, 3)
    green, red = image[:16, :16], image.copy()
    red[:16, :16] = (255, 0, 0)
    assert np.abs(green - (0, 255, 0)).max() < 12
    assert np.abs(red - (255, 0, 0)).max() < 12  # no blue background anywhere: the box is exact
    # Resized to 64: the marker shrinks to the top-left 8×8.
    small = _uint8(CelebADataModule(data_dir=str(tmp_path), crop_box=SEED_BOX).real_images("train")[0][0])
    assert small.shape == (64, 64, 3) and np.abs(small[2:6, 2:6] - (0, 255, 0)).max() < 12


def test_center_crop_178(tmp_path: Path) -> None:
    """Centre 178² of a 178×218 image keeps rows 20–197: the red square (rows 65–192) starts at row 45."""
    write_celeba(tmp_path, "torchvision", splits=(1, 1, 1))
    image = _uint8(CelebADataModule(data_dir=str(tmp_path), image_size=178).real_images("test")[0][0])
    assert image.shape == (178, 178, 3)
    assert np.abs(image[47, 30] - (0, 255, 0)).max() < 12  # marker: rows 45–60, cols 25–40
    assert np.abs(image[100, 100] - (255, 0, 0)).max() < 12
    assert np.abs(image[42, 100] - (0, 0, 58)).max() < 12  # row 62 of the original: background, blue 55 + 3


def test_limit_and_real_images_view(tmp_path: Path) -> None:
    write_celeba(tmp_path, "kaggle", splits=(6, 2, 3))
    dm = CelebADataModule(data_dir=str(tmp_path), limit=4, download=False)
    assert dm.split_sizes() == {"train": 4, "valid": 2, "test": 3}
    images, labels = dm.real_images("test")
    assert labels is None and len(images) == 3
    assert images[torch.tensor([2, 0])].shape == (2, 3, 64, 64)
    assert torch.equal(images[torch.tensor([0])][0], images[0])


def test_missing_data_names_both_layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        CelebADataModule(data_dir=str(tmp_path), download=False).prepare_data()
    message = str(info.value)
    for expected in (
        "download=False",
        f"{tmp_path.resolve()}/celeba/img_align_celeba/000001.jpg",
        "celeba/list_eval_partition.txt",
        f"{tmp_path.resolve()}/celeba-dataset/img_align_celeba/img_align_celeba/000001.jpg",
        "celeba-dataset/list_eval_partition.csv",
        "kaggle datasets download -d jessicali9530/celeba-dataset",
        "pip install gdown",
    ):
        assert expected in message
    monkeypatch.setitem(sys.modules, "gdown", None)  # import gdown → ImportError
    with pytest.raises(DatasetNotFoundError, match="gdown is not installed"):
        CelebADataModule(data_dir=str(tmp_path), download=True).prepare_data()


def test_incomplete_archive_and_bad_crop_box(tmp_path: Path) -> None:
    write_celeba(tmp_path, "torchvision", splits=(2, 1, 1))
    with pytest.raises(ValueError, match="exceeds the 178×218 images"):
        CelebADataModule(data_dir=str(tmp_path), crop_box=[65, 25, 193, 153]).setup("fit")  # (upper, left, …)
    with pytest.raises(ValueError, match="left < right"):
        CelebADataModule(crop_box=[153, 65, 25, 193])
    (tmp_path / "celeba" / "img_align_celeba" / "000003.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match="lists 1 images missing .* 000003.jpg"):
        CelebADataModule(data_dir=str(tmp_path)).setup("fit")


def test_fit_without_celeba_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from lightning_gans.cli import main

    monkeypatch.setenv("LIGHTNING_GANS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(sys, "argv", ["lightning-gans"])
    config = str(Path(__file__).resolve().parents[1] / "experiments" / "dcgan_celeba.yaml")
    args = ["fit", "--config", config, f"--data.data_dir={tmp_path}", "--data.download=false", "--wandb.mode=disabled"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "CelebA not found" in err and "celeba-dataset/img_align_celeba/img_align_celeba" in err
    assert "Traceback" not in err
