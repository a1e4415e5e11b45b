"""Text that reaches the terminal: file names and values are shown, never obeyed.

A file name is chosen by whoever made the file. Printed raw through Rich it can break the
command (``[/]`` is a Rich markup error), restyle the screen or hide what came before it
(ANSI escape sequences, carriage returns), or forge a line of output (a newline). Every
path and value the command line prints goes through :func:`safe` (consoles with Rich
markup) or :func:`printable` (consoles without it, and plain text).
"""

from __future__ import annotations

import unicodedata

from rich.markup import escape

__all__ = ["printable", "safe"]

# Characters that reorder text on the screen (the "Trojan Source" bidirectional controls).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _shown(char: str) -> str:
    code = ord(char)
    if unicodedata.category(char) == "Cc" or char in _BIDI or char in "\u2028\u2029":
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char


def printable(text: object) -> str:
    """``text`` with every control character (C0, DEL, C1, line and paragraph separators,
    bidirectional controls) written as ``\\xNN`` or ``\\uNNNN``, so it prints as one inert
    line."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(_shown(char) for char in value)


def safe(text: object) -> str:
    """``text`` for a Rich console with markup on: controls escaped (see :func:`printable`)
    and Rich markup (``[bold]``, ``[/]``) escaped, so it prints exactly as it is.

    Not for text that markup follows at once: Rich's ``escape`` doubles a final backslash
    so that it cannot escape a ``[`` after it, which then shows twice before plain text;
    the sentinel keeps the final backslash single (every caller follows it with text).
    """
    return escape(printable(text) + "_")[:-1]
