"""Structured logging for the command line, and the route library warnings take.

The library itself never configures logging. Log records carry counts, object keys and job
ids only: never a file name or a value read from a file, since either may hold a patient
identifier.

Library warnings (pydicom's above all) quote the value they complain of: "Invalid value for
VR UI: 'TODD^Julia …'". Left alone they print on the terminal, in the middle of a progress
bar. While :func:`route_library_warnings` is in force (the command line, and every pool
worker, see ``pipeline._runner``) each warning is instead classified into a fixed *kind*
made of our words (``invalid value for VR UI``, or the category and the library's source
line when the text is not one we know), logged under that kind without its text, and
counted, so a command's summary can say how many of each kind it met.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from dicomhaven.settings import LogFormat, LogLevel

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "add_library_warnings",
    "classify_warning",
    "collect_warnings",
    "configure_logging",
    "install_warning_route",
    "library_warnings",
    "route_library_warnings",
]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
warnings_log = logging.getLogger("dicomhaven.warnings")


def _exception_outline(
    exc_info: tuple[type[BaseException], BaseException, TracebackType | None],
) -> str:
    """The exception's type and where it was raised, frame by frame: never its text, which
    may quote a value from a file."""
    kind, _exc, tb = exc_info
    frames = [f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)]
    return f"{kind.__name__} (raised at {' <- '.join(reversed(frames)) or 'unknown'})"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["raised_at"] = _exception_outline(record.exc_info)
        return json.dumps(entry, default=str, sort_keys=False)


class TextFormatter(logging.Formatter):
    """The text log format. A traceback is written as its exception type and frames only:
    the standard one ends with the exception's text, which may quote a value."""

    def formatException(self, ei: object) -> str:  # noqa: N802 (logging's name)
        return _exception_outline(ei)  # type: ignore[arg-type]


def configure_logging(log_dir: Path, level: LogLevel, fmt: LogFormat) -> None:
    """Send the ``dicomhaven`` logger to ``log_dir/dicomhaven.log``.

    pydicom's own log records quote element values, so its logger is kept out of our file.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "dicomhaven.log", encoding="utf-8")
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("dicomhaven")
    for old in list(logger.handlers):
        if isinstance(old, logging.FileHandler):
            logger.removeHandler(old)
            old.close()
    logger.addHandler(handler)
    logger.setLevel(level.value)
    logging.getLogger("pydicom").propagate = False


# -- library warnings ---------------------------------------------------------------------------
_VRS = frozenset(
    ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
     "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
     "UR", "US", "UT", "UV")
)  # fmt: skip
#: Known warning texts, each to a kind in our words. A group named ``vr`` is kept only when
#: it is a Value Representation; nothing else of the text is ever kept.
_KNOWN: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), kind)
    for pattern, kind in (
        (r"^Invalid value for VR (?P<vr>[A-Z]{2})\b", "invalid value for VR {vr}"),
        (r"value length \(\d+\) exceeds the maximum length .* VR (?P<vr>[A-Z]{2})\b",
         "value longer than VR {vr} allows"),
        (r"^Expected (explicit|implicit) VR, but found", "VR encoding differs from the transfer syntax"),
        (r"^End of file reached before delimiter", "end of file before a sequence delimiter"),
        (r"^Unknown DICOM tag", "unknown DICOM tag"),
        (r"(?i)unknown encoding|specific character set", "unknown or invalid character set"),
        (r"(?i)failed to decode byte string|using replacement characters", "text not decodable in its character set"),
        (r"(?i)invalid tag|invalid (?:value|element) length", "malformed element"),
    )
)  # fmt: skip

_lock = threading.Lock()
_tally: Counter[str] = Counter()
_logged: set[str] = set()
_local = threading.local()
_routed = threading.Event()  # set while a route is in force in this process


def _where(filename: str, lineno: int) -> str:
    """``package/module.py:line`` of the code that warned (a source file, not a data file)."""
    parts = Path(filename).parts
    for anchor in ("site-packages", "dist-packages", "src"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + 1 :]
            break
    else:
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{lineno}"


def classify_warning(message: str, category: type[Warning], filename: str, lineno: int) -> str:
    """The kind of a warning, in our words: never any part of its text but a VR name."""
    for pattern, kind in _KNOWN:
        found = pattern.search(message)
        if found is not None:
            vr = found.groupdict().get("vr")
            return kind.format(vr=vr if vr in _VRS else "?")
    return f"{category.__name__} at {_where(filename, lineno)}"


def _route(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` while routed: log and count the kind; show nothing."""
    text = str(message)
    kind = classify_warning(text, category, filename, lineno)
    collectors: list[list[str]] = getattr(_local, "collectors", [])
    for collected in collectors:
        collected.append(text)
    with _lock:
        _tally[kind] += 1
        first = kind not in _logged
        _logged.add(kind)
    extra = {"kind": kind, "category": category.__name__, "where": _where(filename, lineno)}
    warnings_log.log(logging.WARNING if first else logging.DEBUG, "library warning: %s", kind,
                     extra=extra)  # fmt: skip


def install_warning_route() -> None:
    """Route every warning of this process from now on (a pool worker, which is ours)."""
    warnings.showwarning = _route
    warnings.simplefilter("always")  # count each one: the default shows a text once
    _routed.set()


@contextmanager
def route_library_warnings() -> Iterator[None]:
    """Route every warning raised inside the block (the command line's whole run); the
    warnings machinery is as it was afterwards."""
    was_routed = _routed.is_set()
    with warnings.catch_warnings():
        install_warning_route()
        try:
            yield
        finally:
            if not was_routed:
                _routed.clear()


def library_warnings() -> Counter[str]:
    """How many warnings of each kind this process has met while routed, including those
    its pool workers reported (see :func:`add_library_warnings`)."""
    with _lock:
        return Counter(_tally)


def add_library_warnings(counts: Mapping[str, int]) -> None:
    """Add warnings met elsewhere (a pool worker) to this process's counts."""
    with _lock:
        _tally.update(counts)


@contextmanager
def collect_warnings() -> Iterator[list[str]]:
    """The texts of the warnings this thread raises inside the block, for a caller that
    decides on them (intake reads a truncation from one). They are routed as usual too.

    Outside a route, warnings are recorded and kept off the terminal for the block, as they
    must be wherever a value from a file may be quoted.
    """
    collected: list[str] = []
    if _routed.is_set():
        stack: list[list[str]] = getattr(_local, "collectors", [])
        _local.collectors = [*stack, collected]
        try:
            yield collected
        finally:
            _local.collectors = stack
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield collected
        finally:
            collected.extend(str(w.message) for w in caught)
