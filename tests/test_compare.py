"""``lightning-gans compare``: fake run dirs (config.yaml + hand-written metrics.jsonl) → tables, plot, errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PIL import Image

from lightning_gans.commands.compare import main as compare_command
from lightning_gans.workflows.compare import compare

P10K = {
    "dataset": "mnist",
    "split": "test",
    "n": 10000,
    "extractor": "lenet-mnist",
    "weights": "ab12cd34ef56",
    "image_size": 28,
    "resize": "none",
}
P1K = {**P10K, "n": 1001}


def _quality(step: int, fid: float, protocol: dict, kind: str = "image_quality", **extra: float) -> dict:
    tag = "10k" if protocol["n"] == 10000 else "1k"
    row = {"epoch": step // 100, "step": step, "kind": kind, "protocol": protocol, "wall_time_s": 1.0}
    row[f"fid/lenet-mnist/{tag}"] = fid
    row.update({f"{k}/lenet-mnist/{tag}": v for k, v in extra.items()})
    return row


def make_run(
    root: Path, experiment: str, stamp: str, rows: list[dict | str], model: str = "DCGAN", seed: int = 0
) -> Path:
    run = root / experiment / stamp
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        f"seed_everything: {seed}\n"
        f"model:\n  class_path: lightning_gans.models.{model}\n  init_args: {{}}\n"
        "data:\n  class_path: datamodules.mnist.MNISTDataModule\n  init_args:\n    batch_size: 64\n"
        f"experiment: {experiment}\n"
    )
    with open(run / "metrics.jsonl", "w") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return run


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Three 10k-protocol runs (best FIDs 9.5, 12.0, 20.0) and one 1k-protocol run, plus noise lines."""
    root = tmp_path / "runs"
    noise = [
        {"epoch": 0, "step": 100, "kind": "train_epoch", "d_loss": 0.1, "g_loss": 0.2},
        {"epoch": 0, "step": 100, "kind": "toy", "fid/fake/10k": 0.01},
        {"epoch": 0, "step": 100, "kind": "ddp_check", "fid/lenet-mnist/10k": 0.0},
    ]
    make_run(
        root,
        "dcgan_mnist",
        "20260101-000000",
        [
            *noise,
            _quality(100, 30.0, P10K, **{"is": 6.0, "kid": 0.03, "kid_std": 0.003}),
            _quality(200, 9.5, P10K, **{"is": 8.5, "kid": 0.004, "kid_std": 0.001}),
            _quality(300, 11.0, P10K, **{"is": 9.0, "kid": 0.005, "kid_std": 0.001}),
        ],
    )
    make_run(
        root,
        "wgan_gp_mnist",
        "20260101-000001",
        [_quality(100, 25.0, P10K), _quality(200, 12.0, P10K, kind="eval")],
        model="WGANGP",
        seed=1,
    )
    make_run(
        root, "lsgan_mnist", "20260101-000002", [_quality(100, 20.0, P10K), '{"epoch": 2, "step": 3'], model="LSGAN"
    )
    make_run(root, "dcgan_mnist_1k", "20260101-000003", [_quality(100, 3.0, P1K), _quality(200, 2.0, P1K)])
    make_run(root, "no_quality", "20260101-000004", noise)
    return root


def _tables(markdown: str) -> list[list[list[str]]]:
    """Markdown tables → rows of cells (header and separator dropped)."""
    tables, current = [], None
    for line in markdown.splitlines():
        if line.startswith("| rank"):
            current = []
            tables.append(current)
        elif line.startswith("|") and not line.startswith("|---") and current is not None:
            current.append([c.strip() for c in line.strip("|").split("|")])
        elif not line.startswith("|"):
            current = None
    return tables


def test_two_protocols_two_tables_ranked(runs: Path, tmp_path: Path) -> None:
    markdown, md_path, png_path = compare([str(runs)], out=str(tmp_path / "out" / "cmp"))
    tables = _tables(markdown)
    assert len(tables) == 2
    assert "not ranked together (different N: 10000 vs 1001)" in markdown
    assert "## Protocol 1: dataset=mnist, split=test, n=10000, extractor=lenet-mnist" in markdown
    assert "## Protocol 2: dataset=mnist, split=test, n=1001" in markdown
    big, small = tables
    assert [row[1] for row in big] == [
        "dcgan_mnist/20260101-000000",
        "wgan_gp_mnist/20260101-000001",
        "lsgan_mnist/20260101-000002",
    ]
    assert [row[0] for row in big] == ["1", "2", "3"]
    # rank, run, experiment, model, dataset, seed, best FID, step, vs. above, IS, KID
    assert big[0][2:] == ["dcgan_mnist", "DCGAN", "mnist", "0", "9.50", "200", "", "8.50", "0.0040 ± 0.0010"]
    assert big[1][3:8] == ["WGANGP", "mnist", "1", "12.00", "200"]  # the `eval` line counts
    assert big[1][8:] == ["", "–", "–"]
    assert [row[1] for row in small] == ["dcgan_mnist_1k/20260101-000003"]
    assert small[0][6:8] == ["2.00", "200"]
    assert "no_quality" not in markdown
    assert "fake" not in markdown and "0.0100" not in markdown  # toy / ddp-check lines ignored
    assert md_path.read_text().strip() == markdown.strip()
    with Image.open(png_path) as image:
        image.load()
        assert image.format == "PNG" and image.size[0] > 300


