"""The precision matrix (issue 18): every model family × ``--trainer.precision`` 32-true, 64-true, bf16-mixed and
16-mixed fits 3 GAN steps with tiny networks on in-memory batches.

On CPU, bf16-mixed is CPU autocast to bfloat16. ``Trainer(accelerator="cpu", precision="16-mixed")`` would silently
fall back to bf16-mixed (Lightning 2.6: "AMP with fp16 is not supported on CPU"), so the 16-mixed cells pass the
plugin itself, ``MixedPrecision("16-mixed", "cpu")``: CPU autocast to float16 with a GradScaler (which the models take
over, one per optimizer: ``models.precision``).

Asserted per cell: the generator's first layer computed in the precision's dtype (float16 under 16-mixed: the cell
is not bf16 in disguise) and, under 32-true / 64-true, every submodule's output is float32 / float64; the fit takes
3 GAN steps and every optimizer took all of its steps (none skipped by the loss scaler for a non-finite gradient);
every parameter is finite afterwards; every network that trains moved from its initial weights and the frozen ones
did not; every logged metric is finite and the family's losses are among them; parameters (and the EMA generator's)
are float64 under 64-true and float32 otherwise (mixed precision keeps fp32 master weights). After a 64-true fit,
each family's inference entry point (what the sample-grid and quality callbacks call) works in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn
from torch.utils.data import DataLoader

from lightning_gans.models import CGAN, DCGAN, GAN, SGAN, AgeCGAN, CycleGAN, DiscoGAN, GANModule, ProGAN
from lightning_gans.models.gan3d import GAN3D
from lightning_gans.models.options import EMA, Regularisers, Schedule
from lightning_gans.models.srgan import SRGAN
from lightning_gans.networks import (
    DCGANDiscriminator28,
    DCGANGenerator28,
    MLPDiscriminator,
    MLPGenerator,
    ProGANDiscriminator,
    ProGANGenerator,
)
from lightning_gans.networks.age_cgan import AgeDiscriminator, AgeEncoder, AgeGenerator
from lightning_gans.networks.cgan import CGANDiscriminator28, CGANGenerator28
from lightning_gans.networks.face_recognition import FaceEmbedding
from lightning_gans.networks.gan3d import VoxelDiscriminator, VoxelGenerator
from lightning_gans.networks.sgan import SGANDiscriminator28, SGANGenerator28
from lightning_gans.networks.srgan import SRGANDiscriminator, SRResNetGenerator
from lightning_gans.networks.translation import (
    DiscoGANDiscriminator,
    DiscoGANGenerator,
    PatchGANDiscriminator,
    ResnetGenerator,
)

PRECISIONS = ["32-true", "64-true", "bf16-mixed", "16-mixed"]
# The dtype each precision computes a Linear/Conv layer in (autocast for the mixed ones).
COMPUTE_DTYPE = {"32-true": torch.float32, "64-true": torch.float64, "bf16-mixed": torch.bfloat16,
                 "16-mixed": torch.float16}  # fmt: skip
STEPS, BATCH = 3, 4


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks: one intra-op thread is faster on a loaded 2-core machine (no spin-waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sample(module: GANModule) -> torch.Tensor:
    return module.sample(2)


@dataclass
class Case:
    """A family's module and its ``STEPS`` training batches; the optimizer steps per batch (in the order of
    ``trainer.optimizers``), the networks that must move, those that must not, and the losses it must log."""

    module: GANModule
    batches: list
    opt_steps: tuple[int, ...] = (1, 1)  # (G, D): one joint D step
    trained: tuple[str, ...] = ("generator", "discriminator")
    frozen: tuple[str, ...] = ()
    losses: tuple[str, ...] = ("d_loss", "g_loss")
    infer: Callable[[GANModule], torch.Tensor] = _sample  # the inference entry point the callbacks call


REAL_THEN_FAKE = (1, 2)  # (G, D): d_steps="real_then_fake", the Keras-seeded families' default


def _images(channels: int, size: int) -> list[torch.Tensor]:
    return [torch.rand(BATCH, channels, size, size) * 2 - 1 for _ in range(STEPS)]


def _labels(num_classes: int) -> torch.Tensor:
    return torch.arange(BATCH) % num_classes


# ---------------------------------------------------------------------------------------------- the families
def _sample_labelled(module: GANModule) -> torch.Tensor:
    return module.sample(2, labels=torch.tensor([0, 1]))


def _mlp(**kwargs) -> GAN:
    return GAN(MLPGenerator(latent_dim=8, hidden=[16], out_shape=[1, 8, 8]), MLPDiscriminator([1, 8, 8], [16]),
               latent_dim=8, **kwargs)  # fmt: skip


def _gan() -> Case:
    return Case(_mlp(), [(x, _labels(10)) for x in _images(1, 8)])


def _wgan_clip() -> Case:
    return Case(_mlp(loss="wasserstein", regularisers=Regularisers(weight_clip=0.01)), [(x,) for x in _images(1, 8)])


def _r1() -> Case:
    module = _mlp(regularisers=Regularisers(r1_gamma=10.0))
    return Case(module, [(x,) for x in _images(1, 8)], losses=("d_loss", "g_loss", "d_r1"))


def _dcgan(**kwargs) -> DCGAN:
    return DCGAN(DCGANGenerator28(latent_dim=8), DCGANDiscriminator28(dropout=0.0), latent_dim=8, **kwargs)


def _dcgan_ema() -> Case:
    return Case(_dcgan(ema=EMA(decay=0.999)), [(x,) for x in _images(1, 28)])


def _dcgan_simultaneous() -> Case:
    module = _dcgan(schedule=Schedule(update="simultaneous"), ema=EMA(decay=0.999, warmup=True))
    return Case(module, [(x,) for x in _images(1, 28)])


def _wgan_gp() -> Case:
    module = _dcgan(loss="wasserstein", regularisers=Regularisers(gradient_penalty=10.0))
    return Case(module, [(x,) for x in _images(1, 28)], losses=("d_loss", "g_loss", "d_gp"))


def _cgan() -> Case:
    module = CGAN(CGANGenerator28(latent_dim=8), CGANDiscriminator28(), latent_dim=8)
    return Case(module, [(x, _labels(10)) for x in _images(1, 28)], REAL_THEN_FAKE, infer=_sample_labelled)


def _sgan() -> Case:
    module = SGAN(SGANGenerator28(latent_dim=8), SGANDiscriminator28(), latent_dim=8)
    batches = [{"labelled": [x, _labels(10)], "unlabelled": [u]} for x, u in zip(_images(1, 28), _images(1, 28))]
    return Case(module, batches, (1, 2, 1), losses=("d_supervised", "d_loss", "g_loss"))  # G, D real/fake, D sup.


def _progan() -> Case:
    tiny = {"channel_base": 64, "max_channels": 8}
    g = ProGANGenerator(latent_dim=8, resolution=16, channels=1, **tiny)
    d = ProGANDiscriminator(resolution=16, channels=1, **tiny)
    module = ProGAN(g, d, latent_dim=8)  # WGAN-GP + drift (its defaults)
    module.set_growth(1, 0.5)  # 8×8, halfway through the fade-in
    return Case(module, [(x,) for x in _images(1, 16)], losses=("d_loss", "g_loss", "d_gp", "d_drift"))


def _translate(module: CycleGAN) -> torch.Tensor:
    return module.translate(torch.rand(2, 3, 16, 16) * 2 - 1, "AtoB")  # float32 images, as the callbacks pass them


def _cyclegan() -> Case:
    nets = {f"G_{d}": ResnetGenerator(base_channels=4, num_blocks=1) for d in ("AB", "BA")}
    nets.update({f"D_{d}": PatchGANDiscriminator(base_channels=4, num_strided=2) for d in "AB"})
    module = CycleGAN(image_size=16, pool_size=2, **nets)
    return Case(module, [{"A": a, "B": b} for a, b in zip(_images(3, 16), _images(3, 16))], infer=_translate)


def _discogan() -> Case:
    nets = {f"G_{d}": DiscoGANGenerator(gf=4, bottleneck=8, image_size=16) for d in ("AB", "BA")}
    nets.update({f"D_{d}": DiscoGANDiscriminator(df=4, image_size=16) for d in "AB"})
    module = DiscoGAN(image_size=16, **nets)
    return Case(module, [{"A": a, "B": b} for a, b in zip(_images(3, 16), _images(3, 16))], infer=_translate)


def _gan3d() -> Case:
    g = VoxelGenerator(latent_dim=8, resolution=32, channels=[8, 4, 2])
    d = VoxelDiscriminator(resolution=32, channels=[2, 4, 8])
    volumes = [(torch.rand(BATCH, 1, 32, 32, 32) > 0.7).float() for _ in range(STEPS)]
    return Case(GAN3D(g, d, resolution=32, latent_dim=8), volumes, REAL_THEN_FAKE)


class TinyFR(FaceEmbedding):
    """A stand-in face-recognition network (frozen conv features at 8×8) for the identity stage."""

    def __init__(self) -> None:
        super().__init__(input_size=8, resize_mode="bilinear")
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1))


def _age(stage: str) -> Case:
    """Age-cGAN at 16×16; the later stages start from fresh networks (no checkpoint of the earlier stage: a warning)."""
    module = AgeCGAN(
        generator=AgeGenerator(latent_dim=8, image_size=16, base_channels=16, hidden=32),
        discriminator=AgeDiscriminator(image_size=16, base_channels=4),
        encoder=AgeEncoder(latent_dim=8, image_size=16, base_channels=4, hidden=16),
        face_recognition=TinyFR() if stage == "identity" else None,
        stage=stage,
        latent_dim=8,
        encoder_fixed_pairs=8,
    )
    batches = [(x, _labels(6)) for x in _images(3, 16)]
    if stage == "cgan":
        return Case(module, batches, REAL_THEN_FAKE, frozen=("encoder",), infer=_sample_labelled)
    age = _age_faces
    if stage == "encoder":  # E inverts the fixed G
        return Case(module, batches, (1,), ("encoder",), ("generator", "discriminator"), ("e_loss",), age)
    # identity: one optimizer over E and G, FR frozen
    frozen = ("discriminator", "face_recognition")
    return Case(module, batches, (1,), ("generator", "encoder"), frozen, ("fr_loss",), age)


def _age_faces(module: AgeCGAN) -> torch.Tensor:
    return module.age_faces(torch.rand(1, 3, 16, 16) * 2 - 1)  # encode, then G at all six ages


def _sr_generator() -> SRResNetGenerator:
    return SRResNetGenerator(channels=1, features=8, num_blocks=1, upsample_features=16)


def _sr_batches() -> list:
    return [(torch.rand(BATCH, 1, 4, 4) * 2 - 1, hr) for hr in _images(1, 16)]  # (LR 4×4, HR 16×16)


def _upscale(module: SRGAN) -> torch.Tensor:
    return module.upscale(torch.rand(2, 1, 4, 4) * 2 - 1)


def _srgan() -> Case:
    module = SRGAN(_sr_generator(), SRGANDiscriminator(channels=1), content_loss="mse")  # no VGG weights here
    losses = ("d_loss", "g_loss", "g_content", "g_adversarial")
    return Case(module, _sr_batches(), REAL_THEN_FAKE, losses=losses, infer=_upscale)


def _srresnet() -> Case:
    module = SRGAN(_sr_generator(), adversarial=False, content_loss="mse")
    return Case(module, _sr_batches(), (1,), ("generator",), losses=("g_loss", "g_content"), infer=_upscale)


FAMILIES: dict[str, Callable[[], Case]] = {
    "gan": _gan,
    "dcgan_ema": _dcgan_ema,
    "dcgan_simultaneous": _dcgan_simultaneous,
    "cgan": _cgan,
    "sgan": _sgan,
    "wgan_clip": _wgan_clip,
    "wgan_gp": _wgan_gp,
    "r1": _r1,
    "progan": _progan,
    "cyclegan": _cyclegan,
    "discogan": _discogan,
    "gan3d": _gan3d,
    "age_cgan": lambda: _age("cgan"),
    "age_cgan_encoder": lambda: _age("encoder"),
    "age_cgan_identity": lambda: _age("identity"),
    "srgan": _srgan,
    "srresnet": _srresnet,
}


# ---------------------------------------------------------------------------------------------- the matrix
def _precision(precision: str) -> dict:
    """The Trainer argument of ``precision``. On CPU ``precision="16-mixed"`` would become bf16-mixed, so 16-mixed
    passes the plugin itself: fp16 autocast and a GradScaler. Its initial scale is 2**10 instead of torch's 2**16:
    at 2**16 the fp16 backward of these untrained networks overflows and the scaler skips the first 1–5 steps of
    most families (its warm-up, as designed; then they train), which 3 steps would not get past. At 2**10 no step
    may be skipped, so a NaN that no scale avoids fails the cell."""
    if precision != "16-mixed":
        return {"precision": precision}
    return {"plugins": [MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10))]}


def _trainer(precision: str, tmp_path: Path, *callbacks: pl.Callback) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        **_precision(precision),
        max_steps=STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
    )


class _CountSteps(pl.Callback):
    """Optimizer steps taken, per optimizer (a step the loss scaler skips never calls ``optimizer.step``)."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.counts = [0] * len(trainer.optimizers)
        for i, optimizer in enumerate(trainer.optimizers):
            optimizer.register_step_post_hook(lambda *args, i=i: self.counts.__setitem__(i, self.counts[i] + 1))


