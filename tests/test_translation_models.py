"""CycleGAN / DiscoGAN: network shapes, losses at known points, the DiscoGAN D-loss regression, the image pool, the
LR schedule, the per-batch schedule and the translation callbacks (on a tiny in-test datamodule)."""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import quality_fakes  # noqa: F401 - registers the tiny-test extractor
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_gans.callbacks.translation import TranslationGridCallback, TranslationQualityCallback
from lightning_gans.cli import ConfigError
from lightning_gans.models import CycleGAN, DiscoGAN
from lightning_gans.models.cyclegan import CycleSchedule
from lightning_gans.models.image_pool import ImagePool
from lightning_gans.networks.translation import (
    BookPatchDiscriminator,
    BookUNetGenerator,
    DiscoGANDiscriminator,
    DiscoGANGenerator,
    PatchGANDiscriminator,
    ResnetGenerator,
    UNetGenerator,
)
from lightning_gans.schedules import LinearDecayLR, linear_decay_factor

torch.set_num_threads(1)


def _out(net: nn.Module, size: int, batch: int = 1) -> tuple[int, ...]:
    net.eval()
    with torch.no_grad():
        return tuple(net(torch.rand(batch, 3, size, size) * 2 - 1).shape)


# ---------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize("size", [256, 128])
def test_generator_shapes(size: int) -> None:
    assert _out(ResnetGenerator(base_channels=8, num_blocks=9 if size == 256 else 6), size) == (1, 3, size, size)
    assert _out(UNetGenerator(size, base_channels=8, max_channels=32), size) == (1, 3, size, size)
    assert _out(BookUNetGenerator(gf=8), size) == (1, 3, size, size)


def test_paper_sized_networks() -> None:
    """ResNet-9 and the 70×70 PatchGAN at the paper's widths have the authors' parameter counts; the tutorial
    U-Net at 256² has 8 downsamplings (the 1×1 bottleneck) and dropout on its first 3 up blocks."""
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(ResnetGenerator()) == 11_378_179
    assert count(PatchGANDiscriminator()) == 2_764_737
    unet = UNetGenerator(256)
    assert len(unet.down) == 8 and len(unet.up) == 7
    assert [any(isinstance(m, nn.Dropout) for m in block) for block in unet.up] == [True] * 3 + [False] * 4


def test_discriminator_shapes() -> None:
    assert _out(PatchGANDiscriminator(base_channels=8), 256) == (1, 1, 30, 30)
    assert _out(BookPatchDiscriminator(df=8), 128) == (1, 1, 8, 8)
    assert _out(DiscoGANDiscriminator(df=8), 64, batch=2) == (2, 1, 1, 1)
    assert _out(DiscoGANGenerator(gf=8), 64, batch=2) == (2, 3, 64, 64)
    assert _out(DiscoGANGenerator(gf=8, image_size=32), 32, batch=2) == (2, 3, 32, 32)


def test_discogan_logit_can_be_negative_and_generator_output_in_range() -> None:
    """The chapter's implicit ReLU made every D logit >= 0 (bug 2a); the fixed D's logit is linear."""
    torch.manual_seed(0)
    d = DiscoGANDiscriminator(df=8).eval()
    with torch.no_grad():
        logits = d(torch.rand(64, 3, 64, 64) * 2 - 1).flatten()
    assert (logits < 0).any() and (logits > 0).any()
    assert not any(isinstance(m, nn.ReLU) for m in d.modules())
    with torch.no_grad():
        out = DiscoGANGenerator(gf=8).eval()(torch.rand(4, 3, 64, 64) * 2 - 1)
    assert out.abs().max() <= 1


