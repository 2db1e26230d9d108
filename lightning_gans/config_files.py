"""Composable experiment files: ``defaults:`` lists and named callbacks, resolved before LightningCLI parses.

An experiment YAML may start from other YAML files::

    # experiments/cgan_mnist_recommended.yaml — only what the recipe changes
    defaults: [cgan_mnist.yaml]          # paths relative to this file
    model:
      init_args: {ema: {decay: 0.999, warmup: true}}
    trainer:
      max_steps: 6500
      callbacks:
        lenet_quality: {init_args: {collapse_coverage: 8}}

Rules (docs/configs.md has the walk-through):

* **defaults.** A mapping with a ``defaults:`` key (a path or a list of paths, relative to the file that names
  them) is built from those files first, in order, depth-first (a default's own defaults before it), and then
  its own keys are merged over them. At the top of a file that is the file's base (hydra's and
  lightning-hydra-template's word); inside a list item or a callback entry it is a *piece* — e.g.
  ``lenet_quality: {defaults: callbacks/lenet_quality.yaml}`` — so a shared block lives in one file.
* **merging** is what jsonargparse does with successive ``--config`` flags, so a default behaves exactly like
  an earlier ``--config``: mappings merge key by key; lists and scalars replace; ``key+: [...]`` appends to the
  list so far (jsonargparse's syntax); a mapping naming a different ``class_path`` replaces the old one whole
  (its ``init_args`` belong to the old class).
* **named callbacks.** ``trainer.callbacks`` may be a mapping ``name → callback`` (lightning-hydra-template's
  form). Callbacks keep the order in which their names first appear, an overlay changes one by name
  (``lenet_quality: {init_args: {...}}``) or drops it (``periodic_checkpoint: null``); after composition the
  mapping becomes the list Lightning expects. A list still works and is replaced whole, as jsonargparse does.

Why this design (and not the alternatives):

* jsonargparse alone takes a list item as a path to a sub-config file, but a file cannot start from other
  files, nor an item change one ``init_args`` value of a piece.
* Resolution happens in jsonargparse's YAML loader (``install()``, called by ``GANLightningCLI.__init__``, so
  ``main()`` and code that builds the CLI directly both compose), for the file being loaded: ``--config``
  still names the user's file, so ``config:``, the experiment name (the stem of the ``experiments/`` file the
  user named) and the run directory are unchanged; ``--print_config`` and the ``config.yaml`` saved in every
  run directory hold the composed values with no ``defaults:`` left, so a saved config re-runs on its own.
  Rewriting ``argv`` into several ``--config`` flags instead cannot strip the ``defaults:`` key jsonargparse
  would reject, nor name the run after the right file, without temporary files.
* Merging by index or by "list item equality" is ambiguous; jsonargparse itself replaces lists. Named callbacks
  make an overlay hold only the callback setting it changes, which a list overlay cannot (it must restate the
  list). The order rule keeps each experiment's callback order, which the snapshot test checks.
* Stacking files with several ``--config`` flags keeps plain jsonargparse semantics; an overlay that changes a
  named callback must therefore name its base in ``defaults:`` (a second ``--config`` replaces the list) — the
  error says so.

jsonargparse changes into a config file's directory while loading it (so that relative paths in it resolve
there); the loader relies on that to find the file it is given by name (tests/test_experiment_configs.py pins it
by composing a file from another working directory). This module imports only the standard
library, yaml, jsonargparse and ``lightning_gans.errors`` (CLI layer).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lightning_gans.errors import ConfigError

__all__ = ["DEFAULTS_KEY", "compose", "compose_file", "install", "merge"]

DEFAULTS_KEY = "defaults"
APPEND_SUFFIX = "+"
NAMED_LISTS = (("trainer", "callbacks"),)  # mappings name → item that become lists after composition
_MARK = "_lightning_gans_composes"


# ---------------------------------------------------------------------------------------------- merging
def merge(base: Any, override: Any) -> Any:
    """``override`` over ``base`` the way jsonargparse merges a later ``--config`` over an earlier one."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    if "class_path" in base and "class_path" in override and base["class_path"] != override["class_path"]:
        return dict(override)  # another class: the old init_args do not carry over
    result = dict(base)
    for key, value in override.items():
        if isinstance(key, str) and key.endswith(APPEND_SUFFIX) and len(key) > 1:
            target = key[: -len(APPEND_SUFFIX)]
            if target in result:
                result[target] = _as_list(result[target], target) + _as_list(value, key)
            elif key in result:  # two appends to a list that comes from an earlier --config: keep both
                result[key] = _as_list(result[key], key) + _as_list(value, key)
            else:
                result[key] = value  # appends to what earlier --config flags set (jsonargparse does it)
        elif key in result:
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def _as_list(value: Any, key: str) -> list:
    if value is None:
        return []
    if isinstance(value, dict) and "class_path" not in value:
        raise ConfigError(f"`{key}` appends to a list, but this is a mapping of named entries: add a named entry")
    return list(value) if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------------------------- composing
