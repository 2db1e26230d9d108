"""``lightning-gans translate`` with a stand-in translation model (colours inverted A→B, mirrored B→A)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from data_factories import write_cyclegan, write_jpg, write_pix2pix
from PIL import Image
from torch import nn

from datamodules.unpaired import UnpairedDataModule
from lightning_gans.cli import RUN_DIR_ENV, main
from lightning_gans.models.cyclegan import CycleGAN
from lightning_gans.outputs import to_uint8
from lightning_gans.workflows.translate import translate_images


class ColourFlip(pl.LightningModule):
    """Stand-in translator: A→B inverts colours (−x), B→A mirrors left-right; records the batch sizes it saw."""

    batches: list[tuple[int, ...]] = []

    def __init__(self, image_size: int | None = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.gain = nn.Parameter(torch.tensor(1.0))

    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        ColourFlip.batches.append(tuple(images.shape))
        return -images * self.gain if direction == "AtoB" else images.flip(-1)


class NoTranslate(pl.LightningModule):
    pass


def _checkpoint(path: Path, cls: type, data_hparams: dict | None = None, **hparams) -> Path:
    """A checkpoint as `lightning-gans fit` writes it: state dict, hparams with _class_path, datamodule hparams."""
    module = cls(**hparams)
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": {**dict(module.hparams), "_class_path": f"{cls.__module__}.{cls.__name__}"},
            "datamodule_hyper_parameters": data_hparams or {},
            "pytorch-lightning_version": pl.__version__,
        },
        path,
    )
    return path


def _colour_folder(folder: Path, colours: list[tuple[int, int, int]], size: tuple[int, int] = (20, 24)) -> Path:
    for index, colour in enumerate(colours):
        write_jpg(folder / f"{index:05d}_{index % 10}.jpg", np.full((*size, 3), colour, dtype=np.uint8))
    return folder


COLOURS = [(200, 30, 90), (10, 250, 128), (60, 60, 60), (255, 0, 0), (0, 0, 255)]


def test_translate_folder_keeps_names_batches_and_side_by_side(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "model.ckpt", ColourFlip, image_size=16)
    source = _colour_folder(tmp_path / "in", COLOURS)
    ColourFlip.batches.clear()
    report = translate_images(ckpt, source, "AtoB", tmp_path / "out", batch_size=2, side_by_side=True)
    assert [Path(p).name for p in report["written"]] == [f"{i:05d}_{i}.png" for i in range(5)]
    assert ColourFlip.batches == [(2, 3, 16, 16), (2, 3, 16, 16), (1, 3, 16, 16)]  # resized to image_size, batched
    for index, colour in enumerate(COLOURS):
        output = np.asarray(Image.open(tmp_path / "out" / f"{index:05d}_{index}.png")).astype(int)
        assert output.shape == (16, 16, 3)
        assert np.abs(output - (255 - np.array(colour))).max() <= 3  # inverted (JPEG input: ±3)
        pair = np.asarray(Image.open(tmp_path / "out" / "side_by_side" / f"{index:05d}_{index}.png")).astype(int)
        assert pair.shape == (16, 32, 3)
        assert np.abs(pair[:, :16] - np.array(colour)).max() <= 3 and np.abs(pair[:, 16:] - output).max() <= 1


def test_translate_single_image_b_to_a_and_jpg(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "model.ckpt", ColourFlip, image_size=16)
    picture = np.zeros((16, 16, 3), dtype=np.uint8)
    picture[:, :8] = 255  # left half white
    write_jpg(tmp_path / "one.jpg", picture)
    report = translate_images(ckpt, tmp_path / "one.jpg", "BtoA", tmp_path / "out", image_format="jpg")
    assert report == {"written": [str(tmp_path / "out" / "one.jpg")], "unreadable": []}
    output = np.asarray(Image.open(tmp_path / "out" / "one.jpg").convert("L")).astype(int)
    assert output[:, :6].max() < 20 and output[:, 10:].min() > 235  # mirrored: white now on the right


def test_translate_half_of_pix2pix_files(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "model.ckpt", ColourFlip, image_size=16)
    write_pix2pix(tmp_path / "pairs", n_train=3, n_val=2, size=32)
    translate_images(ckpt, tmp_path / "pairs" / "val", "AtoB", tmp_path / "out", half="A")
    output = np.asarray(Image.open(tmp_path / "out" / "003_AB.png")).astype(int)
    assert abs(output[-1, -1, 0] - (255 - 220)) <= 3 and output[-1, -1, 2] >= 252  # A = red half, inverted


def test_image_size_from_datamodule_and_override(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "m.ckpt", ColourFlip, {"image_size": 12, "interpolation": "nearest"}, image_size=None)
    source = _colour_folder(tmp_path / "in", COLOURS[:1])
    ColourFlip.batches.clear()
    translate_images(ckpt, source, "AtoB", tmp_path / "a")
    translate_images(ckpt, source, "AtoB", tmp_path / "b", image_size=8)
    assert ColourFlip.batches == [(1, 3, 12, 12), (1, 3, 8, 8)]
    bare = _checkpoint(tmp_path / "bare.ckpt", ColourFlip, image_size=None)
    with pytest.raises(ValueError, match="records no image_size"):
        translate_images(bare, source, "AtoB", tmp_path / "c")


def test_translate_skips_unreadable_inputs(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "model.ckpt", ColourFlip, image_size=16)
    source = _colour_folder(tmp_path / "in", COLOURS[:2])
    (source / "broken.jpg").write_bytes(b"not a jpeg")
    report = translate_images(ckpt, source, "AtoB", tmp_path / "out")
    assert report["unreadable"] == ["broken.jpg"] and len(report["written"]) == 2


def test_translate_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = _checkpoint(tmp_path / "model.ckpt", ColourFlip, image_size=16)
    source = _colour_folder(tmp_path / "in", COLOURS)
    out = tmp_path / "out"
    main(["translate", "--ckpt", str(ckpt), "--input", str(source), "--direction", "AtoB", "--out", str(out)])
    assert f"translated 5 images AtoB into {out}" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:05d}_{i}.png" for i in range(5)]
    assert not (out / "side_by_side").exists()

    wrong = _checkpoint(tmp_path / "wrong.ckpt", NoTranslate)
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", "--ckpt", str(wrong), "--input", str(source), "--direction", "AtoB", "--out", str(out)])
    assert exit_info.value.code == 2 and "cannot translate images" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", "--ckpt", str(ckpt), "--input", str(source), "--direction", "AB", "--out", str(out)])
    assert exit_info.value.code == 2 and "invalid choice: 'AB'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", "--ckpt", str(tmp_path / "none.ckpt"), "--input", str(source), "--direction", "AtoB",
              "--out", str(out)])  # fmt: skip
    assert exit_info.value.code == 1 and "none.ckpt does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", "--ckpt", str(ckpt), "--input", str(tmp_path / "nothing"), "--direction", "AtoB",
              "--out", str(out)])  # fmt: skip
    assert exit_info.value.code == 1 and "nothing does not exist" in capsys.readouterr().err


def test_translate_real_cyclegan_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny CycleGAN trained 2 steps by `lightning-gans fit` on CycleGAN folders: translate = G_AB on the test
    transform's input, and outputs keep the input names."""
    data = write_cyclegan(tmp_path / "h2z", counts=(4, 4, 3, 3), size=40)
    monkeypatch.setenv("LIGHTNING_GANS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.setattr("sys.argv", ["lightning-gans"])
    nets = []
    for name, cls, width in (("G_AB", "ResnetGenerator", "base_channels"), ("G_BA", "ResnetGenerator", "base_channels"),
                             ("D_A", "PatchGANDiscriminator", "base_channels"),
                             ("D_B", "PatchGANDiscriminator", "base_channels")):  # fmt: skip
        nets += [f"--model.{name}=lightning_gans.networks.translation.{cls}", f"--model.{name}.init_args.{width}=4"]
    nets += ["--model.G_AB.init_args.num_blocks=1", "--model.G_BA.init_args.num_blocks=1"]
    main(["fit", "--model=lightning_gans.models.cyclegan.CycleGAN", "--model.image_size=32", *nets,
          "--data=datamodules.unpaired.UnpairedDataModule", f"--data.dataset={data}", "--data.image_size=32",
          "--data.load_size=36", "--data.batch_size=2", "--data.download=false", "--trainer.max_steps=2",
          "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu",
          "--trainer.devices=1", "--trainer.enable_model_summary=false", "--experiment=tiny"])  # fmt: skip
    (ckpt,) = (tmp_path / "runs" / "tiny").glob("*/checkpoints/last.ckpt")
    report = translate_images(ckpt, data / "testA", "AtoB", tmp_path / "out", batch_size=2)
    assert [Path(p).name for p in report["written"]] == ["000.png", "001.png", "002.png"]
    model = CycleGAN.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)
    dm = UnpairedDataModule(str(data), image_size=32, download=False)
    expected = to_uint8(model.G_AB.eval()(torch.stack([dm.domain_dataset("A")[i] for i in range(3)])))
    for index in range(3):
        written = torch.from_numpy(np.array(Image.open(tmp_path / "out" / f"{index:03d}.png"))).permute(2, 0, 1)
        assert written.shape == (3, 32, 32)
        assert (written.int() - expected[index].int()).abs().max() <= 1


