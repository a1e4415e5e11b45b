"""Each de-identification option's page names the standard's terms and shows what the engine
does now: its worked example is the output of ``scripts/option_examples.py``, so a change of
behaviour that the docs do not follow fails here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from dicomhaven.deid import Option, load_profile
from dicomhaven.deid._engine import _METHOD_CODES

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "docs" / "options"
BUILTIN = ("limited-access", "publication")
#: Every option the engine implements has a page.
DOCUMENTED = set(Option)


def _load_script() -> ModuleType:
    path = ROOT / "scripts" / "option_examples.py"
    spec = importlib.util.spec_from_file_location("option_examples", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


script = _load_script()
EXAMPLE_OPTIONS: list[Option] = [example.option for example in script.EXAMPLES]


def page_of(option: Option) -> Path:
    path: Path = script.page_path(option)
    return path


def section(text: str, heading: str) -> str:
    """The text under a '## ' heading, up to the next one."""
    _, found, rest = text.partition(f"\n{heading}\n")
    assert found, f"no '{heading}' section"
    return rest.split("\n## ", 1)[0]


def test_every_page_is_an_option_with_an_example() -> None:
    pages = {p.stem for p in PAGES.glob("*.md") if p.name != "README.md"}
    values = {o.value for o in Option}
    assert {p.replace("-", "_") for p in pages} <= values, "a page is named after no Option"
    assert pages == {page_of(o).stem for o in EXAMPLE_OPTIONS}, (
        "each page needs an Example in scripts/option_examples.py, and each Example a page"
    )
    assert set(EXAMPLE_OPTIONS) >= DOCUMENTED


@pytest.mark.parametrize("option", EXAMPLE_OPTIONS, ids=lambda o: o.value)
def test_page_names_the_standard_terms(option: Option) -> None:
    text = page_of(option).read_text(encoding="utf-8")
    flat = " ".join(text.split())
    title = text.splitlines()[0]
    assert title.startswith("# ") and title.endswith(" Option"), title
    words = {w.lower() for w in title[2:].split()}
    assert {w.lower() for w in option.standard_name.split()} <= words, (title, option)
    code, meaning = _METHOD_CODES[option]
    assert f"`{code}`" in flat and f'"{meaning}"' in flat, f"page lacks DCM {code} {meaning}"
    assert f"`{option.value}`" in flat
    worked = section(text, "## Worked example")
    assert script.START in worked and script.END in worked


@pytest.mark.parametrize("option", EXAMPLE_OPTIONS, ids=lambda o: o.value)
def test_page_names_the_built_in_profiles_that_choose_it(option: Option) -> None:
    text = section(page_of(option).read_text(encoding="utf-8"), "## Built-in profiles")
    for name in BUILTIN:
        chosen = option in load_profile(name).options
        assert (f"`{name}`" in text) == chosen, f"{page_of(option).name}: {name} {chosen=}"


@pytest.mark.parametrize("option", EXAMPLE_OPTIONS, ids=lambda o: o.value)
def test_worked_example_is_what_the_engine_does(option: Option) -> None:
    page = page_of(option)
    assert script.page_block(page.read_text(encoding="utf-8")) == script.example_block(option), (
        f"{page.name} is stale: run python scripts/option_examples.py --write"
    )


def test_index_lists_every_option_with_its_code_and_profiles() -> None:
    index = (PAGES / "README.md").read_text(encoding="utf-8")
    for option in Option:
        rows = [line for line in index.splitlines() if f"| `{option.value}` |" in line]
        assert len(rows) == 1, f"README.md needs one table row for {option.value}"
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert cells[2] == _METHOD_CODES[option][0], option
        chosen = {n for n in BUILTIN if option in load_profile(n).options}
        assert {c.strip() for c in cells[3].split(",")} - {"—"} == chosen, option
        if option in EXAMPLE_OPTIONS:
            assert f"]({page_of(option).name})" in rows[0], f"README.md must link {option}"
