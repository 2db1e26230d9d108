"""Age-cGAN (GAN Projects ch. 3): wiki_crop metadata and ages, networks, the three stages, face recognition and
the ``age`` command — on generated ``wiki.mat`` files (real nested struct layout) and JPGs."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from data_factories import WIKI_RECORDS, WIKI_VALID_BINS, write_jpg, write_torchvision_weights, write_wiki_crop
from PIL import Image
from torch import nn

from datamodules._paths import DatasetNotFoundError
from datamodules.wiki_faces import WikiFacesDataModule, age_at_photo, age_bin, matlab_datenum
from lightning_gans.cli import main
from lightning_gans.models import AgeCGAN
from lightning_gans.networks.age_cgan import AgeDiscriminator, AgeEncoder, AgeGenerator
from lightning_gans.networks.face_recognition import (
    FaceEmbedding,
    FaceRecognitionWeightsError,
    TorchvisionFaceEmbedding,
)

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ ages and bins
def test_chapter_age_vectors() -> None:
    assert age_at_photo(723671, 2009) == 28  # born 1981-05-05
    assert age_at_photo(711677, 2012) == 63  # born 1948-07-03: July or later → one less
    assert matlab_datenum(1981, 5, 5) == 723671


@pytest.mark.parametrize(
    ("age", "expected"),
    [(1, 0), (18, 0), (19, 1), (29, 1), (30, 2), (39, 2), (40, 3), (49, 3), (50, 4), (59, 4), (60, 5), (100, 5)],
)
def test_age_bin_edges(age: int, expected: int) -> None:
    assert age_bin(age) == expected


def test_age_bin_rejects_non_positive() -> None:
    with pytest.raises(ValueError, match="not in any bin"):
        age_bin(0)


# ------------------------------------------------------------------------------------------ datamodule
def test_mat_has_the_real_nested_layout(tmp_path: Path) -> None:
    from scipy.io import loadmat

    write_wiki_crop(tmp_path)
    m = loadmat(tmp_path / "wiki_crop" / "wiki.mat")["wiki"][0, 0]
    assert m["full_path"][0][0][0] == WIKI_RECORDS[0][0]
    assert m["dob"][0].shape == (len(WIKI_RECORDS),) and m["photo_taken"][0][0] == 2010
    assert {"gender", "name", "face_location", "face_score", "second_face_score"} <= set(m.dtype.names)


def test_parse_end_to_end_drops_and_counts(tmp_path: Path) -> None:
    write_wiki_crop(tmp_path)
    dm = WikiFacesDataModule(str(tmp_path), batch_size=7, download=False, shuffle=False)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.dropped == {"invalid_age": 2, "missing_file": 1, "low_face_score": 0}
    assert dm.ages == [10, 25, 35, 45, 55, 70, 20]
    assert dm.class_counts() == [1, 2, 1, 1, 1, 1]
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (7, 3, 64, 64) and images.dtype == torch.float32
    assert labels.tolist() == WIKI_VALID_BINS
    # The face's red level is 50 + 30·bin + index % 3 (data_factories.age_face): labels match their images.
    expected_red = [50 + 30 * b + i % 3 for i, b in zip([0, 1, 2, 3, 4, 5, 9], WIKI_VALID_BINS)]
    red = ((images[:, 0, 32, 32] + 1) * 127.5).round()
    assert torch.allclose(red, torch.tensor(expected_red, dtype=torch.float32), atol=2)


def test_face_score_filter_and_imdb(tmp_path: Path) -> None:
    write_wiki_crop(tmp_path, name="imdb")
    dm = WikiFacesDataModule(str(tmp_path), dataset="imdb", min_face_score=1.0, download=False)
    dm.setup("fit")
    assert dm.dropped == {"invalid_age": 2, "missing_file": 1, "low_face_score": 1}  # the -inf entry
    assert dm.class_counts() == [1, 1, 1, 1, 1, 1]
    dm = WikiFacesDataModule(str(tmp_path), dataset="imdb", min_face_score=2.6, download=False)
    dm.setup("fit")
    assert dm.dropped["low_face_score"] == 4  # scores 2.5, 1.5, 2.0 and -inf
    assert len(dm.real_images()[0]) == 3  # kept: scores 4.0, 3.0, 5.0


def test_unreadable_image_replaced_with_its_own_label(tmp_path: Path) -> None:
    write_wiki_crop(tmp_path)
    broken = tmp_path / "wiki_crop" / WIKI_RECORDS[1][0]
    broken.write_bytes(b"not a jpeg")
    dm = WikiFacesDataModule(str(tmp_path), download=False)
    dm.setup("fit")
    dataset = dm.train_dataloader().dataset
    with pytest.warns(UserWarning, match="unreadable image"):
        image, label = dataset[1]  # falls through to item 2 (age 35, bin 2)
    assert int(label) == 2
    assert torch.equal(image, dataset[2][0])


def test_missing_dataset_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    dm = WikiFacesDataModule(str(tmp_path), download=True)
    with pytest.raises(DatasetNotFoundError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "wiki_crop.tar" in message and "not reachable" in message and str(tmp_path.resolve()) in message
    with pytest.raises(DatasetNotFoundError, match="download=False|no wiki.mat"):
        WikiFacesDataModule(str(tmp_path), download=False).prepare_data()


def test_not_a_wiki_mat(tmp_path: Path) -> None:
    from scipy.io import savemat

    (tmp_path / "wiki_crop").mkdir()
    savemat(tmp_path / "wiki_crop" / "wiki.mat", {"other": np.zeros(3)})
    with pytest.raises(DatasetNotFoundError, match="not the IMDB-WIKI metadata"):
        WikiFacesDataModule(str(tmp_path), download=False).setup("fit")


# ------------------------------------------------------------------------------------------ networks
def test_book_network_shapes() -> None:
    g, d, e = AgeGenerator(), AgeDiscriminator(), AgeEncoder()
    z, ages = torch.randn(3, 100), torch.tensor([0, 3, 5])
    x = g(z, ages)
    assert x.shape == (3, 3, 64, 64) and x.abs().max() <= 1
    assert d(x, ages).shape == (3,) and e(x).shape == (3, 100)
    assert g.project[3].out_features == 256 * 8 * 8 and e.net[-4].out_features == 4096
    assert d.body[0].in_channels == 64 + 6  # the age tiled to 32×32×6 and concatenated
    assert [m.out_channels for m in g.net if isinstance(m, nn.Conv2d)] == [128, 64, 3]


def test_label_reaches_d_and_g() -> None:
    g, d = AgeGenerator(image_size=32, base_channels=32, hidden=64).eval(), AgeDiscriminator(image_size=32).eval()
    z = torch.randn(2, 100)
    assert not torch.allclose(g(z, torch.tensor([0, 0])), g(z, torch.tensor([5, 5])))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert not torch.allclose(d(x, torch.tensor([0, 0])), d(x, torch.tensor([5, 5])))


# ------------------------------------------------------------------------------------------ stages
class TinyFR(FaceEmbedding):
    """A stand-in face-recognition network: conv features on the 16×16 resized image."""

    def __init__(self) -> None:
        super().__init__(input_size=16, resize_mode="bilinear")
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1))


def small_model(stage: str = "cgan", **kwargs) -> AgeCGAN:
    return AgeCGAN(
        generator=AgeGenerator(image_size=32, base_channels=32, hidden=64),
        discriminator=AgeDiscriminator(image_size=32, base_channels=8),
        encoder=AgeEncoder(image_size=32, base_channels=8, hidden=32),
        face_recognition=TinyFR(),
        stage=stage,
        **kwargs,
    )


@pytest.fixture(scope="module")
def wiki_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wiki_crop(tmp_path_factory.mktemp("wiki"), copies=2)


def _fit(model: AgeCGAN, root: Path, **trainer_kwargs) -> pl.Trainer:
    trainer_kwargs.setdefault("fast_dev_run", True)
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, **trainer_kwargs
    )
    trainer.fit(model, WikiFacesDataModule(str(root), image_size=32, batch_size=4, download=False))
    return trainer


def _params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


@pytest.mark.parametrize("stage", ["cgan", "encoder", "identity"])
def test_each_stage_fast_dev_run(stage: str, wiki_root: Path) -> None:
    model = small_model(stage)
    before = {name: _params(getattr(model, name)) for name in ("generator", "discriminator", "encoder")}
    fr_before = _params(model.face_recognition)
    trainer = _fit(model, wiki_root)
    assert trainer.global_step == 1
    changed = {name: not torch.equal(before[name], _params(getattr(model, name))) for name in before}
    expected = {
        "cgan": {"generator": True, "discriminator": True, "encoder": False},
        "encoder": {"generator": False, "discriminator": False, "encoder": True},
        "identity": {"generator": True, "discriminator": False, "encoder": True},
    }[stage]
    assert changed == expected
    assert torch.equal(fr_before, _params(model.face_recognition))  # FR stays frozen
    loss = {"cgan": "g_loss", "encoder": "e_loss", "identity": "fr_loss"}[stage]
    assert torch.isfinite(trainer.callback_metrics[loss])


def test_encoder_loss_at_a_known_point() -> None:
    model = small_model("encoder", encoder_fixed_pairs=10)
    model.encoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 100))
    nn.init.zeros_(model.encoder[1].weight)
    nn.init.zeros_(model.encoder[1].bias)  # E(x) = 0 → loss = mean ‖z‖₂ over the first 4 fixed pairs
    loss = model.encoder_loss((torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)))
    assert loss.item() == pytest.approx(model.encoder_pairs_z[:4].norm(dim=1).mean().item(), rel=1e-6)
    z, ages = model.encoder_pairs(4)
    assert torch.equal(z, model.encoder_pairs_z[:4]) and torch.equal(ages, model.encoder_pairs_y[:4])


def test_identity_loss_zero_when_reconstruction_is_exact() -> None:
    model = small_model("identity")
    real = torch.rand(3, 3, 32, 32) * 2 - 1

    class Copy(nn.Module):
        def forward(self, z, ages=None):
            return z

    model.encoder, model.generator = Copy(), Copy()  # G(E(x), y) = x: identical FR embeddings
    assert model.identity_loss((real, torch.tensor([0, 1, 2]))).item() == pytest.approx(0.0, abs=1e-6)


def test_stages_chain_through_checkpoints(wiki_root: Path, tmp_path: Path) -> None:
    first = small_model("cgan")
    trainer = _fit(first, wiki_root, fast_dev_run=False, max_steps=1, enable_checkpointing=False)
    cgan_ckpt = tmp_path / "cgan.ckpt"
    trainer.save_checkpoint(cgan_ckpt)
    assert torch.load(cgan_ckpt, weights_only=False)["age_cgan_stage"] == "cgan"
    second = small_model("encoder", cgan_ckpt=str(cgan_ckpt))
    trainer = _fit(second, wiki_root)
    assert torch.equal(_params(second.generator), _params(first.generator))  # loaded, then frozen
    with pytest.raises(ValueError, match="stage-cgan checkpoint"):
        _fit(small_model("identity", encoder_ckpt=str(cgan_ckpt)), wiki_root)


def test_resume_within_a_stage_only(wiki_root: Path, tmp_path: Path) -> None:
    trainer = _fit(small_model("cgan"), wiki_root, fast_dev_run=False, max_steps=1, enable_checkpointing=False)
    ckpt = tmp_path / "cgan.ckpt"
    trainer.save_checkpoint(ckpt)
    model = small_model("cgan")
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False, max_steps=2
    )
    trainer.fit(
        model,
        WikiFacesDataModule(str(wiki_root), image_size=32, batch_size=4, download=False),
        ckpt_path=ckpt,
        weights_only=False,
    )
    assert trainer.global_step == 2  # one more GAN step after the restored one
    with pytest.raises(ValueError, match="resumes a stage-cgan run"):
        trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, max_steps=2)
        trainer.fit(
            small_model("encoder"),
            WikiFacesDataModule(str(wiki_root), image_size=32, batch_size=4),
            ckpt_path=ckpt,
            weights_only=False,
        )


def test_fresh_start_warns(wiki_root: Path) -> None:
    with pytest.warns(UserWarning, match="cgan_ckpt is null"):
        _fit(small_model("encoder"), wiki_root)


def test_latent_optimisation_lowers_fr_distance() -> None:
    torch.manual_seed(0)
    model = small_model("identity")
    faces, ages = torch.rand(2, 3, 32, 32) * 2 - 1, torch.tensor([1, 4])
    fr = model.face_recognition

    def distance(z: torch.Tensor) -> float:
        with torch.no_grad():
            return (fr(model.sample(2, noise=z, labels=ages)) - fr(faces)).norm(dim=1).sum().item()

    z0 = model.encode(faces)
    z = model.optimise_latents(faces, ages, steps=30, lr=0.05)
    assert distance(z) < 0.8 * distance(z0)
    assert model.age_faces(faces, z).shape == (12, 3, 32, 32)


def test_class_grid_has_six_rows() -> None:
    model = small_model()  # 16 fixed latents: row c = age bin c
    grid = model.sample_fixed()
    assert grid.shape == (6 * 16, 3, 32, 32)
    assert torch.equal(grid[:16], model.sample(16, noise=model.fixed_noise, labels=torch.zeros(16, dtype=torch.long)))


# ------------------------------------------------------------------------------------------ face recognition
def test_torchvision_fr_missing_weights_stop_the_stage(wiki_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    model = small_model("identity")
    object.__setattr__(model, "face_recognition", TorchvisionFaceEmbedding("resnet18", download=False))
    with pytest.raises(FaceRecognitionWeightsError) as info:
        _fit(model, wiki_root)
    assert "resnet18-f37072fd.pth" in str(info.value) and "weights_path" in str(info.value)
    assert model.global_step == 0


def test_torchvision_fr_loads_cached_weights_and_preprocesses(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    write_torchvision_weights("resnet18")
    fr = TorchvisionFaceEmbedding("resnet18", input_size=96, download=False).load()
    x = torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    pre = fr.preprocess(x)  # [-1, 1] → [0, 1] → 96² nearest → ImageNet mean/std
    assert pre.shape == (1, 3, 96, 96)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(pre[0, :, 0, 0], (0 - mean) / std, atol=1e-5)
    assert torch.allclose(pre[0, :, 0, -1], (1 - mean) / std, atol=1e-5)
    embedding = fr(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert embedding.shape == (2, 512) and torch.allclose(embedding.norm(dim=1), torch.ones(2), atol=1e-5)
    assert not any(p.requires_grad for p in fr.parameters()) and not fr.train().training


def test_user_face_embedding_torchscript(tmp_path: Path) -> None:
    from lightning_gans.networks.face_recognition import UserFaceEmbedding

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    torch.jit.script(net).save(str(tmp_path / "fr.pt"))
    fr = UserFaceEmbedding(str(tmp_path / "fr.pt"), input_size=24, input_range="unit", mean=[0.5] * 3, std=[0.25] * 3)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    pre = fr.load().preprocess(x)  # [-1, 1] → [0, 1] → 24² → (x − 0.5) / 0.25 = 2x in the project's range
    assert pre.shape == (2, 3, 24, 24)
    expected = torch.nn.functional.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False) * 2
    assert torch.allclose(pre, expected, atol=1e-5)
    assert torch.allclose(fr(x), torch.nn.functional.normalize(net(expected), dim=1), atol=1e-5)
    assert not any(p.requires_grad for p in fr.parameters())
    with pytest.raises(FaceRecognitionWeightsError, match="does not exist"):
        UserFaceEmbedding(str(tmp_path / "missing.pt")).load()


# ------------------------------------------------------------------------------------------ `age` command
def _cli_fit(runs: Path, stage: str) -> Path:
    config = str(REPO / "experiments" / "age_cgan_synthetic.yaml")
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    main(
        ["fit", "--config", config, f"--model.stage={stage}", "--trainer.max_steps=1", "--data.batch_size=4"]
        + ["--trainer.callbacks=[]", f"--experiment={stage}", *quiet]
    )
    return next((runs / stage).glob("*/checkpoints/last.ckpt"))


def test_age_command_writes_six_column_grid(runs: Path, tmp_path: Path, capsys) -> None:
    ckpt = _cli_fit(runs, "encoder")
    faces = [tmp_path / "a.jpg", tmp_path / "b.png"]
    write_jpg(faces[0], np.full((50, 40, 3), 200, dtype=np.uint8))
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(faces[1])
    out = tmp_path / "grid.png"
    main(["age", "--ckpt", str(ckpt), "--input", *map(str, faces), "--out", str(out)])
    with Image.open(out) as grid:
        assert grid.size == (6 * (32 + 2) + 2, 2 * (32 + 2) + 2)  # 6 ages × 2 faces of 32² with 2-px padding
    assert "2 face(s) × 6 ages" in capsys.readouterr().out


def test_age_command_refuses_stage_one(runs: Path, tmp_path: Path, capsys) -> None:
    ckpt = _cli_fit(runs, "cgan")
    face = tmp_path / "a.jpg"
    write_jpg(face, np.full((32, 32, 3), 100, dtype=np.uint8))
    with pytest.raises(SystemExit) as info:
        main(["age", "--ckpt", str(ckpt), "--input", str(face), "--out", str(tmp_path / "g.png")])
    assert info.value.code == 2
    assert "stage-cgan checkpoint" in capsys.readouterr().err