def compose_file(path: str | os.PathLike) -> dict:
    """The composed content of one config file: defaults resolved, named callbacks turned into a list."""
    path = Path(path).absolute()
    return _finish(_load_file(path, (), None), path)


def compose(data: dict, path: str | os.PathLike) -> dict:
    """Compose already-loaded ``data`` of the file at ``path`` (relative defaults resolve next to it)."""
    path = Path(path).absolute()
    return _finish(_resolve(data, path, (path,)), path)


def _load_file(path: Path, stack: tuple[Path, ...], named_by: Path | None) -> dict:
    if path in stack:
        chain = " → ".join(_show(p) for p in (*stack[stack.index(path) :], path))
        raise ConfigError(f"cyclic defaults in config files: {chain}")
    if not path.is_file():
        where = f"{_show(named_by)}: default " if named_by else "config file "
        raise ConfigError(f"{where}{_show(path)} not found")
    try:
        data = _yaml_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{_show(path)}: not valid YAML ({' '.join(str(err).split())})") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{_show(path)}: a config file holds a mapping, got {type(data).__name__}")
    return _resolve(data, path, (*stack, path))


def _yaml_load(text: str) -> Any:
    """jsonargparse's YAML loader (``1e-3`` is a float, dates stay strings), so a default reads like a --config."""
    import jsonargparse

    return jsonargparse.get_loader("yaml")(text)  # the composing loader too, if installed: no path, no composing


def _resolve(node: Any, here: Path, stack: tuple[Path, ...]) -> Any:
    """Expand every ``defaults:`` in ``node`` (written in the file ``here``), depth-first."""
    if isinstance(node, list):
        return [_resolve(item, here, stack) for item in node]
    if not isinstance(node, dict):
        return node
    composed: dict = {}
    if DEFAULTS_KEY in node:
        for entry in _entries(node[DEFAULTS_KEY], here):
            target = Path(os.path.expanduser(entry))
            target = (target if target.is_absolute() else here.parent / target).absolute()
            composed = merge(composed, _load_file(Path(os.path.normpath(target)), stack, here))
    body = {key: _resolve(value, here, stack) for key, value in node.items() if key != DEFAULTS_KEY}
    return merge(composed, body)


def _entries(value: Any, here: Path) -> list[str]:
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not all(isinstance(e, str) and e.strip() for e in entries):
        raise ConfigError(f"{_show(here)}: `{DEFAULTS_KEY}:` takes a path or a list of paths, got {value!r}")
    return entries


def _finish(data: dict, path: Path) -> dict:
    """Turn the named mappings of ``NAMED_LISTS`` into lists (entries set to null are dropped)."""
    for keys in NAMED_LISTS:
        parent = data
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        named = parent.get(keys[-1]) if isinstance(parent, dict) else None
        if not isinstance(named, dict) or "class_path" in named:
            continue  # a list (or one callback given as a mapping): jsonargparse's own forms
        items = []
        for name, item in named.items():
            if item is None:
                continue
            if not isinstance(item, dict) or "class_path" not in item:
                raise ConfigError(
                    f"{_show(path)}: {'.'.join(keys)}.{name} has no class_path; a file that changes a named "
                    f"entry must name the file defining it in `{DEFAULTS_KEY}:` (a second --config flag replaces "
                    "the whole list)"
                )
            items.append(item)
        parent[keys[-1]] = items
    return data


_display_root: Path | None = None


def _show(path: Path | None) -> str:
    root = _display_root or Path.cwd()
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------- jsonargparse
def install() -> None:
    """Make jsonargparse compose every config file it loads (idempotent; wraps its ``yaml`` loader)."""
    import jsonargparse

    global _display_root
    if _display_root is None:
        _display_root = Path.cwd()
    current = jsonargparse.get_loader("yaml")
    if getattr(current, _MARK, False):
        return
    jsonargparse.set_loader("yaml", _composing_loader(current), exceptions=(yaml.YAMLError,))


def _composing_loader(load: Callable[[str], Any]) -> Callable[..., Any]:
    def load_and_compose(value: str, path: str | None = None) -> Any:
        data = load(value)
        if not path or not isinstance(data, dict):
            return data  # a command-line value, or a config given as a string
        file = Path.cwd() / path  # jsonargparse loads a config file from inside its directory
        if not file.is_file():
            if _uses_defaults(data):
                raise ConfigError(f"cannot find {path!r} to resolve its `{DEFAULTS_KEY}:` relative to it")
            return _finish(data, Path(path))
        return compose(data, file)

    setattr(load_and_compose, _MARK, True)
    return load_and_compose


def _uses_defaults(node: Any) -> bool:
    if isinstance(node, dict):
        return DEFAULTS_KEY in node or any(_uses_defaults(v) for v in node.values())
    if isinstance(node, list):
        return any(_uses_defaults(v) for v in node)
    return False