def test_translation_labels_benchmark(tmp_path: Path) -> None:
    """benchmarks/translation_labels.py on a make_mnist_edges set: labels from the names, chance-level agreement of
    a constant classifier, cycle L1 of the stand-in (A: |flip(−a) − a|, B: |−flip(b) − b|)."""
    import importlib.util

    from data_factories import write_mnist_edges, write_mnist_idx

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "translation_labels.py"
    spec = importlib.util.spec_from_file_location("translation_labels", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    write_mnist_edges(write_mnist_idx(tmp_path), n_train=20, n_val=16)
    seen = []

    def always_three(images: torch.Tensor) -> torch.Tensor:
        seen.append((tuple(images.shape), images.dtype))
        return torch.nn.functional.one_hot(torch.full((len(images),), 3), 10).float()

    for folder in ("mnist_edges", "mnist_edges_unpaired"):
        domain_a, domain_b = bench.load_test_domains(tmp_path / folder, 32)
        assert bench.labels_from_names(domain_b).tolist() == [i % 10 for i in range(16)]
        result = bench.evaluate(ColourFlip(image_size=32).translate, domain_a, domain_b, always_three, batch_size=6)
        assert result["agree_AtoB"] == result["agree_BtoAtoB"] == result["real_B"] == 2 / 16  # labels 3 and 13 % 10
        a = torch.stack([domain_a[i] for i in range(16)])
        b = torch.stack([domain_b[i] for i in range(16)])
        assert result["cycle_l1_A"] == pytest.approx((-a).flip(-1).sub(a).abs().mean().item(), rel=1e-5)
        assert result["cycle_l1_B"] == pytest.approx((-b.flip(-1)).sub(b).abs().mean().item(), rel=1e-5)
        assert result["cycle_l1_A"] > 0.1
    assert set(seen) == {((6, 3, 28, 28), torch.uint8), ((4, 3, 28, 28), torch.uint8)}
    few = bench.evaluate(ColourFlip(image_size=32).translate, domain_a, domain_b, always_three, n=5)
    assert few["n_A"] == few["n_B"] == 5 and few["real_B"] == 1 / 5
