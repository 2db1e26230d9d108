"""Age-cGAN (Antipov et al. 2017, "Face Aging with Conditional GANs") as in *GAN Projects* ch. 3.

Three stages, chosen by ``stage``; each is its own ``fit`` (own optimizers, resumable with ``--ckpt_path``) and
later stages load the earlier stage's checkpoint by path:

1. ``stage="cgan"`` — the conditional GAN on (face, age bin) batches, the base loop with the chapter's order
   (``d_steps="real_then_fake"``): D on (real, true ages) → 1, D on (G(z, same ages), same ages) → 0, with D's
   fakes made by G in inference mode (Keras ``predict``: dropout off), then G through D with fresh z and uniform
   random ages → 1. BCE (non-saturating); Adam 2e-4, β (0.5, 0.999), ε 1e-7 (the chapter's ``10e-8``).
2. ``stage="encoder"`` — E learns to invert G: x = G(z, y) with G fixed (inference mode), one E step on
   mean_batch ‖E(x) − z‖₂ (Keras ``'adam'``: lr 1e-3, ε 1e-7). ``encoder_fixed_pairs=1000`` reuses the chapter's
   1,000 fixed (z, y) pairs (a seeded buffer, saved in checkpoints), taken cyclically batch by batch; ``null``
   draws fresh pairs every batch. G and D come from ``cgan_ckpt``.
3. ``stage="identity"`` — identity-preserving optimisation: mean_batch ‖FR(G(E(x), y)) − FR(x)‖₂ on real faces x
   with their *true* age bins y, updating E and G with one Adam (2e-4, 0.5, 0.999, ε 1e-7), as the chapter's code
   does; FR is frozen (``networks/face_recognition.py``: a torchvision ImageNet backbone or your face-embedding
   model; both images through FR's own preprocessing). G and E come from ``encoder_ckpt``. The paper's variant,
   per-image latent optimisation z* = argmin_z ‖FR(G(z, y₀)) − FR(x)‖ with G and E fixed, is :meth:`optimise_latents`
   (``lightning-gans age --latent-steps N``).

A ``null`` checkpoint path starts the stage from freshly initialised networks with a warning (so every stage runs
on its own, e.g. in the generic experiment test); a checkpoint of the wrong stage is refused. FR is not part of the
LightningModule's state: its (ImageNet) weights load at the start of the identity stage, and a missing file stops
there with one clear error. Checkpoints record their stage (``age_cgan_stage``).

Book bugs fixed (reference "Bugs and ambiguities"): real faces scaled ``/255`` into FR while G's are in [-1, 1]
(one preprocessing for both); stage 2 overwrote the real ages stage 3 pairs with faces (stage 3 reads the batch's
own ages); ``len(set(age_cat))`` classes (always 6); ``encoder_losses`` never appended (losses are logged).

Aging: :meth:`age_faces` encodes faces and renders each at all six ages (``lightning-gans age``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lightning_gans.compat import attached_trainer
from lightning_gans.errors import ConfigError
from lightning_gans.models._keras_predict import eval_mode
from lightning_gans.models.base import Batch
from lightning_gans.models.cgan import CGAN, check_labels
from lightning_gans.networks.age_cgan import AgeDiscriminator, AgeEncoder, AgeGenerator

STAGES = ("cgan", "encoder", "identity")


def _chapter_adam(params: Any) -> torch.optim.Optimizer:
    """The chapter's Adam(lr 0.0002, β1 0.5, β2 0.999, epsilon 10e-8 = 1e-7) for D, G and the FR model."""
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), eps=1e-7)


def _keras_default_adam(params: Any) -> torch.optim.Optimizer:
    """Keras' ``'adam'`` string (the chapter's encoder): lr 1e-3, β (0.9, 0.999), epsilon 1e-7."""
    return torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7)