def _record(outputs: dict[str, set[torch.dtype]], name: str, out: object) -> None:
    tensors = out if isinstance(out, (tuple, list)) else [out]
    dtypes = {t.dtype for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point()}
    if dtypes:
        outputs.setdefault(name, set()).update(dtypes)


def _snapshot(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _change(before: list[torch.Tensor], net: nn.Module) -> float:
    """Σ|θ − θ₀| over the parameters of ``net``, in float64."""
    return sum(float((b.double() - a.double()).abs().sum()) for a, b in zip(before, _snapshot(net)))


@pytest.mark.filterwarnings("ignore:Age-cGAN stage")
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_trains_at_precision(family: str, precision: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    case = FAMILIES[family]()
    module = case.module
    before = {name: _snapshot(getattr(module, name)) for name in case.trained + case.frozen}
    first = next(m for m in module.generator.modules() if any(True for _ in m.parameters(recurse=False)))
    computed: set[torch.dtype] = set()
    first.register_forward_hook(lambda m, args, out: computed.add(out.dtype))  # G's first Linear/Conv layer
    outputs: dict[str, set[torch.dtype]] = {}  # every submodule's floating output dtypes
    for name, sub in module.named_modules():
        if name:
            sub.register_forward_hook(lambda m, args, out, name=name: _record(outputs, name, out))
    steps = _CountSteps()
    trainer = _trainer(precision, tmp_path, steps)
    trainer.fit(module, DataLoader(case.batches, batch_size=None))

    assert trainer.global_step == STEPS and trainer.precision == precision
    assert computed == {COMPUTE_DTYPE[precision]}, f"the generator computed in {computed}"
    if precision in ("32-true", "64-true"):  # no layer silently computes in another dtype
        other = {name: seen for name, seen in outputs.items() if seen != {COMPUTE_DTYPE[precision]}}
        assert not other, f"submodules whose outputs are not {COMPUTE_DTYPE[precision]}: {other}"
    assert steps.counts == [STEPS * k for k in case.opt_steps], "optimizer steps taken (skipped: non-finite grads)"

    dtype = torch.float64 if precision == "64-true" else torch.float32
    wrong = {n: p.dtype for n, p in module.named_parameters() if p.dtype != dtype}
    assert not wrong, f"parameters not {dtype}: {wrong}"
    nonfinite = [n for n, p in module.named_parameters() if not torch.isfinite(p).all()]
    assert not nonfinite, f"non-finite parameters after fit: {nonfinite}"
    ema = module.generator_ema
    assert (ema is not None) == family.startswith("dcgan")
    if ema is not None:  # the EMA copy follows the master weights' dtype, and G's updates
        assert {p.dtype for p in ema.parameters()} == {dtype}
        assert all(torch.isfinite(p).all() for p in ema.parameters())
        assert _change([p.to(dtype) for p in before["generator"]], ema) > 0

    for name in case.trained:
        moved = _change(before[name], getattr(module, name))
        assert moved > 0, f"{name} did not move in {STEPS} steps (Σ|Δθ| = {moved})"
    for name in case.frozen:
        assert _change(before[name], getattr(module, name)) == 0, f"{name} is frozen in this stage but moved"

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    missing = set(case.losses) - set(metrics)
    assert not missing, f"losses not logged: {missing} (logged: {sorted(metrics)})"
    nonfinite_metrics = {k: v for k, v in metrics.items() if not torch.isfinite(torch.tensor(v))}
    assert not nonfinite_metrics, f"non-finite logged metrics: {nonfinite_metrics}"


@pytest.mark.filterwarnings("ignore:Age-cGAN stage")
@pytest.mark.parametrize("family", list(FAMILIES))
def test_inference_after_64_true_fit(family: str, tmp_path: Path) -> None:
    """After a 64-true fit the model is float64: its inference entry points (``sample``, ``translate``, ``upscale``,
    ``age_faces``, what the per-epoch sample-grid and quality callbacks call) make their noise in, or convert the
    float32 images they are given to, the model's dtype. (Mixed precision keeps fp32 weights: nothing to convert.)"""
    torch.manual_seed(0)
    case = FAMILIES[family]()
    _trainer("64-true", tmp_path).fit(case.module, DataLoader(case.batches[:1], batch_size=None))
    out = case.infer(case.module)
    assert out.dtype == torch.float64 and torch.isfinite(out).all()


def test_progan_layers_are_finite_and_exact_under_fp16_autocast() -> None:
    """PixelNorm and MinibatchStdDev compute their statistics in fp32 under autocast: in fp16, ε = 1e-8 rounds to 0,
    so an all-zero pixel (PixelNorm) or a zero group variance (minibatch stddev) gave NaN, and a² overflowed."""
    from lightning_gans.networks.blocks import MinibatchStdDev, PixelNorm

    x = torch.zeros(4, 2, 2, 2)
    x[0, 0, 0, 0] = 300.0  # a² = 90 000 > fp16's 65 504
    x[:, 1, 1, 1] = 0.5  # the same in every sample: zero variance
    for layer in (PixelNorm(), MinibatchStdDev()):
        expected = layer(x)
        half = x.half().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.float16):
            out = layer(half)
        assert out.dtype == torch.float16
        torch.testing.assert_close(out.float(), expected, rtol=2e-3, atol=1e-3)
        out.float().sum().backward()
        assert torch.isfinite(half.grad).all(), type(layer).__name__
