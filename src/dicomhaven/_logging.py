"""Structured logging for the command line. The library itself never configures logging.

Log records carry counts, object keys and job ids only: never a file name or a value read
from a file, since either may hold a patient identifier.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from dicomhaven.settings import LogFormat, LogLevel

__all__ = ["configure_logging"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


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
        return json.dumps(entry, default=str, sort_keys=False)


def configure_logging(log_dir: Path, level: LogLevel, fmt: LogFormat) -> None:
    """Send the ``dicomhaven`` logger to ``log_dir/dicomhaven.log``.

    pydicom's own warnings quote element values, so its logger is kept out of our file.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "dicomhaven.log", encoding="utf-8")
    if fmt is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("dicomhaven")
    for old in list(logger.handlers):
        if isinstance(old, logging.FileHandler):
            logger.removeHandler(old)
            old.close()
    logger.addHandler(handler)
    logger.setLevel(level.value)
    logging.getLogger("pydicom").propagate = False
