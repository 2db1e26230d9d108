"""Mixed precision, loss scaling, compile and channels_last (``models.precision``, ``models.compiled``).

On CPU Lightning turns ``precision="16-mixed"`` into bf16 (it refuses fp16 autocast there), so the fp16 tests pass
the plugin itself: ``MixedPrecision("16-mixed", "cpu")`` is torch's CPU fp16 autocast with a CPU ``GradScaler``,
the same code path as 16-mixed on a GPU.

Tolerances. bf16 keeps 8 significant bits (relative rounding 2⁻⁸ ≈ 0.4 %), fp16 11 bits (0.05 %); a loss is a
mean over a batch of such values, so first-step losses agree with fp32 to a few 0.1 % (``LOSS_RTOL`` 2 %, loose
enough for the worst network here and tight enough that a loss off by a scale factor or computed from
underflowed values fails). The 5-step parity runs use SGD with a small step (1e-4), whose update is the summed
gradients itself: the update must point the way fp32's does (cosine ≥ 0.9) *and* have its length (within 10 %).
The small step keeps both runs on one trajectory, so the comparison measures the precision and not a GAN's
sensitivity to its own weights (tiny CycleGAN's gradient turns by ≈ 25° when its weights move by 1 %). Adam would
hide the bugs this is about — it is invariant to a constant gradient factor, so gradients wrong by the loss scale (an
``autograd.grad`` never unscaled, or unscaled twice) give Adam's update unchanged, while its per-coordinate
normalisation turns coordinates whose gradient is rounding noise into full-size steps and lowers the cosine of
a correct run.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from toy_training import toy_loader, toy_module

from lightning_gans.losses import gradient_penalty, r1_penalty
from lightning_gans.models import DCGAN, CycleGAN
from lightning_gans.models.compiled import batch_to_channels_last
from lightning_gans.models.options import EMA, Regularisers, Schedule
from lightning_gans.models.precision import SCALER_STATES
from lightning_gans.networks.dcgan import DCGANDiscriminator28, DCGANGenerator28
from lightning_gans.networks.translation import PatchGANDiscriminator, ResnetGenerator

LOSS_RTOL = 2e-2
MIN_COSINE = 0.9
NORM_RTOL = 0.1


def precision_args(precision: str, init_scale: float | None = None) -> dict:
    """Trainer kwargs for ``precision`` on CPU: 16-mixed as the real fp16 plugin (see module docstring)."""
    if precision != "16-mixed":
        return {"precision": precision}
    scaler = torch.amp.GradScaler("cpu", **({} if init_scale is None else {"init_scale": init_scale}))
    return {"plugins": [MixedPrecision("16-mixed", "cpu", scaler=scaler)]}


def trainer(tmp_path: Path, precision: str = "32-true", init_scale: float | None = None, **kwargs) -> pl.Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **precision_args(precision, init_scale),
        **kwargs,
    )


class StepLosses(pl.Callback):
    """The step losses logged at each batch (``<name>_step``) and the parameters before the first batch."""

    def __init__(self) -> None:
        self.losses: list[dict[str, float]] = []

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.initial = {k: v.detach().clone() for k, v in module.named_parameters()}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        metrics = trainer.callback_metrics
        self.losses.append({k.removesuffix("_step"): float(v) for k, v in metrics.items() if k.endswith("_step")})


# ---------------------------------------------------------------------------------------------- tiny families
def _sgd(params) -> torch.optim.Optimizer:  # noqa: ANN001
    return torch.optim.SGD(params, lr=1e-4)


SGD = {"optimizer_g": _sgd, "optimizer_d": _sgd}


def _images(n: int, channels: int, size: int) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _dcgan() -> tuple[pl.LightningModule, DataLoader]:
    nets = {"generator": DCGANGenerator28(latent_dim=16), "discriminator": DCGANDiscriminator28()}
    images = _images(40, 1, 28)
    return DCGAN(**nets, latent_dim=16, **SGD), DataLoader(TensorDataset(images, torch.zeros(40)), batch_size=8)


def _wgan_gp() -> tuple[pl.LightningModule, DataLoader]:
    return toy_module(loss="wasserstein", regularisers=Regularisers(gradient_penalty=10.0), **SGD), toy_loader(5)


def _simultaneous() -> tuple[pl.LightningModule, DataLoader]:
    return toy_module(schedule=Schedule(update="simultaneous"), **SGD), toy_loader(5)


def _cyclegan() -> tuple[pl.LightningModule, DataLoader]:
    nets = {f"G_{d}": ResnetGenerator(base_channels=4, num_blocks=1) for d in ("AB", "BA")}
    nets.update({f"D_{d}": PatchGANDiscriminator(base_channels=4) for d in "AB"})
    images = _images(10, 3, 32)
    return CycleGAN(image_size=32, **nets, **SGD), DataLoader([{"A": a, "B": -a} for a in images], batch_size=2)


FAMILIES = {"dcgan": _dcgan, "wgan_gp": _wgan_gp, "simultaneous": _simultaneous, "cyclegan": _cyclegan}


def _fit(tmp_path: Path, family: str, precision: str, steps: int) -> tuple[pl.LightningModule, StepLosses]:
    """``steps`` GAN steps; 16-mixed starts at scale 2¹⁰, where no network here overflows on step 1, so the five
    updates compared are five updates (at torch's default 2¹⁶ the first steps are skipped while the scale drops:
    ``test_resume_of_a_16_mixed_run_restores_each_scaler`` runs that default)."""
    pl.seed_everything(0, verbose=False)
    model, loader = FAMILIES[family]()
    record = StepLosses()
    trainer(tmp_path, precision, init_scale=2.0**10, max_steps=steps, callbacks=[record]).fit(model, loader)
    return model, record


def _update(model: pl.LightningModule, record: StepLosses, prefix: str) -> torch.Tensor:
    changes = [(p.detach() - record.initial[k]).flatten() for k, p in model.named_parameters() if k.startswith(prefix)]
    return torch.cat(changes).double()


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_mixed_precision_matches_fp32(tmp_path: Path, family: str, precision: str) -> None:
    """First-step losses within ``LOSS_RTOL`` of fp32; 5 steps finite; each network's 5-step update points the
    way fp32's does (cosine ≥ 0.9) and has its length (within ``NORM_RTOL``); see the module docstring."""
    reference, ref_record = _fit(tmp_path / "fp32", family, "32-true", 5)
    model, record = _fit(tmp_path / precision, family, precision, 5)
    first, ref_first = record.losses[0], ref_record.losses[0]
    assert first.keys() == ref_first.keys() and "d_loss" in first and "g_loss" in first
    for name in ("d_loss", "g_loss"):
        assert first[name] == pytest.approx(ref_first[name], rel=LOSS_RTOL, abs=1e-3), name
    for p in model.parameters():
        assert p.dtype == torch.float32 and torch.isfinite(p).all()  # fp32 master weights
    for prefix in ("generator.", "discriminator."):
        update, ref_update = _update(model, record, prefix), _update(reference, ref_record, prefix)
        assert update.norm() > 0
        cosine = float(update @ ref_update / (update.norm() * ref_update.norm()))
        assert cosine >= MIN_COSINE, f"{prefix} update cosine {cosine:.3f} to fp32"
        assert float(update.norm() / ref_update.norm()) == pytest.approx(1.0, rel=NORM_RTOL), prefix


