"""2-process CPU (gloo) fits through the CLI, one experiment per model family: ``gan_ddp`` keeps the ranks' weights
bit-identical whatever the family's update does — shared-weight optimizers (SGAN), the double backward of a
gradient penalty (WGAN-GP, ProGAN), weight clipping (WGAN), four networks (CycleGAN, DiscoGAN), a D-accuracy gate
reduced over ranks (3D-GAN), EMA of G (DCGAN recommended), progressive growth (ProGAN).

The plain GAN (``gan_mnist``) and ``dcgan_mnist`` are covered by
``test_training.py::test_ddp_two_processes_keep_parameters_identical``; the exactness of the averaged gradients
against one process by ``test_ddp.py``. Each case here costs one 2-process CLI start (~10-20 s).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from ddp_cli import TWO_CPU_PROCESSES, assert_ranks_identical_with_own_noise, two_process_fit

STEPS = 3
# ProGAN grows from 4×4 within the fit, with per-resolution batch sizes (per process): images_shown counts both
# ranks, so step 0 trains 4×4 on 2 × 8 images, steps 1 and 2 fade 8×8 in on 2 × 4 each, and the checkpoint after
# the third step holds 32 images, α = (32 − 16) / 64 = 0.25.
GROWTH = (
    '--trainer.callbacks+={"class_path": "lightning_gans.callbacks.ProgressiveGrowing", '
    '"init_args": {"images_per_phase": 16, "fade_in_images": 64, "batch_sizes": {"4": 8, "8": 4}}}'
)

# family id → (experiment, per-rank batch, extra flags). Batches: ≥ 2 for BatchNorm in train mode, a multiple of
# ProGAN's minibatch-stddev group (4), within each rank's share of the factory data with drop_last.
FAMILIES = {
    "dcgan_ema": ("dcgan_mnist_recommended", 8, []),
    "cgan": ("cgan_mnist", 8, []),
    # 2 batches per epoch: the epoch-end validation (val_accuracy, sync_dist) runs at step 2, and Lightning's
    # sanity check before the fit; both under DDP.
    "sgan": ("sgan_mnist", 8, ["--data.batches_per_epoch=2"]),
    "wgan_gp": ("wgan_gp_mnist", 8, []),
    "wgan_clip": ("wgan_mnist", 8, []),
    "progan": ("progan_mnist", 8, [GROWTH]),
    "cyclegan": ("cyclegan_mnist_edges", 4, []),
    "discogan": ("discogan_mnist_edges", 4, []),
    # 20 shapes: 10 per rank, 2 batches of 4 (drop_last). A gate D passes at once: D steps at step 0 (no accuracy
    # yet), then only measures (no grad) on the counts summed over both ranks, while G keeps stepping.
    "gan3d": ("gan3d_shapes32", 4, ["--model.d_accuracy_gate=0.01"]),
    "age_cgan": ("age_cgan_synthetic", 2, []),  # 14 usable faces: 7 per rank
    "srgan": ("srgan_mnist", 4, []),
}


@pytest.mark.parametrize(("experiment", "batch", "extra"), FAMILIES.values(), ids=FAMILIES.keys())
def test_two_process_fit_keeps_ranks_identical(
    data_root: Path, tmp_path: Path, experiment: str, batch: int, extra: list[str]
) -> None:
    start = time.monotonic()
    proc, run, rows = two_process_fit(experiment, data_root, tmp_path, STEPS, batch, *TWO_CPU_PROCESSES, *extra)
    print(f"{experiment}: {time.monotonic() - start:.1f} s")
    assert_ranks_identical_with_own_noise(rows)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["global_step"] == STEPS
    assert "strategy 'ddp' → 'gan_ddp'" in proc.stderr + proc.stdout
    if experiment == "sgan_mnist":  # the epoch-end validation ran and its reduced accuracy was logged
        assert any("val_accuracy" in r for r in rows if r.get("kind") == "train_epoch")
    if experiment == "gan3d_shapes32":  # epoch 0 = steps 0 (D updated) and 1 (gate closed), epoch 1 = step 2
        assert [r["d_updated"] for r in rows if r.get("kind") == "train_epoch"] == [0.5, 0.0]
    if experiment == "progan_mnist":  # the fit grew: the checkpoint is mid-way through the 8×8 fade-in
        state = ckpt["state_dict"]
        assert int(state["images_shown"]) == 2 * 8 + 2 * 2 * 4
        assert int(state["resolution_level"]) == 1 and float(state["fade_in_alpha"]) == 0.25
