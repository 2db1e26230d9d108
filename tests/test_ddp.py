"""``gan_ddp``: one gradient reduction per optimizer step, checked against one process (not only rank vs rank)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from ddp_cases import CASES, MIXED_CASES, STEPS, fit_worker, guard_worker, seeded_worker, sync_worker
from gloo_ranks import run_forked_ranks

from lightning_gans.strategies import GANDDPStrategy, _buckets, gan_strategy_for

B = 4  # per-rank batch


def _flat(tree, prefix=""):
    """Every tensor of a nested state (module state dict, optimizer state dicts) by path."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list | tuple) else ()
    out = {}
    for key, value in items:
        out.update(_flat(value, f"{prefix}/{key}"))
    return out


@pytest.mark.parametrize("case", CASES)
def test_two_processes_at_batch_b_equal_one_process_at_batch_2b(case: str, tmp_path: Path) -> None:
    assert run_forked_ranks(fit_worker, 1, case, 2 * B, str(tmp_path)) == [0]
    assert run_forked_ranks(fit_worker, 2, case, B, str(tmp_path)) == [0, 0]
    one = torch.load(tmp_path / f"{case}-w1-rank0.pt", weights_only=False)
    ranks = [torch.load(tmp_path / f"{case}-w2-rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert one["global_step"] == ranks[0]["global_step"] == STEPS
    reference = _flat({"module": one["module"], "optimizers": one["optimizers"]})
    assert bool(one["scalers"]) == (case in MIXED_CASES)  # one GradScaler per optimizer under 16-mixed only
    atol = 2e-3 if case in MIXED_CASES else 1e-5  # fp16 rounds a batch of 2B and two of B differently
    for rank in ranks:
        got = _flat({"module": rank["module"], "optimizers": rank["optimizers"]})
        assert got.keys() == reference.keys()
        for key, value in reference.items():
            torch.testing.assert_close(got[key].double(), value.double(), rtol=0, atol=atol, msg=key)
        assert rank["scalers"] == one["scalers"]  # 16-mixed: same skips and scales as 1 process (else empty)
    start = _flat(_initial(case))
    moved = [k for k, v in start.items() if not torch.equal(v, reference[f"/module{k}"])]
    assert moved  # the fit changed the weights: the comparison is not between two untouched inits
    # Rank 0 and rank 1 hold bit-identical weights and optimizer states.
    a, b = (_flat({"m": r["module"], "o": r["optimizers"], "s": r["scalers"]}) for r in ranks)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _initial(case: str) -> dict:
    from ddp_cases import build

    module, _ = build(case, B, 1)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_one_reduction_per_optimizer_step(tmp_path: Path) -> None:
    """n_critic 3 over 5 steps: 5 D steps + 1 G step (step 3; G steps at steps 2 and 5 → 2) = 7 optimizer steps,
    each one bucket (these nets are far below 25 MB): exactly 7 all-reduces, nothing else from the strategy."""
    assert run_forked_ranks(fit_worker, 2, "n_critic_3", B, str(tmp_path)) == [0, 0]
    state = torch.load(tmp_path / "n_critic_3-w2-rank0.pt", weights_only=False)
    d_steps = int(state["optimizers"][1]["state"][0]["step"])
    g_steps = int(state["optimizers"][0]["state"][0]["step"])
    assert (d_steps, g_steps) == (STEPS, STEPS // 3)
    assert state["collectives"] == d_steps + g_steps


def test_buckets_cap_order_and_dtype() -> None:
    tensors = [torch.zeros(10), torch.zeros(10), torch.zeros(30), torch.zeros(5, dtype=torch.float64)]
    buckets = _buckets(tensors, cap_bytes=100)  # 25 float32 values
    sizes = [[t.numel() for t in b] for b in buckets]
    assert sizes == [[5], [30], [10, 10]]  # reversed, a dtype change starts a bucket, an oversized tensor alone


@pytest.mark.parametrize(
    ("name", "mapped"),
    [
        ("ddp", "gan_ddp"),
        ("ddp_spawn", "gan_ddp_spawn"),
        ("ddp_fork_find_unused_parameters_false", "gan_ddp_fork"),
        ("ddp_notebook", "gan_ddp_notebook"),
        ("gan_ddp", "gan_ddp"),
        ("fsdp", None),
        ("deepspeed_stage_2", None),
    ],
)
def test_lightning_ddp_names_map_to_gan_ddp(name: str, mapped: str | None) -> None:
    assert gan_strategy_for(name) == mapped


def test_ddp_wrapper_options_are_refused() -> None:
    with pytest.raises(ValueError, match="does not wrap the model in DistributedDataParallel"):
        GANDDPStrategy(static_graph=True)


def test_progress_bar_values_are_host_copies(tmp_path: Path) -> None:
    """What Lightning re-reads after every batch must not live on the training device."""
    import lightning.pytorch as pl
    from toy_training import toy_loader, toy_module

    module = toy_module()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=4, log_every_n_steps=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    seen = []
    module.log_dict = lambda values, **kw: seen.append((values, kw))  # type: ignore[method-assign]
    trainer.fit(module, toy_loader(4))
    bars = [values for values, kw in seen if kw.get("prog_bar")]
    assert len(bars) == 2 and all(set(b) == {"d", "g"} for b in bars)  # logging steps 2 and 4 only
    assert all(v.device.type == "cpu" and not v.requires_grad for b in bars for v in b.values())
    per_step = [kw for values, kw in seen if kw.get("on_step") and not kw.get("prog_bar")]
    assert len(per_step) == 2 and all(kw["sync_dist"] for kw in per_step)  # step values: logging steps, reduced


def _ranks(worker, *args) -> None:
    assert run_forked_ranks(worker, 2, *args) == [0, 0]


def test_no_collective_or_host_read_beyond_the_gradient_reduction_on_non_logging_steps(tmp_path: Path) -> None:
    """12 alternating steps, logging every 4: a non-logging step issues exactly its two gradient all-reduces (D, G)
    and the framework (lightning_gans, Lightning) reads no tensor value on the host. The reads that remain are the
    test's own index-seeded noise and torch.optim's step counter, a CPU tensor on every device (no device sync).
    Counted from one batch start to the next, so Lightning's own per-batch work is included (its SIGTERM broadcast
    before every batch is replaced by the control flags: ``compat.defer_sigterm``)."""
    _ranks(sync_worker, str(tmp_path))
    for rank in (0, 1):
        rows = torch.load(tmp_path / f"syncs-rank{rank}.pt")
        assert [r["step"] for r in rows] == list(range(1, 13))
        for row in rows:
            logging = row["step"] % 4 == 0
            if logging:  # the step values of the losses are reduced here, and the NaN flag is read
                assert row["collectives"].count("all_reduce") > 2
                continue
            assert row["collectives"] == ["all_reduce", "all_reduce"], row
            # Lightning re-reads the progress-bar values after every batch (fabric/utilities/apply_func.py): GAN
            # modules log them as host copies made on logging steps, so on a GPU that re-read touches no device.
            framework = [r for r in row.get("reads", []) if "lightning" in r.split("@")[1] and "apply_func" not in r]
            assert framework == [], row
            files = {r.split("@")[1].rsplit(":", 1)[0] for r in row.get("reads", [])}
            allowed = ("ddp_cases.py", "torch/optim/optimizer.py", "fabric/utilities/apply_func.py")
            assert all(f.endswith(allowed) for f in files), row


@pytest.mark.parametrize("checkpoint_every", [0, 1])
def test_nan_on_one_rank_stops_every_rank_and_never_reaches_a_checkpoint(tmp_path: Path, checkpoint_every: int) -> None:
    """NaN on rank 1 only, in GAN step 5; checks every 4 steps. Without checkpoints both ranks stop at the next
    check, in the 8th batch (global_step 8 when it raises); with a checkpoint every step, the save after step 5 is
    refused: the last checkpoint written is the state before the bad update, and every value in it is finite."""
    _ranks(guard_worker, str(tmp_path), checkpoint_every)
    results = [(tmp_path / f"guard-rank{r}.txt").read_text().split("|", 1) for r in (0, 1)]
    stopped = {int(step) for step, _ in results}
    assert all("Non-finite loss at GAN step 5 " in message for _, message in results)
    assert stopped == ({8} if not checkpoint_every else {6})
    if checkpoint_every:
        written = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
        assert written == [f"step={s}.ckpt" for s in range(1, 6)]
        for path in (tmp_path / "ckpt").iterdir():
            state = torch.load(path, weights_only=False)["state_dict"]
            assert all(torch.isfinite(v).all() for v in state.values()), path.name


def test_sync_batchnorm_on_cpu_is_one_clear_error(tmp_path: Path) -> None:
    import lightning.pytorch as pl
    from toy_training import toy_loader, toy_module

    from lightning_gans.errors import ConfigError

    trainer = pl.Trainer(
        accelerator="cpu", devices=1, strategy="gan_ddp", sync_batchnorm=True, logger=False, max_steps=1,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    saved = dict(os.environ)  # the strategy's cluster environment exports MASTER_PORT: keep it out of later tests
    try:
        with pytest.raises(ConfigError, match="sync_batchnorm=true needs GPUs"):
            trainer.fit(toy_module(), toy_loader(2))
    finally:  # a 1-process group was created here: later forked ranks must not inherit it
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(saved)


def test_seeded_two_rank_runs_repeat_exactly_and_ranks_draw_their_own_noise(tmp_path: Path) -> None:
    for tag in ("a", "b"):
        _ranks(seeded_worker, str(tmp_path), tag)
    load = lambda tag, rank: torch.load(tmp_path / f"seeded-{tag}-rank{rank}.pt", weights_only=False)  # noqa: E731
    for rank in (0, 1):
        a, b = load("a", rank), load("b", rank)
        assert all(torch.equal(v, b["module"][k]) for k, v in a["module"].items())  # same seed, same world size
        assert torch.equal(a["rng"], b["rng"])
    assert not torch.equal(load("a", 0)["rng"], load("a", 1)["rng"])  # distinct noise streams per rank
