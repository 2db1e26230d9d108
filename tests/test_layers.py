"""The layer contract (pyproject.toml, checked by `make lint` with import-linter) and the code-shape limits.

* Every module directly under ``lightning_gans/`` sits in exactly one layer, so a new module cannot escape it.
* The contract holds today, and a wrong-way import *inside a function* breaks it (grimp reads function bodies).
* No file over 400 lines; no function over 60 lines unless its docstring says why ("Long because …").
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _contracts() -> list[dict]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _layer_modules() -> list[str]:
    (layers,) = [c["layers"] for c in _contracts() if c["type"] == "layers"]
    return [m.strip().strip("()") for layer in layers for m in layer.replace("|", ":").split(":")]


def test_every_top_level_module_is_in_a_layer() -> None:
    present = {
        f"lightning_gans.{p.stem if p.suffix == '.py' else p.name}"
        for p in (REPO / "lightning_gans").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    listed = _layer_modules()
    assert len(listed) == len(set(listed)), "a module is listed in two layers"
    assert sorted(present - set(listed)) == [], "add these modules to a layer in pyproject.toml"
    assert sorted(set(listed) - present) == [], "these layers name modules that do not exist"


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_contract_is_kept_and_a_lazy_wrong_way_import_breaks_it(tmp_path: Path) -> None:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} not found: install the dev extra (pip install -e '.[dev]')")
    for name in ("lightning_gans", "datamodules"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    kept = _lint(tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr

    model = tmp_path / "lightning_gans" / "models" / "dcgan.py"
    model.write_text(
        model.read_text() + "\n\ndef _lazy():\n    from lightning_gans.cli import main\n\n    return main\n"
    )
    broken = _lint(tmp_path)
    assert broken.returncode != 0
    assert "lightning_gans.models.dcgan -> lightning_gans.cli" in broken.stdout


def _python_files() -> list[Path]:
    return sorted([*(REPO / "lightning_gans").rglob("*.py"), *(REPO / "datamodules").rglob("*.py")])


def test_no_file_over_the_line_limit() -> None:
    long = {
        str(p.relative_to(REPO)): n for p in _python_files() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert long == {}, f"split these files (> {MAX_FILE_LINES} lines)"


def test_no_long_function_without_a_reason() -> None:
    long = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and "Long because" not in (ast.get_docstring(node) or ""):
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)")
    assert long == [], "split these functions or say why in the docstring ('Long because …')"


def test_no_import_cycles() -> None:
    """Zero cycles between modules, counting imports inside functions (grimp reads them all)."""
    import grimp

    graph = grimp.build_graph("lightning_gans", "datamodules", cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert cycles == []