# ---------------------------------------------------------------------------------------------- loss scaling
def test_16_mixed_takes_the_plugins_scaler_and_gives_each_optimizer_its_own(tmp_path: Path) -> None:
    """The plugin is left autocast-only; G and D get distinct scalers with the plugin scaler's settings."""
    model = toy_module()
    fit = trainer(tmp_path, "16-mixed", init_scale=256.0, max_steps=2)
    fit.fit(model, toy_loader(2))
    assert fit.precision_plugin.scaler is None
    assert sorted(model._scalers) == [0, 1] and model._scalers[0] is not model._scalers[1]
    assert {s.get_scale() for s in model._scalers.values()} == {256.0}  # no overflow at 256: never halved
    assert all(s.get_growth_interval() == 2000 for s in model._scalers.values())


def _critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))


def _points() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.rand(16, 64, generator=g) * 2 - 1, torch.rand(16, 64, generator=g) * 2 - 1, torch.rand(16, generator=g)


def test_gradient_penalty_under_16_mixed_with_a_scaler_equals_fp32() -> None:
    """The scaled-and-unscaled penalty equals fp32's within 1e-2 relative; one taken of the scaled loss and not
    unscaled (what a scaler does to an ``autograd.grad`` that is not told about it) is off by the scale²."""
    critic, (real, fake, eps) = _critic(), _points()
    with torch.no_grad():
        critic[2].weight.mul_(20.0)  # ‖∇D‖ well above 1: a penalty well away from 0
    reference = gradient_penalty(critic, real, fake, epsilon=eps)
    scale = torch.amp.GradScaler("cpu", init_scale=1024.0).scale(torch.ones(()))
    with torch.autocast("cpu", dtype=torch.float16):
        scaled = gradient_penalty(critic, real, fake, epsilon=eps, loss_scale=scale)
        not_unscaled = gradient_penalty(lambda x: critic(x) * scale, real, fake, epsilon=eps)
    assert reference > 0.1
    assert float(scaled) == pytest.approx(float(reference), rel=1e-2)
    assert float(not_unscaled) / float(reference) > 1e5  # ≈ (1024 ‖∇D‖ − 1)² / (‖∇D‖ − 1)²