@pytest.mark.parametrize("size", [64, 32])
def test_discogan_unet_option_concatenates_mirrored_features(size: int) -> None:
    """skips=True: the chapter's layers with every up layer after the first taking twice the channels (the skip);
    the default keeps the chapter's flat network and its state-dict keys (net.0 …: older checkpoints load)."""
    plain, unet = DiscoGANGenerator(gf=8, image_size=size), DiscoGANGenerator(gf=8, image_size=size, skips=True)
    assert "net.0.weight" in plain.state_dict() and not any(k.startswith("net.") for k in unet.state_dict())
    assert _out(unet, size, batch=2) == (2, 3, size, size)
    convs = [m for m in (*unet.up.modules(), *unet.last.modules()) if isinstance(m, nn.ConvTranspose2d)]
    plain_convs = [m for m in plain.net if isinstance(m, nn.ConvTranspose2d)]
    assert convs[0].in_channels == plain_convs[0].in_channels == 100  # from the 1×1 bottleneck: no mirror
    assert [c.in_channels for c in convs[1:]] == [2 * c.in_channels for c in plain_convs[1:]]
    # With the 1×1×100 code cut (bottleneck conv zeroed), only the U-Net's output still depends on the input.
    grads = []
    for net in (plain, unet):
        (bottleneck,) = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.out_channels == 100]
        torch.nn.init.zeros_(bottleneck.weight)
        x = torch.rand(1, 3, size, size, requires_grad=True)
        (grad,) = torch.autograd.grad(net.eval()(x).sum(), x)
        grads.append(grad.abs().sum().item())
    assert grads[0] == 0 and grads[1] > 0


def test_network_size_errors() -> None:
    with pytest.raises(ValueError, match="power of 2"):
        UNetGenerator(100)
    with pytest.raises(ValueError, match="64×64"):
        DiscoGANGenerator(gf=8)(torch.zeros(1, 3, 32, 32))


# ---------------------------------------------------------------------------------------------- pool, schedule
def test_image_pool_fills_then_returns_past_images_half_the_time() -> None:
    pool = ImagePool(50)
    g = torch.Generator().manual_seed(0)
    first = torch.arange(50.0).view(50, 1, 1, 1).expand(50, 3, 2, 2)
    assert torch.equal(pool.query(first, g), first) and len(pool) == 50  # filling: every fake returned as is
    from_history, n = 0, 4000
    for i in range(n):
        new = torch.full((1, 3, 2, 2), 1000.0 + i)
        out = pool.query(new, g)
        if not torch.equal(out, new):
            from_history += 1
            assert out[0, 0, 0, 0] < 1000.0 + i  # a past image, never a future one
    assert len(pool) == 50
    assert abs(from_history / n - 0.5) < 0.03  # binomial sd 0.008
    assert torch.equal(ImagePool(0).query(first), first)


def test_linear_decay_schedule_values() -> None:
    factors = [linear_decay_factor(e, 100, 100) for e in (0, 99, 100, 150, 199, 200)]
    assert factors == pytest.approx([1, 1, 1, 0.5, 0.01, 0])
    # The DiscoGAN chapter's lr·(200 − epoch)/(200 − 10) after epoch_step = 10:
    for epoch in range(10, 200):
        assert math.isclose(linear_decay_factor(epoch, 10, 190), (200 - epoch) / 190)
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=2e-4)
    scheduler = LinearDecayLR(opt, constant_epochs=2, decay_epochs=4)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        scheduler.step()
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4, 1.5e-4, 1e-4, 0.5e-4])
    assert opt.param_groups[0]["lr"] == 0.0
    restored = LinearDecayLR(torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=2e-4), 2, 4)
    restored.load_state_dict(scheduler.state_dict())
    assert restored.last_epoch == 6


# ---------------------------------------------------------------------------------------------- in-test data
class Scale(nn.Module):
    """x ↦ w·x (w = ``value`` at start): a generator whose losses are known in closed form."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x


class Constant(nn.Module):
    """A discriminator scoring every image c (one 2×2 score map per image)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(x.shape[0], 1, 2, 2) + 0 * x[:, :1, :2, :2]