class AgeCGAN(CGAN):
    """Age-cGAN: conditional GAN, encoder and identity-preserving optimisation (see module docstring)."""

    conditional = True

    def __init__(
        self,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        encoder: nn.Module | None = None,
        face_recognition: nn.Module | None = None,
        stage: Literal["cgan", "encoder", "identity"] = "cgan",
        cgan_ckpt: str | None = None,
        encoder_ckpt: str | None = None,
        optimizer_e: OptimizerCallable = _keras_default_adam,
        optimizer_identity: OptimizerCallable = _chapter_adam,
        encoder_fixed_pairs: int | None = 1000,
        encoder_pairs_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
        if encoder_fixed_pairs is not None and encoder_fixed_pairs < 1:
            raise ValueError(f"encoder_fixed_pairs must be >= 1 (or null for fresh pairs), got {encoder_fixed_pairs}")
        latent_dim = kwargs.get("latent_dim", 100)
        kwargs.setdefault("optimizer_g", _chapter_adam)
        kwargs.setdefault("optimizer_d", _chapter_adam)
        generator = generator or AgeGenerator(latent_dim=latent_dim)
        image_size = getattr(generator, "image_size", 64)
        discriminator = discriminator or AgeDiscriminator(num_classes=generator.num_classes, image_size=image_size)
        modules = (encoder, face_recognition)
        # save_hyperparameters (in the base) reads these locals; modules built in Python are not config values
        # (under LightningCLI the config's class_path dicts are saved instead, so `sample`/`age` can rebuild them).
        encoder = face_recognition = None
        super().__init__(generator=generator, discriminator=discriminator, **kwargs)
        encoder, face_recognition = modules
        self.encoder = encoder or AgeEncoder(latent_dim=latent_dim, image_size=image_size)
        if getattr(self.encoder, "latent_dim", latent_dim) != latent_dim:
            raise ValueError(f"the encoder outputs latent_dim={self.encoder.latent_dim}, G expects {latent_dim}")
        # Not a registered submodule: FR's frozen (ImageNet) weights stay out of checkpoints and load at stage start.
        object.__setattr__(self, "face_recognition", face_recognition)
        self.stage = stage
        self.optimizer_e_factory, self.optimizer_identity_factory = optimizer_e, optimizer_identity
        if encoder_fixed_pairs is not None:
            seeded = torch.Generator().manual_seed(encoder_pairs_seed)
            z = torch.randn(encoder_fixed_pairs, latent_dim, generator=seeded) * self.hparams.noise_std
            y = torch.randint(0, self.num_classes, (encoder_fixed_pairs,), generator=seeded)
            self.register_buffer("encoder_pairs_z", z)
            self.register_buffer("encoder_pairs_y", y)

    # ------------------------------------------------------------------ stage start: weights of earlier stages, FR
    def setup(self, stage: str) -> None:
        """Load the earlier stage's networks (before Lightning restores a resumed checkpoint) and FR's weights."""
        if stage != "fit" or getattr(self, "_stage_loaded", False):
            return
        self._stage_loaded = True
        if self.stage == "encoder":
            self._load_earlier("cgan_ckpt", ("generator", "discriminator"), ("cgan", "encoder", "identity"))
        elif self.stage == "identity":
            self._load_earlier("encoder_ckpt", ("generator", "discriminator", "encoder"), ("encoder", "identity"))
            if self.face_recognition is None:
                raise ConfigError(
                    "stage identity needs a face-recognition network: set model.face_recognition (e.g. "
                    "lightning_gans.networks.face_recognition.TorchvisionFaceEmbedding; age_cgan_wiki_identity.yaml)"
                )
            if hasattr(self.face_recognition, "load"):
                self.face_recognition.load()
            self.face_recognition.requires_grad_(False).eval()

    def _load_earlier(self, option: str, modules: tuple[str, ...], accepted: tuple[str, ...]) -> None:
        path = self.hparams.get(option)
        if path is None:
            rank_zero_warn(
                f"Age-cGAN stage {self.stage}: {option} is null, so {', '.join(modules)} start freshly initialised "
                f"(fine for a smoke test; for real results pass --model.{option}=<checkpoint of the earlier stage>)"
            )
            return
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Age-cGAN stage {self.stage}: {option} {path} does not exist")
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        trained = checkpoint.get("age_cgan_stage")
        if trained not in accepted:
            raise ConfigError(
                f"Age-cGAN stage {self.stage}: {option} {path} is a stage-{trained} checkpoint; it needs one of stage "
                f"{' or '.join(accepted)}"
            )
        state = checkpoint["state_dict"]
        for name in modules:
            prefix = f"{name}."
            getattr(self, name).load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.stage == "identity":
            self.face_recognition.to(self.device, self.dtype)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["age_cgan_stage"] = self.stage

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trained = checkpoint.get("age_cgan_stage", self.stage)
        if attached_trainer(self) is not None and trained != self.stage:
            option = "cgan_ckpt" if self.stage == "encoder" else "encoder_ckpt"
            raise ConfigError(
                f"--ckpt_path resumes a stage-{trained} run, but this run is stage {self.stage}: start the stage "
                f"from that checkpoint with --model.{option}=<path> instead"
            )
        super().on_load_checkpoint(checkpoint)

    # ------------------------------------------------------------------ optimisers and the per-stage loop
    def configure_optimizers(self) -> Any:
        if self.stage == "cgan":
            return super().configure_optimizers()
        if self.stage == "encoder":
            return self.optimizer_e_factory(self.encoder.parameters())
        return self.optimizer_identity_factory([*self.encoder.parameters(), *self.generator.parameters()])

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        if self.stage == "cgan":
            return super().training_step(batch, batch_idx)
        self._gan_step(batch, self._stage_update)
        return None

    def _stage_update(self, batch: Batch) -> dict:
        """The one optimizer step of the encoder (``e_loss``) or identity (``fr_loss``) stage."""
        if self.stage == "encoder":
            name, loss = "e_loss", self.encoder_loss(batch)
        else:
            name, loss = "fr_loss", self.identity_loss(batch)
        self._optimize(self.optimizers(), loss, self.regularisers.gradient_clip_g, name)
        return {name: loss.detach()}

    def encoder_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, ages) for one encoder step: the next ``n`` of the fixed pairs (cyclically), or fresh draws."""
        if self.hparams.encoder_fixed_pairs is None:
            return self.sample_noise(n), self.random_labels(n)
        total = self.encoder_pairs_z.shape[0]
        index = (self.gan_step * n + torch.arange(n, device=self.device)) % total
        return self.encoder_pairs_z[index], self.encoder_pairs_y[index]

    def encoder_loss(self, batch: Batch) -> torch.Tensor:
        """mean_batch ‖E(G(z, y)) − z‖₂ with G fixed in inference mode (the chapter's ``generator.predict``)."""
        z, ages = self.encoder_pairs(self._batch_size(batch))
        with torch.no_grad(), eval_mode(self.generator):
            fakes = self.generator(z, ages)
        return (self.encoder(fakes) - z).norm(dim=1).mean()

    def identity_loss(self, batch: Batch) -> torch.Tensor:
        """mean_batch ‖FR(G(E(x), y)) − FR(x)‖₂ on real faces x and their own age bins y."""
        real, ages = self.real_samples(batch), self._labels(batch)
        reconstruction = self.generator(self.encoder(real), ages)
        with torch.no_grad():
            target = self.face_recognition(real)
        return (self.face_recognition(reconstruction) - target).norm(dim=1).mean()

    # ------------------------------------------------------------------ aging
    @torch.no_grad()
    def encode(self, faces: torch.Tensor) -> torch.Tensor:
        """Initial latent approximation z₀ = E(x) (inference mode)."""
        with eval_mode(self.encoder) as encoder:
            return encoder(faces.to(self.device, self.dtype))

    def optimise_latents(
        self, faces: torch.Tensor, ages: torch.Tensor, steps: int, lr: float = 0.01, fr: nn.Module | None = None
    ) -> torch.Tensor:
        """The paper's identity-preserving step: z* = argmin_z ‖FR(G(z, y₀)) − FR(x)‖₂ from z₀ = E(x), per image,
        G and E fixed (Adam on z, ``steps`` steps). ``fr`` defaults to the module's face-recognition network."""
        fr = fr or self.face_recognition
        if fr is None:
            raise ValueError("latent optimisation needs a face-recognition network (model.face_recognition)")
        if hasattr(fr, "load"):
            fr.load()
        faces = faces.to(self.device, self.dtype)
        ages = check_labels(ages, faces.shape[0], self.num_classes, self.device)
        z = self.encode(faces).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        with torch.no_grad():
            target = fr(faces)
        with eval_mode(self.generator) as generator:
            for _ in range(steps):
                loss = (fr(generator(z, ages)) - target).norm(dim=1).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return z.detach()

    @torch.no_grad()
    def age_faces(self, faces: torch.Tensor, latents: torch.Tensor | None = None) -> torch.Tensor:
        """Each face re-rendered at all six ages: (N·6) images, row i = face i at ages 0-18 … 60+."""
        z = self.encode(faces) if latents is None else latents.to(self.device, self.dtype)
        ages = torch.arange(self.num_classes, device=self.device).repeat(z.shape[0])
        return self.sample(len(ages), noise=z.repeat_interleave(self.num_classes, dim=0), labels=ages)
