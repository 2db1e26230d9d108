"""``TrainingBudget``: stops after the budgeted time spent in training steps; the spent time survives a resume."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from toy_training import bare_trainer, toy_loader, toy_module

from lightning_gans.callbacks import TrainingBudget
from lightning_gans.callbacks import budget as budget_module


@pytest.fixture()
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each clock reading advances one second: every training batch (start → end) costs exactly 1 s."""
    ticks = itertools.count()
    monkeypatch.setitem(budget_module.CLOCKS, "cpu", lambda: float(next(ticks)))


def _budget_rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("kind") == "budget"]


def test_budget_stops_after_the_budgeted_batches_and_resumes(fake_clock: None, tmp_path: Path) -> None:
    budget = TrainingBudget(minutes=5 / 60)  # 5 s = 5 batches
    trainer = bare_trainer(tmp_path, max_epochs=100, callbacks=[budget])
    trainer.fit(toy_module(), train_dataloaders=toy_loader())
    assert budget.spent_s == 5.0 and trainer.global_step == 5  # one GAN step per batch
    assert budget.exhausted_at_step == 5
    (row,) = _budget_rows(tmp_path)
    assert (row["budget/train_cpu_s"], row["exhausted"], row["minutes"]) == (5.0, True, pytest.approx(5 / 60))
    trainer.save_checkpoint(tmp_path / "five.ckpt")

    more = TrainingBudget(minutes=8 / 60)
    trainer = bare_trainer(tmp_path, max_epochs=100, callbacks=[more])
    trainer.fit(toy_module(), train_dataloaders=toy_loader(), ckpt_path=tmp_path / "five.ckpt", weights_only=False)
    assert more.spent_s == 8.0 and trainer.global_step == 8  # 3 more batches, not 8


def test_budget_not_reached_and_bad_options(tmp_path: Path) -> None:
    budget = TrainingBudget(minutes=60, clock="wall")
    trainer = bare_trainer(tmp_path, max_steps=6, callbacks=[budget])
    trainer.fit(toy_module(), train_dataloaders=toy_loader())
    assert budget.exhausted_at_step is None and 0 < budget.spent_s < 60
    assert _budget_rows(tmp_path)[0]["exhausted"] is False
    with pytest.raises(ValueError, match="minutes must be > 0"):
        TrainingBudget(minutes=0)
    with pytest.raises(ValueError, match="clock must be one of"):
        TrainingBudget(minutes=1, clock="gpu")
