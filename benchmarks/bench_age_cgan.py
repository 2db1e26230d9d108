"""Does the Age-cGAN's age label control the output? Stage 1 on synthetic age-dependent faces, measured.

1. Data: ``benchmarks/make_age_faces.py`` faces (written if ``DATA/wiki_crop`` is missing), loaded by the real
   ``WikiFacesDataModule`` at 32×32.
2. Judge: a small CNN age-bin classifier trained on 80 % of the real synthetic faces (seeded split); its accuracy on
   the other 20 % is printed — the ceiling for the generated images.
3. Generator: ``lightning-gans fit --config experiments/age_cgan_synthetic.yaml`` in-process, one CPU thread,
   ``--steps`` GAN steps or ``--minutes`` wall time, whichever comes first.
4. Measurement, on ``--n`` latents z each rendered at all six ages (only the label changes):
   * conditional accuracy: the judge recognises the requested bin (chance 1/6) — trained G vs. untrained G;
   * label effect: mean |G(z, a) − G(z, b)| over a ≠ b (same z) vs. mean |G(z, a) − G(z′, a)| (same age);
   * per-bin mean "hair" brightness (the band above the face, rows 3–8 of 32) for generated and real faces.
5. ``--encoder-steps N``: stage 2 (encoder) from that checkpoint, then real faces encoded and rendered at all six
   ages (``AgeCGAN.age_faces``, what ``lightning-gans age`` draws): judge accuracy on the requested ages, and the
   relative latent error ‖E(G(z, y)) − z‖ / ‖z‖. ``--cgan-ckpt`` reuses a stage-1 checkpoint.

Prints only::

    .venv/bin/python benchmarks/bench_age_cgan.py [--data data/age_faces] [--steps 3000] [--minutes 18] [--n 300]
        [--cgan-ckpt CKPT] [--encoder-steps 600] [--encoder-fixed-pairs 1000|null]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
HAIR_ROWS = slice(3, 9)  # 32-px rows covering the hair cap of make_age_faces' faces


def age_judge() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 6),
    )


def load_all(datamodule) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for x, y in torch.utils.data.DataLoader(datamodule._load(), batch_size=256):
        images.append(x)
        labels.append(y)
    return torch.cat(images), torch.cat(labels)


def train_judge(images: torch.Tensor, labels: torch.Tensor, epochs: int = 4) -> tuple[nn.Module, float]:
    """The judge and its held-out accuracy (80/20 seeded split, seeded initialisation and batch order)."""
    torch.manual_seed(0)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(images))
    train, held = order[:cut], order[cut:]
    judge = age_judge()
    optimizer = torch.optim.Adam(judge.parameters(), lr=2e-3)
    for _ in range(epochs):
        for batch in train[torch.randperm(len(train))].split(64):
            loss = F.cross_entropy(judge(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    judge.eval()
    with torch.no_grad():
        accuracy = (judge(images[held]).argmax(1) == labels[held]).float().mean().item()
    return judge, accuracy


@torch.no_grad()
def measure(module, judge: nn.Module, n: int) -> dict:
    torch.manual_seed(1)
    z = module.sample_noise(n)
    ages = torch.arange(6)
    grid = torch.stack([module.sample(n, noise=z, labels=torch.full((n,), a)) for a in ages])  # 6×n×3×32×32
    predicted = judge(grid.flatten(0, 1)).argmax(1).view(6, n)
    accuracy = (predicted == ages[:, None]).float().mean().item()
    label_effect = torch.stack([(grid[a] - grid[b]).abs().mean() for a in range(6) for b in range(6) if a != b]).mean()
    latent_effect = (grid - grid.roll(1, dims=1)).abs().mean()
    hair = grid[:, :, :, HAIR_ROWS, :].mean(dim=(1, 2, 3, 4))
    return {
        "accuracy": accuracy,
        "label_effect": label_effect.item(),
        "latent_effect": latent_effect.item(),
        "hair": hair.tolist(),
    }


@torch.no_grad()
def measure_aging(module, judge: nn.Module, faces: torch.Tensor) -> dict:
    """Real faces encoded (z = E(x)) and rendered at all six ages: does the judge see the requested age?"""
    aged = module.age_faces(faces).view(len(faces), 6, *faces.shape[1:])
    predicted = judge(aged.flatten(0, 1)).argmax(1).view(len(faces), 6)
    accuracy = (predicted == torch.arange(6)).float().mean().item()
    torch.manual_seed(2)
    z, ages = module.sample_noise(len(faces)), torch.randint(0, 6, (len(faces),))
    recovered = module.encode(module.sample(len(faces), noise=z, labels=ages))
    return {"accuracy": accuracy, "latent_error": ((recovered - z).norm(dim=1) / z.norm(dim=1)).mean().item()}


def fit(runs: Path, data: Path, *options: str) -> tuple[Path, int, float]:
    """``lightning-gans fit`` of age_cgan_synthetic.yaml into ``runs``: (last.ckpt, GAN steps, minutes)."""
    from lightning_gans.cli import main as cli_main

    os.environ["LIGHTNING_GANS_RUNS"] = str(runs)
    config = str(REPO / "experiments" / "age_cgan_synthetic.yaml")
    start = time.perf_counter()
    cli_main(["fit", "--config", config, f"--data.data_dir={data}", "--trainer.enable_progress_bar=false", *options])
    minutes = (time.perf_counter() - start) / 60
    ckpt = max(runs.glob("age_cgan_synthetic/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    return ckpt, torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"], minutes


def identity_stage(args: argparse.Namespace, runs: Path, encoder_ckpt: Path, judge: nn.Module) -> None:
    """Stage 3 with an identity network trained on the synthetic people (``face_identity.py``), measured before
    (the stage-2 checkpoint) and after on ``args.n`` faces of people that neither network has seen."""
    from face_identity import export, identity_report, strangers, train_identity

    from lightning_gans.networks.face_recognition import UserFaceEmbedding
    from lightning_gans.workflows.sampling import load_module

    start = time.perf_counter()
    net, check = train_identity(args.identity_persons, args.identity_epochs)
    fr_path = export(net, runs / "face_identity.pt")
    minutes = (time.perf_counter() - start) / 60
    print(
        f"\nidentity network: {args.identity_persons} training people × 6 ages, {minutes:.1f} min; "
        f"on {args.identity_persons // 3} new people: cosine same person at another age "
        f"{check['cos_same_person_other_age']:.3f}, other people {check['cos_other_person']:.3f}, rank-1 "
        f"identification across ages {check['rank1_across_ages']:.3f}; TorchScript {fr_path}"
    )
    fr = {
        "class_path": "lightning_gans.networks.face_recognition.UserFaceEmbedding",
        "init_args": {"path": str(fr_path), "input_size": 32, "input_range": "signed"},
    }
    options = ["--model.stage=identity", f"--model.encoder_ckpt={encoder_ckpt}", "--trainer.callbacks=[]"]
    options += [f"--model.face_recognition={json.dumps(fr)}", f"--trainer.max_steps={args.identity_steps}"]
    identity_ckpt, steps, minutes = fit(runs, args.data, *options)
    print(f"stage 3 (identity): {steps} steps in {minutes:.1f} min wall; checkpoint {identity_ckpt}")
    faces, ages = strangers(args.n)
    print(
        "\n| Age-cGAN | identity cosine, own age | identity cosine, other ages | judge accuracy, requested age | "
        "pixel L1, own age |\n|---|---|---|---|---|"
    )
    stage2 = load_module(encoder_ckpt)
    embedding = UserFaceEmbedding(**fr["init_args"])  # the FR stage 3 trained with, for the latent optimisation
    rows = [
        ("stage 2 (before stage 3)", identity_report(stage2, net, judge, faces, ages)),
        (f"stage 3, {steps} steps (E and G updated: the chapter)", identity_report(load_module(identity_ckpt), net,
                                                                                   judge, faces, ages)),
        (f"stage 2 + the paper's latent optimisation (G, E fixed; {args.latent_steps} steps per face)",
         identity_report(stage2, net, judge, faces, ages, stage2.optimise_latents(faces, ages, args.latent_steps,
                                                                                  fr=embedding))),
    ]  # fmt: skip
    for name, r in rows:
        print(
            f"| {name} | {r['cos_own_age']:.3f} | {r['cos_other_ages']:.3f} | {r['judge_accuracy']:.3f} | "
            f"{r['l1_own_age']:.3f} |"
        )
    print(
        f"| reference: real pictures, same person at another age / other people | "
        f"{check['cos_same_person_other_age']:.3f} | {check['cos_other_person']:.3f} (other people) | — | — |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "age_faces")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=18.0)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bench_age_cgan")
    parser.add_argument("--cgan-ckpt", type=Path, default=None, help="reuse a stage-1 checkpoint (skip stage 1)")
    parser.add_argument("--encoder-steps", type=int, default=0, help="then train stage 2 (encoder) this long")
    parser.add_argument("--encoder-fixed-pairs", default="1000", help="the chapter's 1000, or null: fresh pairs")
    parser.add_argument("--identity-steps", type=int, default=0, help="then stage 3 (identity) this long")
    parser.add_argument("--identity-persons", type=int, default=600, help="people the identity network learns")
    parser.add_argument("--identity-epochs", type=int, default=12)
    parser.add_argument("--latent-steps", type=int, default=50, help="the paper's per-face latent optimisation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("WANDB_MODE", "disabled")
    from make_age_faces import make_age_faces

    from datamodules.wiki_faces import AGE_BIN_NAMES, WikiFacesDataModule
    from lightning_gans.models import AgeCGAN
    from lightning_gans.networks.age_cgan import AgeDiscriminator, AgeGenerator
    from lightning_gans.workflows.sampling import load_module

    if not (args.data / "wiki_crop" / "wiki.mat").is_file():
        make_age_faces(args.data)
    datamodule = WikiFacesDataModule(str(args.data), image_size=32, interpolation="bilinear", download=False)
    images, labels = load_all(datamodule)
    counts = torch.bincount(labels, minlength=6).tolist()
    print(f"data: {len(images)} faces, per bin {counts}, dropped {datamodule.dropped}")
    judge, judge_accuracy = train_judge(images, labels)
    print(f"judge: held-out age-bin accuracy on real faces {judge_accuracy:.3f}")
    real_hair = [images[labels == a][:, :, HAIR_ROWS, :].mean().item() for a in range(6)]
    runs = args.runs / time.strftime("%Y%m%d-%H%M%S")

    results = []
    ckpt = args.cgan_ckpt
    if ckpt is None:
        untrained = AgeCGAN(
            generator=AgeGenerator(image_size=32, base_channels=64, hidden=512),
            discriminator=AgeDiscriminator(image_size=32, base_channels=32),
        )
        results.append(("untrained", measure(untrained, judge, args.n)))
        limit = f"00:00:{int(args.minutes):02d}:{int(60 * (args.minutes % 1)):02d}"
        ckpt, steps, minutes = fit(runs, args.data, f"--trainer.max_steps={args.steps}", f"--trainer.max_time={limit}")
        print(f"\nstage 1 (cgan): {steps} GAN steps in {minutes:.1f} min wall, 1 thread; checkpoint {ckpt}")
    after = measure(load_module(ckpt), judge, args.n)
    results.append(("trained", after))
    print(
        "| generator | judge accuracy on the requested age (chance 0.167) | mean abs diff, label changed | "
        "mean abs diff, z changed |"
    )
    print("|---|---|---|---|")
    for name, result in results:
        print(f"| {name} | {result['accuracy']:.3f} | {result['label_effect']:.3f} | {result['latent_effect']:.3f} |")
    print("\n| age bin | " + " | ".join(AGE_BIN_NAMES) + " |\n|---|" + "---|" * 6)
    print("| hair brightness, real | " + " | ".join(f"{v:+.2f}" for v in real_hair) + " |")
    print("| hair brightness, generated | " + " | ".join(f"{v:+.2f}" for v in after["hair"]) + " |")

    if args.encoder_steps > 0:
        options = ["--model.stage=encoder", f"--model.cgan_ckpt={ckpt}", f"--trainer.max_steps={args.encoder_steps}"]
        options.append(f"--model.encoder_fixed_pairs={args.encoder_fixed_pairs}")
        encoder_ckpt, steps, minutes = fit(runs, args.data, *options, "--trainer.callbacks=[]")
        faces = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(3))[: args.n]]
        aging = measure_aging(load_module(encoder_ckpt), judge, faces)
        print(f"\nstage 2 (encoder): {steps} steps in {minutes:.1f} min wall; checkpoint {encoder_ckpt}")
        print(f"relative latent error ‖E(G(z, y)) − z‖ / ‖z‖ on fresh pairs: {aging['latent_error']:.3f}")
        print(f"real faces encoded and rendered at all six ages: judge accuracy {aging['accuracy']:.3f} (chance 0.167)")
        if args.identity_steps > 0:
            identity_stage(args, runs, encoder_ckpt, judge)


if __name__ == "__main__":
    main()
