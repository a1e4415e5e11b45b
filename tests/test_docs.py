"""Docs are part of the product: every command is documented, every stage page follows the
template, and links between pages resolve."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from dicomhaven.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TEMPLATE = ["## Purpose", "## Inputs → outputs", "## Configuration", "## Failure statuses"]


def all_docs() -> str:
    pages = [ROOT / "README.md", *DOCS.rglob("*.md")]
    return "\n".join(p.read_text() for p in pages)


def test_every_command_is_documented() -> None:
    command = typer.main.get_command(app)
    names = list(getattr(command, "commands", {}))
    assert "import" in names
    text = all_docs()
    for name in names:
        assert f"dicomhaven {name}" in text, f"no documentation mentions 'dicomhaven {name}'"


def test_stage_pages_follow_the_template() -> None:
    pages = sorted((DOCS / "stages").glob("*.md"))
    assert len(pages) >= 4
    for page in pages:
        text = page.read_text()
        for heading in TEMPLATE:
            assert any(line.startswith(heading) for line in text.splitlines()), (
                f"{page.name} lacks '{heading}'"
            )


def test_relative_links_resolve() -> None:
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