def test_r1_under_16_mixed_needs_the_scale_when_input_gradients_are_small() -> None:
    """A critic with a small output scale (1e-7, as a freshly initialised last layer can be): its gradients fall
    below fp16's range (≈ 6e-8), unscaled fp16 loses them and R1 is off by several %; taken of the scaled loss
    and unscaled, R1 equals fp32's within 1e-2."""
    net = _critic()

    def critic(x: torch.Tensor) -> torch.Tensor:
        return net(x).float() * 1e-7  # the fp16 network's output, scaled down in fp32

    real = _points()[0]
    reference = float(r1_penalty(critic, real).detach())
    scale = torch.amp.GradScaler("cpu", init_scale=2.0**14).scale(torch.ones(()))
    with torch.autocast("cpu", dtype=torch.float16):
        unscaled = float(r1_penalty(critic, real).detach())
        scaled = float(r1_penalty(critic, real, loss_scale=scale).detach())
    assert abs(unscaled - reference) / reference > 2e-2
    assert scaled == pytest.approx(reference, rel=1e-2)


def test_gan_module_gradient_penalty_under_16_mixed_equals_fp32(tmp_path: Path) -> None:
    """Through the module: the first step's logged d_gp under 16-mixed (D's scaler) equals fp32's."""
    values = {}
    for precision in ("32-true", "16-mixed"):
        pl.seed_everything(0, verbose=False)
        record = StepLosses()
        fit = trainer(tmp_path, precision, init_scale=1024.0, max_steps=1, callbacks=[record])
        fit.fit(toy_module(loss="wasserstein", regularisers=Regularisers(gradient_penalty=10.0)), toy_loader(1))
        values[precision] = record.losses[0]["d_gp"]
    assert values["16-mixed"] == pytest.approx(values["32-true"], rel=1e-2)


class InjectInf(pl.Callback):
    """Make D's gradients infinite in the D backward of batch ``at`` (every batch: None); record which networks
    each batch moved and the (G, D) loss scales after it."""

    def __init__(self, at: int | None) -> None:
        self.at, self.batch, self.moved, self.scales = at, -1, [], []

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        first = next(module.discriminator.parameters())
        first.register_hook(lambda g: g * math.inf if self.at in (None, self.batch) else g)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:  # noqa: ANN001
        self.batch = batch_idx
        self.before = {n: [p.detach().clone() for p in getattr(module, n).parameters()] for n in ("generator",
                       "discriminator")}  # fmt: skip

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        moved = set()
        for name, before in self.before.items():
            if any(not torch.equal(a, b) for a, b in zip(before, getattr(module, name).parameters())):
                moved.add(name[0].upper())
        self.moved.append("".join(sorted(moved)))
        self.scales.append(tuple(module._scalers[i].get_scale() if i in module._scalers else None for i in (0, 1)))


