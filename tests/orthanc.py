"""Debian's Orthanc as a real PACS, in a private network namespace (tests and benchmarks).

Orthanc 1.10 cannot bind to loopback only: it always listens on every interface. So it runs
in a network namespace of its own, made by ``unshare -n`` (root or CAP_SYS_ADMIN), where the
only interface is a loopback nobody else can reach. A sleeping *holder* process owns the
namespace; Orthanc and every process that talks to it (``dicomhaven scp``, ``dicomhaven
pull``, DCMTK's tools, ``curl``) join it with ``nsenter --net=/proc/HOLDER/ns/net``. The test
process itself stays outside and reaches Orthanc's REST API through ``curl`` in the
namespace, so no thread of the test process ever changes namespace.

Ports inside the namespace are private, so fixed ports never clash with anything else on the
machine (or with another test session, which gets its own namespace).

The launcher raises :class:`PeerUnavailable` when a tool or the privilege is missing; the
pytest fixtures turn that into ``missing_peer`` (skip locally, fail in CI) and the
benchmarks into a message.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORTHANC_BINARY = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ORTHANC_AE = "ORTHANC"
DICOM_PORT = 4242
HTTP_PORT = 8042
START_SECONDS = 30.0
COMMAND_SECONDS = 120.0


class PeerUnavailable(Exception):
    """A tool or privilege the peer needs is missing; the message says which and how to fix."""


@dataclass(frozen=True)
class Modality:
    """An entry of Orthanc's ``DicomModalities``: who may talk to Orthanc, and where Orthanc
    sends what a C-MOVE asks for."""

    ae_title: str
    port: int
    host: str = "127.0.0.1"
    allow_store: bool = False  # may push to Orthanc (C-STORE)
    allow_query: bool = True  # may C-ECHO, C-FIND, C-MOVE and C-GET

    def as_config(self) -> dict[str, object]:
        return {
            "AET": self.ae_title,
            "Host": self.host,
            "Port": self.port,
            "AllowEcho": True,
            "AllowFind": self.allow_query,
            "AllowMove": self.allow_query,
            "AllowGet": self.allow_query,
            "AllowStore": self.allow_store,
        }


class Netns:
    """A private network namespace held by a sleeping process, with loopback up."""

    def __init__(self) -> None:
        for tool in ("unshare", "nsenter", "ip"):
            if shutil.which(tool) is None:
                raise PeerUnavailable(f"{tool} not on PATH (util-linux, iproute2)")
        self._holder = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "ip link set lo up && echo ready && exec sleep infinity"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline()
        if line.strip() != "ready":
            self._holder.kill()
            _, stderr = self._holder.communicate(timeout=COMMAND_SECONDS)
            raise PeerUnavailable(
                "cannot make a private network namespace (unshare -n needs root or "
                f"CAP_SYS_ADMIN): {stderr.strip() or 'no output'}"
            )

    @property
    def path(self) -> str:
        return f"/proc/{self._holder.pid}/ns/net"

    def command(self, *args: str) -> list[str]:
        """``args`` as a command run inside the namespace."""
        return ["nsenter", f"--net={self.path}", "--", *args]

    def run(
        self, *args: str, timeout: float = COMMAND_SECONDS, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, check=check
        )

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``args`` in the namespace; as its own process group (so ``killpg`` ends it
        with its children). nsenter execs the command: the pid is the command's own."""
        return subprocess.Popen(self.command(*args), text=True, start_new_session=True, **kwargs)

    def close(self) -> None:
        if self._holder.poll() is None:
            os.killpg(self._holder.pid, signal.SIGKILL)
        self._holder.communicate(timeout=COMMAND_SECONDS)


@contextlib.contextmanager
def private_network() -> Iterator[Netns]:
    netns = Netns()
    try:
        yield netns
    finally:
        netns.close()


_UPLOAD = """
import json, sys, urllib.request
url, paths = sys.argv[1], sys.argv[2:]
done = failed = 0
for path in paths:
    with open(path, "rb") as handle:
        request = urllib.request.Request(url, data=handle.read(), method="POST",
                                         headers={"Content-Type": "application/dicom"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            ok = json.load(response).get("Status") in ("Success", "AlreadyStored")
    except Exception:
        ok = False
    done, failed = done + ok, failed + (not ok)
print(json.dumps({"uploaded": done, "failed": failed}))
"""


