"""A small face-identity (FR) network for the synthetic faces of ``make_age_faces.py``: Age-cGAN's stage 3 with an
identity model that really recognises these people (the ImageNet / FaceNet weights cannot be downloaded here).

* Data: ``make_age_faces.identity_faces`` — ``persons`` random people, each drawn at all six age bins (only hair
  colour, wrinkles and skin darkening change with age), 64² resized to the model's size as the datamodule does
  (bilinear, antialiased), in [-1, 1]. Training people and test people come from different seeds, and both differ
  from the Age-cGAN data set's people (seed 0), so the network is tested, like a real FR model, on strangers.
* Network: 3 stride-2 convs (32/64/128, BN, ReLU) → flatten → Linear 128 → L2-normalised embedding; trained as a
  cosine-softmax classifier over the training people (NormFace, Wang et al. 2017: logits = s·cos(embedding, class
  weight), s = 16), Adam 1e-3, batch 64. Age is never a target: the embedding has to ignore it to classify a person
  drawn at six ages.
* Checks on the test people (``verification``): mean cosine between two pictures of the same person at different
  ages, mean cosine between different people, and rank-1 identification across ages (each picture against the
  gallery of every person drawn at another age).
* Export: TorchScript (``torch.jit.trace``) for ``lightning_gans.networks.face_recognition.UserFaceEmbedding``
  ({path, input_size, input_range: signed}), the face-recognition option of ``age_cgan_wiki_identity.yaml``.

Used by ``benchmarks/bench_age_cgan.py --identity-steps N``; also runs alone::

    .venv/bin/python benchmarks/face_identity.py --out runs/face_identity.pt [--persons 600] [--epochs 12]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_age_faces import identity_faces  # noqa: E402

TRAIN_SEED, TEST_SEED = 1001, 1002  # people unlike the Age-cGAN data set's (seed 0) and unlike each other
SCALE = 16.0  # NormFace's cosine-softmax scale


class IdentityNet(nn.Module):
    """32² (or 64²) face in [-1, 1] → 128-d embedding (not normalised: UserFaceEmbedding normalises)."""

    def __init__(self, image_size: int = 32, dim: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((3, 32), (32, 64), (64, 128)):
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * (image_size // 8) ** 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def faces_tensor(persons: int, seed: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images N×3×S×S in [-1, 1], person ids, age bins) of ``identity_faces`` at ``image_size``."""
    images, people, ages = identity_faces(persons, seed)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    if x.shape[-1] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255) / 127.5 - 1, torch.from_numpy(people), torch.from_numpy(ages)


def train_identity(
    persons: int = 600, epochs: int = 12, image_size: int = 32, seed: int = 0
) -> tuple[IdentityNet, dict[str, float]]:
    """The trained network (eval mode) and its ``verification`` numbers on ``persons // 3`` test people."""
    torch.manual_seed(seed)
    x, people, _ = faces_tensor(persons, TRAIN_SEED, image_size)
    net, classes = IdentityNet(image_size), nn.Parameter(torch.randn(persons, 128) * 0.01)
    optimizer = torch.optim.Adam([*net.parameters(), classes], lr=1e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(64):
            cosine = F.normalize(net(x[batch]), dim=1) @ F.normalize(classes, dim=1).T
            loss = F.cross_entropy(SCALE * cosine, people[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    return net, verification(net, *faces_tensor(max(persons // 3, 2), TEST_SEED, image_size))


@torch.no_grad()
def embed(net: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    return F.normalize(torch.cat([net(chunk) for chunk in images.split(batch_size)]), dim=1)


@torch.no_grad()
def verification(net: nn.Module, images: torch.Tensor, people: torch.Tensor, ages: torch.Tensor) -> dict[str, float]:
    """Same-person-other-age and different-person mean cosines; rank-1 identification across ages."""
    e = embed(net, images)
    cos = e @ e.T
    same = people[:, None] == people[None, :]
    other_age = ages[:, None] != ages[None, :]
    hits = []
    for a in range(6):
        for b in range(6):
            if a != b:  # probes at age a against the gallery of every person at age b
                probe, gallery = ages == a, ages == b
                nearest = cos[probe][:, gallery].argmax(1)
                hits.append((people[gallery][nearest] == people[probe]).float())
    return {
        "cos_same_person_other_age": cos[same & other_age].mean().item(),
        "cos_other_person": cos[~same].mean().item(),
        "rank1_across_ages": torch.cat(hits).mean().item(),
    }


def strangers(n: int, image_size: int = 32, seed: int = 1003) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` faces of people seen neither by the identity network nor by Age-cGAN, each at one random age bin:
    (images in [-1, 1], age bins)."""
    images, _, ages = faces_tensor(n, seed, image_size)
    pick = torch.arange(n) * 6 + torch.randint(0, 6, (n,), generator=torch.Generator().manual_seed(seed))
    return images[pick], ages[pick]


@torch.no_grad()
def identity_report(
    module,
    net: nn.Module,
    judge: nn.Module,
    faces: torch.Tensor,
    ages: torch.Tensor,
    latents: torch.Tensor | None = None,
) -> dict:
    """Faces encoded (or ``latents``) and re-rendered at all six ages by an Age-cGAN ``module`` (``age_faces``): the
    identity network's cosine between each input face and its re-rendering at its own age and at the five other
    ages, the age judge's accuracy on the requested ages, and the pixel L1 of the own-age re-rendering."""
    n = len(faces)
    aged = module.age_faces(faces, latents).view(n, 6, *faces.shape[1:])
    cos = (embed(net, aged.flatten(0, 1)).view(n, 6, -1) * embed(net, faces)[:, None]).sum(-1)  # n × 6
    own = torch.zeros(n, 6, dtype=torch.bool)
    own[torch.arange(n), ages] = True
    predicted = judge(aged.flatten(0, 1)).argmax(1).view(n, 6)
    return {
        "cos_own_age": cos[own].mean().item(),
        "cos_other_ages": cos[~own].mean().item(),
        "judge_accuracy": (predicted == torch.arange(6)).float().mean().item(),
        "l1_own_age": (aged[own] - faces).abs().mean().item(),
    }


def export(net: nn.Module, path: Path, image_size: int = 32) -> Path:
    """TorchScript file for ``UserFaceEmbedding(path, input_size=image_size, input_range="signed")``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # torch 2.14 marks jit.trace deprecated; UserFaceEmbedding loads TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.trace(net.eval(), torch.zeros(2, 3, image_size, image_size)).save(str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="TorchScript file to write")
    parser.add_argument("--persons", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    net, result = train_identity(args.persons, args.epochs, args.image_size)
    print({key: round(value, 3) for key, value in result.items()})
    print(f"wrote {export(net, args.out, args.image_size)}")


if __name__ == "__main__":
    main()
