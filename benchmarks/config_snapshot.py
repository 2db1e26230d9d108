"""Flatten every experiment's resolved ``--print_config`` into dotted keys (the hyperparameter snapshot).

    python benchmarks/config_snapshot.py --out tests/snapshots/experiment_configs.json

``tests/test_experiment_configs.py`` compares each experiment's values with this snapshot, taken before the
experiments became overlays, so a refactor of the YAML files cannot change a hyperparameter silently.
The environment-dependent keys (``config``, ``runs_dir``, ``wandb.mode``) are left out.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
IGNORED = ("config", "runs_dir", "wandb.mode", "experiment")


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}{i}."))
        return out if out else {prefix[:-1]: []}
    return {prefix[:-1]: value}


def resolved(config: Path | str, *extra: str) -> dict[str, object]:
    """Flattened ``fit --config CONFIG [EXTRA…] --print_config`` values without the environment-dependent keys;
    ``extra`` may hold more ``--config`` flags (stacked files) or ``--x.y=value`` overrides."""
    from lightning_gans.cli import main

    buf, err = io.StringIO(), io.StringIO()
    code: object = 0
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        try:
            main(["fit", "--config", str(config), *extra, "--print_config"])
        except SystemExit as exit_:  # --print_config exits 0 after printing; a refused config exits non-zero
            code = exit_.code
    if code not in (0, None) or not buf.getvalue().strip():
        raise RuntimeError(f"--print_config of {config} failed (exit {code}): {err.getvalue().strip()[-2000:]}")
    flat = flatten(yaml.safe_load(buf.getvalue()))
    return {k: v for k, v in flat.items() if not k.startswith(IGNORED)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the JSON here (default: print)")
    parser.add_argument("names", nargs="*", help="experiment names (default: every experiments/*.yaml)")
    args = parser.parse_args()
    os.environ.setdefault("LIGHTNING_GANS_DATA", "./data")
    names = args.names or sorted(p.stem for p in (REPO / "experiments").glob("*.yaml"))
    snapshot = {name: resolved(REPO / "experiments" / f"{name}.yaml") for name in names}
    text = json.dumps(snapshot, indent=1, sort_keys=True, default=str)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