def test_weights_difference_explained(tmp_path: Path) -> None:
    make_run(tmp_path, "a", "1", [_quality(10, 5.0, P10K)])
    make_run(tmp_path, "b", "1", [_quality(10, 4.0, {**P10K, "weights": "ffff0000aaaa"})])
    markdown, _, _ = compare([str(tmp_path)], out=str(tmp_path / "cmp"))
    assert "different extractor weights: ab12cd34ef56 vs ffff0000aaaa" in markdown
    assert "different N" not in markdown
    assert len(_tables(markdown)) == 2


def test_kid_ranking_and_single_protocol(runs: Path, tmp_path: Path) -> None:
    markdown, _, _ = compare([str(runs / "dcgan_mnist")], metric="kid", out=str(tmp_path / "k"))
    assert "not ranked together" not in markdown
    (table,) = _tables(markdown)
    assert table[0][6:8] == ["0.0040 ± 0.0010", "200"]  # best KID and its step
    assert table[0][8:] == ["", "9.50", "8.50"]  # vs. above, FID, IS at that evaluation


def test_is_ranking_takes_max(runs: Path, tmp_path: Path) -> None:
    markdown, _, _ = compare([str(runs / "dcgan_mnist")], metric="is", out=str(tmp_path / "i"))
    assert _tables(markdown)[0][0][6:8] == ["9.00", "300"]


def test_run_dir_and_parent_discovery(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = runs / "wgan_gp_mnist" / "20260101-000001"
    compare_command([str(run), str(runs / "lsgan_mnist"), str(run), "--out", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert [row[1] for row in _tables(out)[0]] == ["wgan_gp_mnist/20260101-000001", "lsgan_mnist/20260101-000002"]
    assert "wrote" in out and (tmp_path / "c.md").is_file() and (tmp_path / "c.png").is_file()


def test_no_runs_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_run(tmp_path / "runs", "x", "1", [{"epoch": 0, "step": 1, "kind": "train_epoch", "d_loss": 1.0}])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exc:
        compare_command([str(tmp_path / "runs"), str(tmp_path / "empty"), "--out", str(tmp_path / "c")])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "no image-quality evaluations" in err and str(tmp_path / "empty") in err and "1 run dirs" in err
    assert not (tmp_path / "c.md").exists()
    with pytest.raises(SystemExit):
        compare_command([str(tmp_path / "missing")])
    assert "no such run or directory" in capsys.readouterr().err


def test_wandb_offline_error_is_prompt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    start = time.monotonic()
    with pytest.raises(SystemExit):
        compare_command(["--wandb-project", "me/lightning-gans", "--out", str(tmp_path / "c")])
    assert time.monotonic() - start < 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "WANDB_MODE=offline" in err and "online" in err


def test_wandb_missing_key_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(SystemExit):
        compare_command(["--wandb-project", "me/lightning-gans"])
    assert "API key" in capsys.readouterr().err


def test_spreads_are_shown_and_close_rows_marked(tmp_path: Path) -> None:
    """FID ± std from repeats: a row within the combined spread of the one above is marked, a distant one is not."""
    protocol = {"dataset": "mnist", "split": "test", "n": 10000, "extractor": "lenet-mnist", "weights": "w"}
    protocol |= {"image_size": 28, "resize": "none"}
    for name, fid, std in (("a", 10.0, 0.5), ("b", 10.4, 0.4), ("c", 14.0, 0.3)):
        run = tmp_path / "runs" / name / "20260101-000000"
        run.mkdir(parents=True)
        row = {
            "kind": "eval",
            "step": 1,
            "protocol": protocol,
            "fid/lenet-mnist/10k": fid,
            "fid_std/lenet-mnist/10k": std,
        }
        (run / "metrics.jsonl").write_text(json.dumps(row) + "\n")
    markdown, _, _ = compare([str(tmp_path / "runs")], out=str(tmp_path / "cmp"))
    (table,) = _tables(markdown)
    # rank, run, experiment, model, dataset, seed, best FID, step, vs. above
    assert [(row[6], row[8]) for row in table] == [
        ("10.00 ± 0.50", ""),
        ("10.40 ± 0.40", "within spread"),  # |Δ| 0.4 < √(0.5² + 0.4²) = 0.64
        ("14.00 ± 0.30", ""),
    ]