class Domains(Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images
        self.paths = [Path(f"{i:05d}.jpg") for i in range(len(images))]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


class PairsDataModule(pl.LightningDataModule):
    """B = −A: {A, B} training batches and domain_dataset(domain, split), as datamodules.paired offers."""

    def __init__(self, n: int = 16, image_size: int = 32, batch_size: int = 4, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = torch.rand(n, 3, image_size, image_size, generator=g) * 2 - 1
        self.image_size, self.batch_size, self.dataset_name = image_size, batch_size, "pairs"

    def train_dataloader(self) -> DataLoader:
        pairs = [{"A": a, "B": -a} for a in self.a]
        return DataLoader(pairs, batch_size=self.batch_size)

    def domain_dataset(self, domain: str, split: str = "test") -> Domains:
        return Domains(self.a if domain == "A" else -self.a)


def _trainer(tmp_path: Path, steps: int, callbacks: list | None = None) -> pl.Trainer:
    return pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=callbacks or [],
    )


def _frozen(params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.0)


def _known_model(cls: type = CycleGAN, **kwargs) -> CycleGAN:
    nets = {"G_AB": Scale(1.0), "G_BA": Scale(1.0), "D_A": Constant(0.25), "D_B": Constant(-0.5)}
    return cls(image_size=32, **nets, **kwargs)


# ---------------------------------------------------------------------------------------------- losses
def test_cyclegan_losses_at_a_known_point() -> None:
    """Identity generators: cycle and identity terms are 0; LSGAN terms are plain MSE, D loss ½·(real + fake)."""
    model = _known_model(pool_size=0)
    batch = {"A": torch.rand(4, 3, 32, 32), "B": torch.rand(4, 3, 32, 32)}
    logs = model.generator_step(batch)
    assert logs["cycle_A"] == 0 and logs["identity_B"] == 0
    assert logs["g_adv_AtoB"].item() == pytest.approx((-0.5 - 1) ** 2)  # D_B scores G_AB(a)
    assert logs["g_adv_BtoA"].item() == pytest.approx((0.25 - 1) ** 2)
    assert logs["loss"].item() == pytest.approx(2.25 + 0.5625)
    d = model.discriminator_step(batch)
    assert d["d_A_real"].item() == pytest.approx(0.75**2) and d["d_A_fake"].item() == pytest.approx(0.25**2)
    assert d["loss"].item() == pytest.approx(0.5 * (0.5625 + 0.0625) + 0.5 * (2.25 + 0.25))
    # Cycle and identity weights: G_AB = 2x, G_BA = x → cycle_A = |2a − a|₁ = mean|a|, identity_B = mean|b|.
    model.G_AB.weight.data.fill_(2.0)
    logs = model.generator_step(batch)
    mean_a, mean_b = batch["A"].abs().mean().item(), batch["B"].abs().mean().item()
    assert logs["cycle_A"].item() == pytest.approx(mean_a, rel=1e-5)
    expected = 2.25 + 0.5625 + 10 * (mean_a + mean_b) + 0.5 * 10 * mean_b  # D scores are constants
    assert logs["loss"].item() == pytest.approx(expected, rel=1e-5)


def test_discogan_d_loss_depends_on_the_fake_logits() -> None:
    """Regression for the chapter's swapped BCE arguments, which made the fake term the constant ln 2."""
    batch = {"A": torch.rand(4, 3, 32, 32), "B": torch.rand(4, 3, 32, 32)}
    values = []
    for logit in (-2.0, 0.0, 3.0):
        model = _known_model(DiscoGAN)
        model.D_A.value.data.fill_(logit)
        values.append(model.discriminator_step(batch)["d_A_fake"].item())
    assert values == pytest.approx([F.softplus(torch.tensor(v)).item() for v in (-2.0, 0.0, 3.0)])
    assert values[0] < math.log(2) < values[2]
    model = _known_model(DiscoGAN)
    loss = model.discriminator_step(batch)["d_A_fake"]
    (grad,) = torch.autograd.grad(loss, model.D_A.value)
    assert grad.item() == pytest.approx(torch.sigmoid(torch.tensor(0.25)).item())  # d softplus(c)/dc
    # DiscoGAN's G: BCE against 1 plus 1·MSE cycle, no identity term.
    logs = model.generator_step(batch)
    assert "identity_A" not in logs
    assert logs["g_adv_AtoB"].item() == pytest.approx(F.softplus(torch.tensor(0.5)).item())


def test_feature_matching_weight_mixes_layerwise_feature_matching_into_the_g_loss() -> None:
    """w = 0.9 (the DiscoGAN authors' code): each direction's G term is 0.1·BCE + 0.9·Σ_layers mean (E f(real) −
    E f(fake))² over D's hidden activations (all ReLU/LeakyReLU outputs but the first); w = 0 is the plain loss."""
    torch.manual_seed(0)
    batch = {"A": torch.randn(4, 3, 8, 8), "B": torch.randn(4, 3, 8, 8)}

    def critic() -> nn.Module:  # first ReLU untapped; LeakyReLU(1) taps relu(x); pooled channels as logits
        return nn.Sequential(nn.ReLU(), nn.LeakyReLU(1.0), nn.AdaptiveAvgPool2d(1))

    def model(w: float) -> DiscoGAN:
        nets = {"G_AB": Scale(1.0), "G_BA": Scale(1.0), "D_A": critic(), "D_B": critic()}
        return DiscoGAN(image_size=8, feature_matching_weight=w, **nets)

    logs = model(0.9).generator_step(batch)
    a, b = batch["A"].relu(), batch["B"].relu()
    fm = (b.mean(0) - a.mean(0)).pow(2).mean()  # AtoB: D_B's features of real b vs fake G_AB(a) = a
    assert logs["g_fm_AtoB"].item() == pytest.approx(fm.item(), rel=1e-5)
    assert logs["g_fm_BtoA"].item() == pytest.approx(fm.item(), rel=1e-5)  # symmetric here: BtoA compares a, b
    bce = F.softplus(-a.mean(dim=(2, 3))).mean() + F.softplus(-b.mean(dim=(2, 3))).mean()
    assert logs["loss"].item() == pytest.approx(0.1 * bce.item() + 0.9 * 2 * fm.item(), rel=1e-5)  # cycles are 0
    plain = model(0.0).generator_step(batch)
    assert "g_fm_AtoB" not in plain and plain["loss"].item() == pytest.approx(bce.item(), rel=1e-5)
    with pytest.raises(ValueError, match="feature_matching_weight must be in"):
        model(1.5)


# ---------------------------------------------------------------------------------------------- the loop
def _count_steps(model: CycleGAN) -> list[str]:
    calls: list[str] = []
    for name, opt in zip("GD", model.optimizers()):
        original = opt.optimizer.step

        def step(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        opt.optimizer.step = step
    return calls


@pytest.mark.parametrize(
    "options, expected",
    [
        ({}, ["G", "D"]),
        (
            {"order": "d_then_g", "d_fakes": "fresh", "schedule": CycleSchedule(d_steps="real_then_fake")},
            ["D", "D", "G"],
        ),
    ],
)
def test_one_gan_step_per_batch_in_the_configured_order(tmp_path: Path, options: dict, expected: list) -> None:
    model = _known_model(**options)

    class Spy(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            self.calls = _count_steps(pl_module)

    spy = Spy()
    trainer = _trainer(tmp_path, 3, [spy])
    trainer.fit(model, PairsDataModule())
    assert trainer.global_step == 3
    assert spy.calls == expected * 3


def test_cached_fakes_are_the_generator_steps_fakes() -> None:
    model = _known_model(pool_size=0)
    model.G_AB.weight.data.fill_(0.5)
    batch = {"A": torch.rand(2, 3, 32, 32), "B": torch.rand(2, 3, 32, 32)}
    model.generator_step(batch)
    fakes = model._fakes_for_discriminator(batch)
    assert torch.equal(fakes["B"], 0.5 * batch["A"]) and torch.equal(fakes["A"], batch["B"])
    with pytest.raises(RuntimeError, match="G step"):
        model._fakes_for_discriminator(batch)  # used once per batch


def test_translate_and_errors(tmp_path: Path) -> None:
    model = _known_model()
    model.G_AB.weight.data.fill_(-1.0)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(model.translate(x, "AtoB"), -x) and torch.equal(model.translate(x, "BtoA"), x)
    assert model.hparams.image_size == 32
    with pytest.raises(ValueError, match="AtoB"):
        model.translate(x, "AB")
    with pytest.raises(ConfigError, match="'A': images"):
        model.generator_step((x, x))
    with pytest.raises(ConfigError, match="translate"):
        model.sample(4)
    with pytest.raises(ValueError, match="d_fakes='fresh'"):
        CycleGAN(image_size=32, order="d_then_g", **{k: Scale() for k in ("G_AB", "G_BA")})
    with pytest.raises(ConfigError, match="--data.image_size and --model.image_size"):
        _trainer(tmp_path, 1).fit(model, PairsDataModule(image_size=16))


def test_real_networks_train_and_checkpoint_round_trip(tmp_path: Path) -> None:
    """DiscoGAN at 32² with its real networks: a few steps change G, the checkpoint reloads to the same outputs."""
    torch.manual_seed(0)
    nets = {f"G_{d}": DiscoGANGenerator(gf=8, image_size=32) for d in ("AB", "BA")}
    nets.update({f"D_{d}": DiscoGANDiscriminator(df=8, image_size=32) for d in "AB"})
    model = DiscoGAN(image_size=32, **nets)
    x = PairsDataModule().a[:4]
    before = model.translate(x, "AtoB")
    trainer = pl.Trainer(max_steps=4, accelerator="cpu", logger=False, default_root_dir=tmp_path,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, PairsDataModule())
    after = model.translate(x, "AtoB")
    assert not torch.allclose(before, after)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    payload = torch.load(ckpt, weights_only=False)
    assert "G_AB" not in payload["hyper_parameters"]  # networks are weights, not hyperparameters
    reloaded = DiscoGAN.load_from_checkpoint(ckpt, weights_only=False, **nets)
    assert torch.allclose(reloaded.translate(x, "AtoB"), after)


# ---------------------------------------------------------------------------------------------- callbacks
def test_translation_grid_columns(tmp_path: Path) -> None:
    model = _known_model(optimizer_g=_frozen, optimizer_d=_frozen)
    model.G_AB.weight.data.fill_(-1.0)  # a perfect A → B translator for B = −A; G_BA stays the identity
    grid = TranslationGridCallback(num_images=3)
    trainer = _trainer(tmp_path, 1, [grid])
    trainer.fit(model, PairsDataModule())
    a = PairsDataModule().a[:3]
    images = grid.grid(model).view(3, 6, 3, 32, 32)
    columns = [a, -a, -a, -a, -a, a]  # a | G_AB(a) | G_BA(G_AB(a)) | b | G_BA(b) | G_AB(G_BA(b))
    for k, column in enumerate(columns):
        assert torch.allclose(images[:, k], column, atol=1e-6)
    png = tmp_path / "samples" / "translation_epoch0001.png"
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (6 * 34 + 2, 3 * 34 + 2)


@pytest.mark.parametrize("scale_ba", [-1.0, -0.5])
def test_translation_quality_fid_and_cycle_l1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scale_ba: float) -> None:
    """A perfect translator (B = −A, G_AB = G_BA = negation) has FID 0 both ways and cycle L1 0; G_BA = −x/2 gives
    cycle L1 = mean|a/2 − a| exactly, and a positive B → A FID."""
    monkeypatch.setenv("LIGHTNING_GANS_CACHE", str(tmp_path / "cache"))
    model = _known_model(optimizer_g=_frozen, optimizer_d=_frozen)  # weights stay fixed: evaluation only
    model.G_AB.weight.data.fill_(-1.0)
    model.G_BA.weight.data.fill_(scale_ba)
    quality = TranslationQualityCallback(extractor="tiny-test", resize_to=28, every_n_epochs=1, batch_size=5)
    data = PairsDataModule()
    _trainer(tmp_path, 1, [quality]).fit(model, data)
    values = quality.last_metrics
    assert set(values) == {"fid_AtoB/tiny-test/16", "fid_BtoA/tiny-test/16", "cycle_l1_A/test", "cycle_l1_B/test"}
    assert values["fid_AtoB/tiny-test/16"] == pytest.approx(0.0, abs=1e-4)
    expected_cycle = (1 + scale_ba) * data.a.abs().mean().item()  # |(−1)(scale)a − a| = (1 + scale)|a|
    assert values["cycle_l1_A/test"] == pytest.approx(expected_cycle, abs=1e-6)
    if scale_ba == -1.0:
        assert values["fid_BtoA/tiny-test/16"] == pytest.approx(0.0, abs=1e-4)
    else:
        assert values["fid_BtoA/tiny-test/16"] > 0.01
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert any('"kind": "translation_quality"' in line and '"resize_to": 28' in line for line in lines)


def test_wandb_summaries_are_declared_and_failures_do_not_break_training(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from lightning.pytorch.loggers import WandbLogger

    from lightning_gans.outputs import define_wandb_summaries

    class Run:
        def __init__(self, fail: bool) -> None:
            self.fail, self.defined = fail, []

        def define_metric(self, name: str, summary: str) -> None:
            if self.fail:
                raise RuntimeError("disabled run")
            self.defined.append((name, summary))

    class RecordingWandb(WandbLogger):
        run = Run(False)

        @property
        def experiment(self) -> Run:
            return self.run

    logger = RecordingWandb(offline=True, save_dir=str(tmp_path))
    trainer = SimpleNamespace(loggers=[logger])
    define_wandb_summaries(trainer, {"fid_AtoB/tiny-test/16": "min", "cycle_l1_A/test": "min"}, "test")
    assert logger.run.defined == [("fid_AtoB/tiny-test/16", "min"), ("cycle_l1_A/test", "min")]
    logger.run = Run(True)
    define_wandb_summaries(trainer, {"fid_BtoA/tiny-test/16": "min"}, "test")  # logged, not raised
