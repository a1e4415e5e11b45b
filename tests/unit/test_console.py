"""``safe`` and ``printable``: text for the terminal that cannot act on it."""

from __future__ import annotations

from rich.console import Console

from dicomhaven._console import printable, safe


def test_printable_escapes_every_control_character() -> None:
    assert (
        printable("a\x1b[31mb\nc\rd\x00e\x7ff\x9bg") == "a\\x1b[31mb\\x0ac\\x0dd\\x00e\\x7ff\\x9bg"
    )
    assert printable("right\u202eto-left\u2028") == "right\\u202eto-left\\u2028"
    assert printable("Zoë Ñandú 名前.dcm") == "Zoë Ñandú 名前.dcm"


def test_safe_text_prints_exactly_as_given_through_rich_markup() -> None:
    console = Console(highlight=False, soft_wrap=True, width=200, record=True)
    for name in ("rej_rich[/].bin", "[bold]x[/bold]", "a\\[b]", "\\", "[link=x]y[/link]", "a\\\\"):
        with console.capture() as capture:
            console.print(safe(name))
            console.print(f"  rejected {safe(name)}: {safe(name)}")
        assert capture.get() == f"{name}\n  rejected {name}: {name}\n"