def test_an_inf_gradient_under_16_mixed_skips_only_that_networks_step(tmp_path: Path) -> None:
    """n_critic = 2: G updates on batches 1, 3. An inf in D's gradients on batch 1 skips D's step there (and
    halves D's scale only); G still updates on batch 1; batches 2 and 3 follow the schedule."""
    inject = InjectInf(at=1)
    model = toy_module(schedule=Schedule(n_critic=2))
    fit = trainer(tmp_path, "16-mixed", init_scale=1024.0, max_steps=4, callbacks=[inject])
    fit.fit(model, toy_loader(4))
    assert inject.moved == ["D", "G", "D", "DG"]
    assert inject.scales == [(None, 1024.0), (1024.0, 512.0), (1024.0, 512.0), (1024.0, 512.0)]  # G's from batch 1
    assert fit.global_step == 4


class GradNorm(pl.Callback):
    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:  # noqa: ANN001
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))


def test_gradient_clipping_under_16_mixed_clips_unscaled_gradients(tmp_path: Path) -> None:
    """Clipped at 0.05 in the gradients' own units: the optimizer sees norms ≤ 0.05, not a scaled gradient."""
    norms = GradNorm()
    model = toy_module(regularisers=Regularisers(gradient_clip_d=0.05, gradient_clip_g=0.05))
    trainer(tmp_path, "16-mixed", init_scale=1024.0, max_steps=3, callbacks=[norms]).fit(model, toy_loader(3))
    assert len(norms.norms) == 6
    assert all(0 < n <= 0.05 * (1 + 1e-3) for n in norms.norms)


