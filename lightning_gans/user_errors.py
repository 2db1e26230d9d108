"""One line for a bad input: the CLI's parser and class instantiation errors condensed to the option at fault, the
value and what is allowed — no jsonargparse Namespace dump, no traceback from inside a library.

``LIGHTNING_GANS_DEBUG=1`` turns the condensing off (full jsonargparse messages and tracebacks). Errors that are
not about the user's input (an ``AttributeError`` inside a model, a CUDA failure) are never condensed: they show
their traceback, as a bug should.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, NoReturn

from lightning.pytorch.cli import LightningArgumentParser

from lightning_gans.errors import ConfigError

NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Given value:",
    "- Expected a <class 'NoneType'>",
    "tip: For details",
)
KEY = re.compile(r'Parser key "([^"]+)"')
NOT_ACCEPTED = re.compile(r"Option '([\w.]+)' is not accepted")
ARGV: list[str] = []  # the command line being parsed (set by ``cli.main``): names an option a message leaves out
CLASS_PATH = re.compile(r"class_path '([\w.]+)'|class_path='([\w.]+)'")


def debug_enabled() -> bool:
    """``LIGHTNING_GANS_DEBUG`` set to anything but ``0``/empty: show full errors and tracebacks."""
    return os.environ.get("LIGHTNING_GANS_DEBUG", "0") not in ("", "0")


def condense(message: str) -> str:
    """A jsonargparse error message as one line: ``--key (Class): the first informative line``."""
    key = KEY.search(message)
    found = CLASS_PATH.search(message)
    cls = (found.group(1) or found.group(2)).rsplit(".", 1)[-1] if found else None
    useful = []
    for raw in message.splitlines():
        line = raw.strip().lstrip("- ").strip()
        if not line or KEY.fullmatch(line.rstrip(":")) or any(raw.strip().startswith(n) for n in NOISE):
            continue
        if line.startswith("Problem with given class_path") or line.startswith("error: Parser key"):
            continue
        useful.append(line)
    where = f"--{key.group(1)}" if key else "option"
    detail = useful[0] if useful else message.strip().splitlines()[-1]
    unknown = NOT_ACCEPTED.search(message)
    if unknown:
        given = [a.split("=")[0] for a in ARGV if a.split("=")[0].endswith(f".{unknown.group(1)}")]
        where = given[0] if given else where
        detail = "no such option here (it may belong to another class or group: --print_config shows them all)"
    return f"{where}{f' ({cls})' if cls else ''}: {detail}"


def error_line(err: BaseException) -> str:
    """The message of ``err`` to print. An error re-raised by a DataLoader worker carries "Caught X in DataLoader
    worker process N." and the worker's traceback: only the worker's own message (its last line) is kept."""
    text = str(err)
    if "\nOriginal Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    name, sep, message = last.partition(": ")
    return message if sep and name.rsplit(".", 1)[-1] == type(err).__name__ else last


def fail(prog: str, err: BaseException, code: int | None = None) -> NoReturn:
    """``prog: error: <one line>`` on stderr and exit ``code`` (default the error's ``exit_code``, else 1); under
    ``LIGHTNING_GANS_DEBUG`` re-raise ``err`` instead, with its traceback. Every subcommand ends its errors here."""
    if debug_enabled():
        raise err
    print(f"{prog}: error: {error_line(err)}", file=sys.stderr)
    sys.exit(code if code is not None else getattr(err, "exit_code", 1))


def root_cause(err: BaseException) -> BaseException:
    """The first exception of ``err``'s ``__cause__`` chain (what a class's ``__init__`` raised)."""
    while err.__cause__ is not None:
        err = err.__cause__
    return err


class OneLineParser(LightningArgumentParser):
    """``LightningArgumentParser`` whose errors are one line (``prog: error: …``) and exit 2."""

    def error(self, message: str, *args: Any, **kwargs: Any) -> NoReturn:
        if debug_enabled() or not self.exit_on_error:  # jsonargparse's internal tries raise and recover
            super().error(message, *args, **kwargs)
        print(f"{self.prog}: error: {condense(message)} (lightning-gans fit --help lists the options)", file=sys.stderr)
        raise SystemExit(2)


def instantiation_error(err: BaseException, sections: dict[str, str]) -> ConfigError | None:
    """A one-line :class:`ConfigError` for a class ``__init__`` that rejected its options (``ValueError``/
    ``TypeError`` at the root of ``err``), naming the config section (``sections``: class path → ``model``,
    ``data``, …); None for anything else (a bug: keep its traceback)."""
    root = root_cause(err)
    if isinstance(root, ConfigError):
        return root
    if not isinstance(root, ValueError | TypeError) or debug_enabled():
        return None
    found = CLASS_PATH.search(str(err))
    path = (found.group(1) or found.group(2)) if found else None
    section = sections.get(path or "", "option")
    name = f" ({path.rsplit('.', 1)[-1]})" if path else ""
    detail = " ".join(str(root).split()) if root is not err else condense(str(err))
    return ConfigError(f"--{section}{name}: {detail}")


def wandb_api_key() -> str | None:
    """The W&B API key wandb would use (``WANDB_API_KEY`` or a ``~/.netrc`` entry for the W&B host), or None."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    return entry[2] if entry else None
