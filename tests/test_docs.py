"""Docs that cannot go stale: README size and links, the layout lists, and the template model.

* ``README.md`` stays at most ``README_MAX_LINES`` lines; every relative link in it and in ``docs/**/*.md`` points at
  a file that exists (and, with ``#anchor``, at a heading that exists); every page under ``docs/`` is linked from
  ``docs/index.md``.
* Layout lists — the ``## Layout`` section of the README and all of ``docs/layout.md`` — are markdown list items
  ``- `path` — one line``. Every listed path must exist (a trailing ``/`` means a directory), and
  ``docs/layout.md`` must list every package and module under ``lightning_gans/`` and ``datamodules/``:
  each directory holding Python files (``name/``) and each ``.py`` file except ``__init__.py``. Private
  ``_modules.py`` are listed too: they are where a reader looks for the shared pieces.
* ``docs/template_model.py`` (the "how to add a GAN" template) trains for two GAN steps, in Python and through the
  CLI with ``docs/template_model.yaml``.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch
from toy_training import bare_trainer

from datamodules.toy import ToyDataModule

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
LAYOUT = DOCS / "layout.md"
README_MAX_LINES = 250
LAYOUT_ROOTS = ("lightning_gans", "datamodules")  # every package and module under these is in docs/layout.md

# A layout entry: "- `path` — description" (em dash), at any indentation.
LAYOUT_ENTRY = re.compile(r"^\s*[-*]\s+`(?P<path>[^`]+)`\s+—\s+(?P<what>\S.*)$")
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$", re.MULTILINE)


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code (links there are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _slug(title: str) -> str:
    """GitHub's heading anchor: markup dropped, lower case, punctuation removed, spaces → hyphens."""
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # [text](link) → text
    title = title.replace("`", "").replace("*", "").lower()
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    """Heading anchors of ``md``, with GitHub's -1, -2, … suffixes for repeated headings."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for match in HEADING.finditer(FENCE.sub("", md.read_text(encoding="utf-8"))):
        slug = _slug(match["title"])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def broken_links(md: Path) -> list[str]:
    """``"file: target (why)"`` for every relative link of ``md`` that does not resolve."""
    broken = []
    for match in LINK.finditer(_prose(md.read_text(encoding="utf-8"))):
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (md.parent / path_part).resolve() if path_part else md
        where = f"{md.relative_to(REPO)}: {target}"
        if not dest.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where} (no heading #{anchor} in {dest.relative_to(REPO)})")
    return broken


def layout_entries(text: str) -> dict[str, str]:
    """``{path: description}`` of the layout list items in ``text``; a path listed twice is an error."""
    entries: dict[str, str] = {}
    for line in FENCE.sub("", text).splitlines():
        match = LAYOUT_ENTRY.match(line)
        if match is None:
            continue
        path = match["path"]
        assert path not in entries, f"{path} is listed twice"
        entries[path] = match["what"].strip()
    return entries


def readme_layout() -> dict[str, str]:
    """The layout entries of the README's ``## Layout`` section."""
    section = re.search(r"^## Layout\s*$(?P<body>.*?)(?=^## |\Z)", README.read_text(encoding="utf-8"), re.M | re.S)
    assert section is not None, "README.md has no '## Layout' section"
    return layout_entries(section["body"])


def expected_layout() -> set[str]:
    """Every package (``dir/``, a directory holding Python files) and module (``.py`` but ``__init__.py``)."""
    expected: set[str] = set()
    for root in LAYOUT_ROOTS:
        for module in (REPO / root).rglob("*.py"):
            rel = module.relative_to(REPO)
            if "__pycache__" in rel.parts:
                continue
            if module.name != "__init__.py":
                expected.add(rel.as_posix())
            expected.update(f"{parent.as_posix()}/" for parent in rel.parents if parent != Path("."))
    return expected


def missing_paths(entries: dict[str, str]) -> list[str]:
    missing = []
    for path in entries:
        dest = REPO / path.rstrip("/")
        if not (dest.is_dir() if path.endswith("/") else dest.is_file()):
            missing.append(path)
    return sorted(missing)