def test_lightnings_shared_scaler_path_fails_both_checks(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Negative control: Lightning's own scaler (no take-over: the path before ``models.precision``). The
    simultaneous update's ``autograd.grad`` never scales a loss, so the plugin's unscale fails; gradient clipping
    clips the scaled gradients, so the optimizer sees norms 2¹⁰ times below the threshold."""
    monkeypatch.setattr("lightning_gans.models.precision.take_grad_scaler", lambda trainer: None)
    simultaneous = toy_module(schedule=Schedule(update="simultaneous"))
    with pytest.raises(AssertionError, match="_scale is None"):
        trainer(tmp_path, "16-mixed", init_scale=1024.0, max_steps=1).fit(simultaneous, toy_loader(1))
    norms = GradNorm()
    model = toy_module(regularisers=Regularisers(gradient_clip_d=0.05, gradient_clip_g=0.05))
    trainer(tmp_path, "16-mixed", init_scale=1024.0, max_steps=3, callbacks=[norms]).fit(model, toy_loader(3))
    assert max(norms.norms) <= 0.05 / 1024 * (1 + 1e-3)


def test_resume_of_a_16_mixed_run_restores_each_scaler(tmp_path: Path) -> None:
    """A 16-mixed run stopped after one epoch and resumed equals the uninterrupted run: weights and both
    scalers' states (the default 2¹⁶ scale overflows in this toy and is halved during the first epoch)."""

    def run(name: str, epochs: int, ckpt: str | None = None) -> tuple[pl.LightningModule, Path]:
        pl.seed_everything(0, verbose=False)
        model = toy_module()
        saver = ModelCheckpoint(dirpath=tmp_path / name, save_last=True)
        fit = trainer(tmp_path, "16-mixed", max_epochs=epochs, enable_checkpointing=True, callbacks=[saver])
        fit.fit(model, toy_loader(3), ckpt_path=ckpt, weights_only=False)  # Python-built: callables in hparams
        return model, tmp_path / name / "last.ckpt"

    _, first = run("part", 1)
    saved = torch.load(first, weights_only=False)
    assert sorted(saved[SCALER_STATES]) == [0, 1]
    assert saved[SCALER_STATES][0]["scale"] < 2.0**16  # it overflowed and was halved: a state worth restoring
    resumed, _ = run("resumed", 2, str(first))
    straight, _ = run("straight", 2)
    for i in (0, 1):
        assert resumed._scalers[i].state_dict() == straight._scalers[i].state_dict()
    for (k, a), b in zip(resumed.state_dict().items(), straight.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_collapsed_loss_scale_stops_the_run_with_one_line(tmp_path: Path) -> None:
    """Every D gradient inf: the guard stands down under a scaler, but a scale fallen below 2⁻¹⁶ is an error."""
    from lightning_gans.models import NonFiniteLossError

    inject = InjectInf(at=None)
    model = toy_module()
    fit = trainer(tmp_path, "16-mixed", init_scale=1.0, max_steps=40, callbacks=[inject])
    with pytest.raises(NonFiniteLossError, match="loss scale of optimizer 1 fell"):
        fit.fit(model, toy_loader(40))
    assert fit.global_step < 40


# ---------------------------------------------------------------------------------------------- compile
class GraphCounts(pl.Callback):
    """torch.compile's count of compiled graphs after each batch (``torch._dynamo`` counters)."""

    def __init__(self) -> None:
        self.graphs: list[int] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        from torch._dynamo.utils import counters

        self.graphs.append(counters["stats"]["unique_graphs"])


COMPILE_CASES = {
    "alternating": {},
    "simultaneous": {"schedule": Schedule(update="simultaneous")},  # autograd.grad twice, retain_graph
    "wgan_gp": {"loss": "wasserstein", "regularisers": Regularisers(gradient_penalty=10.0)},  # D eager in the GP
}


@pytest.mark.parametrize("case", sorted(COMPILE_CASES))
def test_compiled_networks_equal_eager_and_compile_once(tmp_path: Path, case: str) -> None:
    """Inductor-compiled G and D: one step equals eager (fp32, within 1e-5); steps 2 and 3 compile nothing new
    (the D and G updates' ``requires_grad`` toggling is covered by the first step's graphs); the checkpoint has
    the eager state-dict keys; sampling works."""
    torch._dynamo.reset()
    eager, _ = _toy_fit(tmp_path / "eager", COMPILE_CASES[case], compile=False, steps=1)
    compiled, counts = _toy_fit(tmp_path / "compiled", COMPILE_CASES[case], compile=True, steps=3)
    once, _ = _toy_fit(tmp_path / "once", COMPILE_CASES[case], compile=True, steps=1)
    for (k, a), b in zip(eager.state_dict().items(), once.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    assert counts.graphs[0] > 0 and counts.graphs[1] == counts.graphs[2] == counts.graphs[0]
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert compiled.sample(3).shape == (3, 2)


def _toy_fit(tmp_path: Path, options: dict, compile: bool, steps: int) -> tuple[pl.LightningModule, GraphCounts]:  # noqa: A002
    pl.seed_everything(0, verbose=False)
    model = toy_module(compile=compile, ema=EMA(decay=0.9), **SGD, **options)  # SGD: see the module docstring
    counts = GraphCounts()
    trainer(tmp_path, max_steps=steps, callbacks=[counts]).fit(model, toy_loader(steps))
    return model, counts


# ---------------------------------------------------------------------------------------------- channels_last
def test_batch_to_channels_last_converts_image_tensors_only() -> None:
    images, labels = torch.rand(2, 3, 4, 4), torch.tensor([1, 2])
    volumes = torch.rand(2, 3, 4, 4, 4)
    converted = batch_to_channels_last({"A": images, "y": labels, "v": volumes})
    assert converted["A"].is_contiguous(memory_format=torch.channels_last) and not converted["A"].is_contiguous()
    assert converted["v"].is_contiguous(memory_format=torch.channels_last_3d)
    assert converted["y"] is labels
    torch.testing.assert_close(converted["A"], images, rtol=0, atol=0)


def test_channels_last_stores_conv_weights_nhwc_and_trains_like_contiguous(tmp_path: Path) -> None:
    """DCGAN with channels_last: conv weights NHWC; 2 SGD steps equal the contiguous run (within 1e-5). Without
    dropout: its masks are drawn in memory order, so NHWC draws other masks (equal in distribution)."""
    states = {}
    for channels_last in (False, True):
        pl.seed_everything(0, verbose=False)
        model, loader = _dcgan()
        model.discriminator = DCGANDiscriminator28(dropout=0.0)
        model.hparams.channels_last = channels_last
        trainer(tmp_path, max_steps=2).fit(model, loader)
        convs = [p for p in model.discriminator.parameters() if p.dim() == 4 and p.shape[1] > 1]
        assert convs and all(p.is_contiguous(memory_format=torch.channels_last) == channels_last for p in convs)
        states[channels_last] = model.state_dict()
    for k, a in states[False].items():
        torch.testing.assert_close(states[True][k], a, rtol=1e-5, atol=1e-6, msg=k)