@dataclass
class Orthanc:
    """A running Orthanc in ``netns``: DICOM on :data:`DICOM_PORT`, REST on :data:`HTTP_PORT`."""

    netns: Netns
    base: Path
    proc: subprocess.Popen[str]
    ae_title: str = ORTHANC_AE
    dicom_port: int = DICOM_PORT
    http_port: int = HTTP_PORT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def rest(self, method: str, path: str, body: object | None = None) -> Any:
        """One REST call (JSON in, JSON out) through curl inside the namespace."""
        args = ["curl", "-sS", "--fail-with-body", "-X", method, self.url + path]
        if body is not None:
            args += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        done = self.netns.run(*args)
        if done.returncode != 0:
            raise RuntimeError(f"Orthanc {method} {path}: {done.stdout} {done.stderr}".strip())
        return json.loads(done.stdout) if done.stdout.strip() else None

    def upload(self, paths: Sequence[Path]) -> int:
        """POST each file to /instances; returns how many Orthanc stored (or had already)."""
        if not paths:
            return 0
        command = [sys.executable, "-c", _UPLOAD, self.url + "/instances", *map(str, paths)]
        done = self.netns.run(*command, check=True)
        result = json.loads(done.stdout)
        if result["failed"]:
            raise RuntimeError(f"Orthanc refused {result['failed']} of {len(paths)} uploads")
        return int(result["uploaded"])

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.rest("GET", "/statistics")
        return stats

    def find_instances(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """Instances of the studies matching ``query`` (DICOM keywords, Orthanc's wildcards),
        with their main tags: what a criteria pull should bring."""
        found: list[dict[str, Any]] = self.rest(
            "POST", "/tools/find", {"Level": "Instance", "Query": query, "Expand": True}
        )
        return found

    def log(self) -> str:
        path = self.base / "orthanc.log"
        return path.read_text(errors="replace") if path.exists() else ""


def orthanc_config(base: Path, modalities: dict[str, Modality]) -> dict[str, object]:
    """A PACS-like configuration: only listed AE titles, from their listed host, may query,
    retrieve or store; C-MOVE is answered once every sub-operation is done."""
    return {
        "Name": "dicomhaven-test-pacs",
        "StorageDirectory": str(base / "db"),
        "IndexDirectory": str(base / "db"),
        "DicomAet": ORTHANC_AE,
        "DicomPort": DICOM_PORT,
        "HttpPort": HTTP_PORT,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True,
        "DicomCheckModalityHost": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowMove": False,
        "DicomAlwaysAllowGet": False,
        "DicomModalities": {name: m.as_config() for name, m in modalities.items()},
        "OrthancExplorerEnabled": False,
        "WebDavEnabled": False,
        "SaveJobs": False,
        "StableAge": 1,
        "SynchronousCMove": True,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
    }


@contextlib.contextmanager
def orthanc_server(netns: Netns, base: Path, modalities: dict[str, Modality]) -> Iterator[Orthanc]:
    """Start Orthanc in ``netns`` with its storage under ``base``; SIGKILL it at the end (its
    folder is thrown away, so a clean shutdown, 2-3 s, buys nothing)."""
    if not Path(ORTHANC_BINARY).exists():
        raise PeerUnavailable(f"{ORTHANC_BINARY} not found (apt-get install orthanc)")
    if not DICOMWEB_PLUGIN.exists():
        raise PeerUnavailable(f"{DICOMWEB_PLUGIN} not found (apt-get install orthanc-dicomweb)")
    if shutil.which("curl") is None:
        raise PeerUnavailable("curl not on PATH (apt-get install curl)")
    base.mkdir(parents=True, exist_ok=True)
    config = base / "orthanc.json"
    config.write_text(json.dumps(orthanc_config(base, modalities), indent=2))
    with (base / "orthanc.log").open("wb") as log:
        proc = netns.popen(ORTHANC_BINARY, str(config), stdout=log, stderr=subprocess.STDOUT)
    orthanc = Orthanc(netns, base, proc)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start:\n{orthanc.log()[-2000:]}")
            probe = netns.run("curl", "-sf", "-o", "/dev/null", orthanc.url + "/system")
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not answer in {START_SECONDS} s")
            time.sleep(0.05)
        yield orthanc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=COMMAND_SECONDS)
