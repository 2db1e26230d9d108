"""``lightning-gans interpolate``: slerp/lerp latents, the strip PNG and the GIF for any GANModule checkpoint."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import imageio.v2 as imageio
import pytest
import torch
from PIL import Image

from lightning_gans.cli import main
from lightning_gans.workflows.interpolation import interpolation_latents, slerp

REPO = Path(__file__).resolve().parents[1]


def test_slerp_keeps_the_norm_and_hits_both_ends() -> None:
    z0, z1 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    path = interpolation_latents(z0, z1, 3, "slerp")[0]
    torch.testing.assert_close(path[0], z0[0])
    torch.testing.assert_close(path[-1], z1[0])
    torch.testing.assert_close(path[1], torch.tensor([1 / math.sqrt(2), 1 / math.sqrt(2)]))  # on the unit circle
    torch.testing.assert_close(interpolation_latents(z0, z1, 3, "linear")[0, 1], torch.tensor([0.5, 0.5]))
    # Gaussian latents in 128-d: slerp keeps the norm (≈ √128), the straight line's midpoint is ≈ 1/√2 as long.
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 128, generator=g), torch.randn(64, 128, generator=g)
    mid_s = slerp(a, b, torch.tensor([0.5]))[:, 0]
    mid_l = interpolation_latents(a, b, 3, "linear")[:, 1]
    ratio_s = (mid_s.norm(dim=1) / (0.5 * (a.norm(dim=1) + b.norm(dim=1)))).mean().item()
    ratio_l = (mid_l.norm(dim=1) / (0.5 * (a.norm(dim=1) + b.norm(dim=1)))).mean().item()
    assert ratio_s == pytest.approx(1.0, abs=1e-5)
    assert ratio_l == pytest.approx(1 / math.sqrt(2), abs=0.03)
    # Parallel vectors: no division by sin 0.
    assert torch.isfinite(slerp(z0, 2 * z0, torch.tensor([0.5]))).all()
    with pytest.raises(ValueError, match="steps"):
        interpolation_latents(z0, z1, 1)


@pytest.mark.parametrize("experiment", ["progan_mnist", "dcgan_mnist"])
def test_interpolate_writes_strip_and_gif(
    experiment: str, mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(mnist_root))
    monkeypatch.setenv("LIGHTNING_GANS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("LIGHTNING_GANS_RUN_DIR", raising=False)
    monkeypatch.setattr(sys, "argv", ["lightning-gans"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny fits: far faster single-threaded on a loaded 2-core machine
    try:
        config = str(REPO / "experiments" / f"{experiment}.yaml")
        flags = ["--trainer.max_steps=2", "--trainer.callbacks=[]", "--data.batch_size=8"]
        quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
        main(["fit", "--config", config, "--trainer.accelerator=cpu", "--trainer.devices=1", *flags, *quiet])
        (run,) = (tmp_path / "runs" / experiment).iterdir()
        ckpt = run / "checkpoints" / "last.ckpt"
        main(["interpolate", "--ckpt", str(ckpt), "--steps", "5", "--rows", "3"])
    finally:
        torch.set_num_threads(threads)
    assert "wrote" in capsys.readouterr().out
    out = run / "interpolation"
    with Image.open(out / "interpolation.png") as png:
        assert png.size == (5 * 30 + 2, 3 * 30 + 2)  # 5 steps × 3 rows of 28 px digits, 2 px padding
    frames = imageio.mimread(out / "interpolation.gif")
    assert len(frames) == 5 + 3  # forwards (5), then back without repeating the ends (3)
    assert frames[0].shape[:2] == (3 * 30 + 2, 32)
    with pytest.raises(SystemExit) as exit_info:
        main(["interpolate", "--ckpt", str(ckpt), "--steps", "1", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert "--steps must be >= 2" in capsys.readouterr().err
