"""A run killed with SIGKILL at a mid-epoch GAN step and resumed from its latest step checkpoint ends bit-identical
to an uninterrupted run: weights, optimizer states, step counter, RNG, image pools, growth state
(datamodules/_resume.py, --checkpoint_every_n_steps, AtomicCheckpointIO)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
import torch

from lightning_gans.cli import main

REPO = Path(__file__).resolve().parents[1]
KILL = {"class_path": "signal_at.SignalAtStep", "init_args": {"steps": [7], "signal_name": "SIGKILL"}}


def _argv(config: str, runs: Path, experiment: str, steps: int, *extra: str, batch: int = 64, every: int = 3) -> list:
    return [
        "fit", "--config", str(REPO / "experiments" / config), "--experiment", experiment, "--runs_dir", str(runs),
        "--wandb.mode=disabled", "--trainer.accelerator=cpu", "--trainer.devices=1",
        "--trainer.enable_progress_bar=false", f"--data.batch_size={batch}", "--trainer.callbacks=[]",
        f"--trainer.max_steps={steps}", f"--checkpoint_every_n_steps={every}", *extra,
    ]  # fmt: skip


def _fit_forked(argv: list[str]) -> int:
    """``main(argv)`` in a fresh process (it may be SIGKILLed); its exit code."""
    proc = multiprocessing.get_context("spawn").Process(target=main, args=(argv,))  # fork can deadlock on torch threads
    proc.start()
    proc.join(timeout=300)
    return proc.exitcode


def _last(runs: Path, experiment: str) -> Path:
    return sorted((runs / experiment).iterdir())[-1] / "checkpoints" / "last.ckpt"


def _assert_identical(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"] and a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for (_, sa), (_, sb) in zip(opt_a["state"].items(), opt_b["state"].items(), strict=True):
            assert all(torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])) for k in sa)
    assert torch.equal(a["lightning_gans_rng"]["torch"], b["lightning_gans_rng"]["torch"])
    for name, pool in a.get("image_pools", {}).items():  # CycleGAN's histories of fakes
        assert torch.equal(pool["images"], b["image_pools"][name]["images"]), name


@pytest.mark.parametrize("config", ["dcgan_mnist.yaml", "wgan_gp_mnist.yaml", "cgan_mnist.yaml"])
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(
    config: str, mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """256 factory images / batch 64 = 4 batches per epoch; killed after step 7 (epoch 2, batch 3), last.ckpt is
    step 6 (mid-epoch); resumed to step 10 == 10 steps straight."""
    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(mnist_root))
    monkeypatch.delenv("LIGHTNING_GANS_RUN_DIR", raising=False)
    runs = tmp_path / "runs"
    assert _fit_forked(_argv(config, runs, "straight", 10)) == 0
    killed = _fit_forked(_argv(config, runs, "killed", 10, f"--trainer.callbacks+={json.dumps(KILL)}"))
    assert killed == -9  # SIGKILL: no chance to save anything at the kill
    ckpt = _last(runs, "killed")
    partial = torch.load(ckpt, weights_only=False)
    assert partial["global_step"] == 6 and partial["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 1
    assert _fit_forked(_argv(config, runs, "killed", 10, f"--ckpt_path={ckpt}")) == 0
    _assert_identical(torch.load(_last(runs, "killed"), weights_only=False),
                      torch.load(_last(runs, "straight"), weights_only=False))  # fmt: skip


def test_sigterm_saves_at_the_current_step_and_resumes_exactly(
    mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM after step 7: ``preempted.ckpt`` at step 7, a clean exit (0), and the resumed run == straight."""
    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(mnist_root))
    monkeypatch.delenv("LIGHTNING_GANS_RUN_DIR", raising=False)
    runs, term = tmp_path / "runs", {**KILL, "init_args": {"steps": [7], "signal_name": "SIGTERM"}}
    assert _fit_forked(_argv("dcgan_mnist.yaml", runs, "straight", 10)) == 0
    assert _fit_forked(_argv("dcgan_mnist.yaml", runs, "term", 10, f"--trainer.callbacks+={json.dumps(term)}")) == 0
    ckpt = _last(runs, "term").with_name("preempted.ckpt")
    assert torch.load(ckpt, weights_only=False)["global_step"] == 7
    assert _fit_forked(_argv("dcgan_mnist.yaml", runs, "term", 10, f"--ckpt_path={ckpt}")) == 0
    _assert_identical(torch.load(_last(runs, "term"), weights_only=False),
                      torch.load(_last(runs, "straight"), weights_only=False))  # fmt: skip


GROWTH = {
    "class_path": "lightning_gans.callbacks.ProgressiveGrowing",
    "init_args": {"images_per_phase": 64, "batch_sizes": {4: 16, 8: 8}},
}
# name: (config, batch, checkpoint every, kill after step, steps, extra options). The kill is mid-epoch in each.
FAMILIES = {
    # 4 batches an epoch of draws with replacement (labelled and unlabelled loaders, each with its own state);
    # killed at step 7 (epoch 2), resumed from step 6.
    "sgan": ("sgan_mnist.yaml", 64, 3, 7, 10, ["--data.batches_per_epoch=4"]),
    # 64 unpaired MNIST edges/digits, batch 8 (8 batches an epoch, random flips): killed at step 11, resumed from
    # step 9 (epoch 2, batch 2), with the image pools full (50 < 72 fakes) and swapping.
    "cyclegan": ("cyclegan_mnist_edges.yaml", 8, 3, 11, 14, []),
    # 4×4 for 64 images at batch 16, then 8×8 fades in over 64 images at batch 8 (the batch size changes inside
    # the epoch); killed at step 6, mid-fade, resumed from step 4 to step 10 (still fading in).
    "progan": ("progan_mnist.yaml", 16, 4, 6, 10, [f"--trainer.callbacks+={json.dumps(GROWTH)}"]),
}


@pytest.mark.parametrize(("config", "batch", "every", "kill", "steps", "extra"), FAMILIES.values(), ids=FAMILIES.keys())
def test_families_resume_exactly_after_sigkill(
    config: str, batch: int, every: int, kill: int, steps: int, extra: list[str], data_root: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("LIGHTNING_GANS_DATA", str(data_root))
    monkeypatch.delenv("LIGHTNING_GANS_RUN_DIR", raising=False)
    runs, sig = tmp_path / "runs", {**KILL, "init_args": {"steps": [kill], "signal_name": "SIGKILL"}}
    opts = {"batch": batch, "every": every}
    assert _fit_forked(_argv(config, runs, "straight", steps, *extra, **opts)) == 0
    assert (
        _fit_forked(_argv(config, runs, "killed", steps, *extra, f"--trainer.callbacks+={json.dumps(sig)}", **opts))
        == -9
    )
    ckpt = _last(runs, "killed")
    partial = torch.load(ckpt, weights_only=False)
    assert partial["global_step"] == kill // every * every
    assert partial["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"] > 0  # mid-epoch
    assert _fit_forked(_argv(config, runs, "killed", steps, *extra, f"--ckpt_path={ckpt}", **opts)) == 0
    _assert_identical(torch.load(_last(runs, "killed"), weights_only=False),
                      torch.load(_last(runs, "straight"), weights_only=False))  # fmt: skip