# --------------------------------------------------------------------------------------------- README
def test_readme_is_short() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"


def test_relative_links_resolve() -> None:
    broken = [b for md in markdown_files() for b in broken_links(md)]
    assert not broken, "broken links:\n  " + "\n  ".join(broken)


def test_every_docs_page_is_linked_from_the_index() -> None:
    index = DOCS / "index.md"
    linked = {
        (index.parent / m["target"].partition("#")[0]).resolve()
        for m in LINK.finditer(_prose(index.read_text(encoding="utf-8")))
    }
    pages = [p for p in sorted(DOCS.rglob("*.md")) if p != index]
    unlinked = [str(p.relative_to(REPO)) for p in pages if p.resolve() not in linked]
    assert not unlinked, f"pages not linked from docs/index.md: {unlinked}"


def test_link_checker_catches_a_broken_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself: a missing file and a missing heading are reported, code is skipped."""
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "b.md").write_text("# Real heading\n", encoding="utf-8")
    md = tmp_path / "a.md"
    md.write_text(
        "[ok](b.md) [ok](b.md#real-heading) [web](https://x.org) `[code](nope.md)`\n"
        "[gone](nope.md) [bad anchor](b.md#other)\n```\n[fenced](nope2.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(md) == ["a.md: nope.md (no such file)", "a.md: b.md#other (no heading #other in b.md)"]


# --------------------------------------------------------------------------------------------- layout
def test_readme_layout_paths_exist() -> None:
    entries = readme_layout()
    assert entries, "README.md's Layout section lists no `path` — description items"
    missing = missing_paths(entries)
    assert not missing, f"README.md's Layout lists paths that do not exist: {missing}"


def test_docs_layout_paths_exist() -> None:
    missing = missing_paths(layout_entries(LAYOUT.read_text(encoding="utf-8")))
    assert not missing, f"docs/layout.md lists paths that do not exist (remove or rename them): {missing}"


def test_docs_layout_lists_every_package_and_module() -> None:
    listed = set(layout_entries(LAYOUT.read_text(encoding="utf-8")))
    unlisted = sorted(expected_layout() - listed)
    assert not unlisted, f"add to docs/layout.md, each as '- `path` — one line': {unlisted}"


def test_layout_parser() -> None:
    text = "- `a/` — the a package\n  - `a/b.py` — b\n- `c.py`: not an entry\n```\n- `d.py` — fenced\n```\n"
    assert layout_entries(text) == {"a/": "the a package", "a/b.py": "b"}


# --------------------------------------------------------------------------------------------- template
def _import_template():
    spec = importlib.util.spec_from_file_location("docs_template_model", DOCS / "template_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_template_model_trains_two_steps(tmp_path: Path) -> None:
    template = _import_template()
    torch.manual_seed(0)
    model = template.TemplateGAN()
    before = [p.detach().clone() for p in model.parameters()]
    data = ToyDataModule(dataset="grid25", num_samples=64, batch_size=16)
    trainer = bare_trainer(tmp_path, max_steps=2, limit_val_batches=0)
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 2  # one GAN step per batch
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "a parameter did not train"
    assert torch.isfinite(trainer.callback_metrics["d_loss"])  # epoch means
    assert torch.isfinite(trainer.callback_metrics["g_loss"])
    samples = model.sample(5)
    assert samples.shape == (5, 2) and torch.isfinite(samples).all()


def test_template_experiment_fits_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_gans.cli import RUN_DIR_ENV, main

    runs = tmp_path / "runs"
    monkeypatch.syspath_prepend(str(DOCS))  # class_path: template_model.TemplateGAN
    monkeypatch.setenv("LIGHTNING_GANS_RUNS", str(runs))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["lightning-gans"])
    monkeypatch.chdir(tmp_path)
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    main(["fit", "--config", str(DOCS / "template_model.yaml"), "--trainer.max_steps=2", *quiet])
    (run,) = [p for p in (runs / "template_model").iterdir() if p.is_dir()]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2
    assert "template_model.TemplateGAN" in (run / "config.yaml").read_text(encoding="utf-8")
