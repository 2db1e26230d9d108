"""``benchmarks/gpu_check.py`` and ``benchmarks/bench_precision.py`` without a GPU.

* No GPU: one line, exit 0.
* The "bare machine" path: the check runs with only torch, torchvision, lightning, torchmetrics (and what they
  need) importable — no wandb, torch-fidelity, jsonargparse, no installed lightning_gans (the repository on
  PYTHONPATH instead) — and prints its table with numeric fp32 rows, the same text in ``--out``.
  PyYAML stays: Lightning itself imports it (``lightning.pytorch.callbacks.model_checkpoint``), so no machine with
  Lightning lacks it; the check reads no YAML of its own.
* The guarded cells and the table format, in process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
HIDDEN = ("wandb", "torch_fidelity", "jsonargparse", "lightning_gans", "__editable__")
# Optional extras of lightning/torchmetrics that a bare GPU image may not have either: hidden too.
OPTIONAL = ("scipy", "matplotlib", "mpl_toolkits", "pylab", "imageio")


def _run(args: list[str], pythonpath: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath, "HOME": str(Path.home()), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run for real")
def test_no_gpu_prints_one_line_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "t.txt"
    result = _run([str(SCRIPT), "--out", str(out)], pythonpath=str(REPO), timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA device found"), result.stdout
    assert out.read_text().strip() == lines[0]


def _bare_site_packages(tmp_path: Path) -> Path:
    """Symlinks to every entry of the venv's site-packages except the hidden packages and any ``.pth`` file."""
    site = Path(torch.__file__).resolve().parents[1]
    bare = tmp_path / "site"
    bare.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.endswith(".pth") or name.startswith(HIDDEN) or name.startswith(OPTIONAL):
            continue
        (bare / entry.name).symlink_to(entry)
    return bare


def test_bare_machine_quick_table(tmp_path: Path) -> None:
    pythonpath = f"{_bare_site_packages(tmp_path)}:{REPO}"
    probe = "import importlib.util as u, lightning_gans as g; "
    probe += "print([n for n in ('wandb', 'torch_fidelity', 'jsonargparse') if u.find_spec(n)], g.__file__)"
    hidden = _run(["-S", "-c", probe], pythonpath, timeout=60)
    assert hidden.returncode == 0, hidden.stderr
    assert hidden.stdout.startswith("[] ") and str(REPO) in hidden.stdout  # the trick hides them; repo code is used

    out = tmp_path / "report" / "t.txt"
    configs = "fp32,16-mixed,compiled,reduce-overhead"  # bf16 autocast is ~10x slower on CPU: left out here
    args = ["-S", str(SCRIPT), "--device", "cpu", "--quick", "--configs", configs, "--budget", "120"]
    result = _run([*args, "--out", str(out), "--report-modules"], pythonpath)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    assert out.read_text() == table
    for workload in ("DCGAN-MNIST", "DCGAN-CelebA-64", "CycleGAN-32"):
        row = rf"^\| {workload} [^|]*\| fp32 \| \d+\.\d+ ms/step \| 1\.00 \|"
        assert re.search(row, table, re.MULTILINE), f"no numeric fp32 row for {workload}:\n{table}"
    assert re.search(r"^\| FID eval[^|]*\| fp32 \| \d+\.\d+ s \| 1\.00 \|", table, re.MULTILINE), table
    assert "| 16-mixed | n/a (cuda only) |" in table and "| reduce-overhead | n/a (cuda only) |" in table
    assert "| compiled | skipped (--quick on CPU" in table
    assert "error:" not in table, table
    assert "gpu_check: forbidden modules imported: none" in result.stderr


def test_bench_precision_quick_runs_fp16_autocast_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "bench.txt"
    args = [str(REPO / "benchmarks" / "bench_precision.py"), "--quick", "--configs", "fp32,16-mixed"]
    result = _run([*args, "--out", str(out)], pythonpath=str(REPO), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.read_text() == result.stdout
    for config in ("fp32", "16-mixed"):
        assert re.search(rf"^\| DCGAN-MNIST b8 \(quick\) \| {config} \| \d+\.\d+ ms/step \|", result.stdout, re.M)


def test_cells_are_guarded_and_budgeted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import precision_timing as pt

    cpu = torch.device("cpu")

    def broken() -> pt.Measurement:
        raise RuntimeError("boom\nsecond line")

    assert pt.run_cell("x", broken, pt.Budget(60), 0, cpu) == "error: RuntimeError: boom"
    assert pt.run_cell("x", lambda: pt.Measurement(1.0), pt.Budget(5), reserve_s=10, device=cpu) == "skipped (budget)"
    rows = [
        pt.Row("W", "fp32", pt.Measurement(0.010, None, "n")),
        pt.Row("W", "bf16-mixed", pt.Measurement(0.005, 12.0)),
        pt.Row("W", "compiled", "error: X"),
    ]
    table = pt.format_table(rows, ["head"])
    assert "| W | fp32 | 10.00 ms/step | 1.00 | - | n |" in table
    assert "| W | bf16-mixed | 5.00 ms/step | 0.50 | 12 |  |" in table
    assert "| W | compiled | error: X | - | - |  |" in table
