"""``lightning-gans age``: re-render faces at all six ages with a trained Age-cGAN (*GAN Projects* ch. 3).

    lightning-gans age --ckpt runs/age_cgan_wiki_identity/<run>/checkpoints/last.ckpt --input FACE.jpg --out grid.png

Each input face (any RGB picture of a cropped face; resized to the generator's size) is encoded, z₀ = E(x), and
generated at the six age bins 0–18, 19–29, 30–39, 40–49, 50–59, 60+: one grid row per input, six columns.
``--latent-steps N --source-age BIN`` first refines z per image with the paper's identity-preserving optimisation
z* = argmin_z ‖FR(G(z, y₀)) − FR(x)‖₂ (y₀ = the face's own age bin; needs the checkpoint's face-recognition
weights). The checkpoint must come from the encoder or identity stage (a stage-1 encoder is untrained).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.transforms import v2

from lightning_gans.checkpoints import read_checkpoint
from lightning_gans.outputs import make_grid, save_png

AGE_STAGES = ("encoder", "identity")


def load_faces(paths: list[Path], image_size: int, interpolation: str = "nearest") -> torch.Tensor:
    """Pictures → N×3×S×S in [-1, 1] (resized like the datamodule: no crop, nearest by default)."""
    from datamodules._images import DECODE_ERRORS, read_rgb, to_signed_unit

    mode = getattr(v2.InterpolationMode, interpolation.upper())
    transform = v2.Compose([v2.Resize((image_size, image_size), interpolation=mode), to_signed_unit()])
    faces = []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"--input {path} does not exist")
        try:
            faces.append(transform(read_rgb(path)))
        except DECODE_ERRORS as err:
            raise ValueError(f"--input {path} is not a readable image ({type(err).__name__}: {err})") from None
    return torch.stack(faces)


def write_age_grid(
    ckpt: str | Path,
    inputs: list[Path],
    out: str | Path,
    latent_steps: int = 0,
    source_age: int | None = None,
    interpolation: str = "nearest",
) -> Path:
    """Write the N×6 aging grid PNG (row = input face, column = age bin); returns its path."""
    from lightning_gans.workflows.sampling import load_module

    checkpoint = read_checkpoint(ckpt)
    module = load_module(ckpt)
    if not hasattr(module, "age_faces"):
        raise ValueError(f"{ckpt} holds a {type(module).__name__}, not an Age-cGAN (lightning_gans.models.AgeCGAN)")
    trained = checkpoint.get("age_cgan_stage")
    if trained not in AGE_STAGES:
        raise ValueError(
            f"{ckpt} is a stage-{trained} checkpoint: its encoder is untrained. Age faces with a checkpoint of stage "
            "encoder or identity (fit with --model.stage=encoder --model.cgan_ckpt=<this checkpoint>)"
        )
    faces = load_faces(list(inputs), module.generator.image_size, interpolation)
    latents = None
    if latent_steps > 0:
        if source_age is None:
            raise ValueError("--latent-steps needs --source-age (the age bin 0-5 of the input faces)")
        ages = torch.full((faces.shape[0],), source_age, dtype=torch.long)
        latents = module.optimise_latents(faces, ages, latent_steps)
    images = module.age_faces(faces, latents)
    return save_png(make_grid(images.cpu(), nrow=module.num_classes), Path(out))
