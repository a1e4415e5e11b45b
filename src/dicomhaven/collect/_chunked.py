"""pynetdicom's chunked receive: C-STORE data sets written to files as they arrive.

With ``_config.STORE_RECV_CHUNKED_DATASET`` (pynetdicom's documented mechanism for large
data sets) the library writes each received data set, with File Meta Information, to a
temporary file as its PDUs arrive, instead of a buffer in memory; ``event.dataset_path``
names the file. :data:`chunked_receive` turns it on while a receiver runs and decides where
the files go; :func:`received` puts a C-STORE's data set in intake from either form.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from pynetdicom import _config

from dicomhaven.intake import IntakeStore, Receipt, receive_bytes
from dicomhaven.intake._receive import receive_file

__all__ = ["ChunkedReceive", "chunked_receive", "received"]


class ChunkedReceive:
    """While any receiver of this process runs, pynetdicom writes each received data set
    to a temporary file as it arrives (the library's setting is for the whole process).

    Those files are made in a folder of the first running receiver's intake zone
    (``intake/.partial/received-<pid>``, 0700; the process's temporary folder points there
    meanwhile): identifiable bytes stay inside the zone, and on its file system, so intake
    links them instead of copying. pynetdicom removes a file once its C-STORE has been
    answered, but not one whose association broke mid-transfer: what is left is removed
    when the last receiver stops, and a crashed process's folder when the next one starts.
    Afterwards everything is as it was.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._previous: tuple[bool, str | None] = (False, None)
        self._folder: Path | None = None

    def start(self, intake: Path) -> None:
        with self._lock:
            if self._users == 0:
                self._previous = (_config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir)
                parent = intake / ".partial"
                _sweep_dead(parent)
                self._folder = parent / f"{_RECEIVED}{os.getpid()}"
                self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                tempfile.tempdir = str(self._folder)
            self._users += 1
            _config.STORE_RECV_CHUNKED_DATASET = True

    def stop(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir = self._previous
                if self._folder is not None:
                    shutil.rmtree(self._folder, ignore_errors=True)  # broken transfers
                    self._folder = None


_RECEIVED = "received-"  # + the pid of the receiving process


def _sweep_dead(parent: Path) -> None:
    """Remove the received-<pid> folders of receivers that are no longer running."""
    if not parent.is_dir():
        return
    for folder in parent.glob(f"{_RECEIVED}*"):
        pid = folder.name.removeprefix(_RECEIVED)
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


chunked_receive = ChunkedReceive()


def received(event: Any, store: IntakeStore, site_key: bytes) -> Receipt:
    """Put a C-STORE request's data set in intake: from the file pynetdicom wrote it to as
    it arrived (a receiver runs in this process), else from the bytes it holds."""
    path = event.dataset_path  # None unless the data set was received to a file
    if path is not None:
        return receive_file(Path(path), store, site_key)
    return receive_bytes(event.encoded_dataset(include_meta=True), store, site_key)
