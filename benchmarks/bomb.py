"""Peak memory of what a hostile or merely large object costs: one command.

    .venv/bin/python benchmarks/bomb.py [--megabytes 300] [--runs 1]

1. ``import`` and ``redact`` of a decompression bomb: a JPEG 2000 Lossless file of under
   1 KB whose SIZ marker and Rows/Columns claim 60000 x 60000 at 16 bits (7.2 GB decoded),
   Burned In Annotation YES (tests/pixels/bombs.py makes it). Goal: each under 300 MB, held
   with the declared size check's reason. Before the check: 7.4 GB and 23 s for import.
2. The receiver (``dicomhaven scp``) on one large C-STORE (``--megabytes`` of uncompressed
   16-bit noise, sent by DCMTK's storescu) beside DCMTK's own receiver, storescp, the peer,
   receiving the same file in the same run. The receiver's figure is its own process's peak
   (VmHWM, read from /proc before it stops); GNU time's figure for the whole command
   includes the pipeline processes it starts (run here with --drain-seconds 0: the pipeline
   is not part of receiving). Before streaming to disk: 2.2 GB for a 1 GB object.

Peak memory is GNU time's maximum resident set size (``/usr/bin/time``, as in
``benchmarks/commands.py``); the files are synthetic and made fresh in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the bomb's builder lives with the tests

from tests.pixels.bombs import jpeg2000_bomb, large_image  # noqa: E402

VENV_BIN = Path(sys.executable).parent
DICOMHAVEN = VENV_BIN / "dicomhaven"
GOAL_BOMB_MIB = 300
TIME = "/usr/bin/time"
START_SECONDS = 60.0
STOP_SECONDS = 600.0


def timed(command: list[str | Path], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Wall seconds, peak MiB (GNU time), exit code and stdout of one fresh process."""
    argv = [TIME, "-f", "%M", *(str(c) for c in command)]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    last = done.stderr.strip().splitlines()[-1:] or ["0"]
    peak = float(last[0]) / 1024 if last[0].isdigit() else float("nan")
    return wall, peak, done.returncode, done.stdout


def fresh_site(work: Path, name: str, env: dict[str, str]) -> tuple[Path, str]:
    site = work / name
    subprocess.run([DICOMHAVEN, "init", site], check=True, capture_output=True, env=env)
    done = subprocess.run(
        [DICOMHAVEN, "users", "add", "bench", "--role", "data-manager", "--site", site],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return site, done.stdout.strip().splitlines()[-1]


def held_reason(site: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [DICOMHAVEN, "ledger", "--site", site, "--json"], capture_output=True, text=True, env=env
    )
    reasons = json.loads(done.stdout).get("reasons") or [["(none)", 0]]
    return str(reasons[0][0])


def bomb_rows(work: Path, env: dict[str, str], runs: int) -> list[str]:
    folder = work / "bomb-in"
    bomb = jpeg2000_bomb(folder / "bomb.dcm")
    rows = [f"  the bomb: {bomb.stat().st_size} bytes on disk, declares 60000 x 60000 x 16 bits"]
    for run in range(runs):
        site, token = fresh_site(work, f"bomb-site-{run}", env)
        wall, peak, code, _ = timed([DICOMHAVEN, "import", folder, "--site", site], env)
        verdict = "ok" if peak < GOAL_BOMB_MIB else f"over the {GOAL_BOMB_MIB} MiB goal"
        rows.append(f"  import  {peak:7.0f} MiB  {wall:6.2f} s  exit {code}  {verdict}")
        rows.append(f"          ledger: {held_reason(site, env)[:110]}")
        out = work / f"bomb-out-{run}"
        argv: list[str | Path] = [DICOMHAVEN, "redact", folder, out, "--site", site]
        wall, peak, code, _ = timed([*argv, "--token", token], env)
        verdict = "ok" if peak < GOAL_BOMB_MIB else f"over the {GOAL_BOMB_MIB} MiB goal"
        rows.append(f"  redact  {peak:7.0f} MiB  {wall:6.2f} s  exit {code}  {verdict}")
        for reason in (out / "held").rglob("*.reason.json"):
            rows.append(f"          held: {json.loads(reason.read_text())['reason'][:110]}")
    return rows


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _peak_of(pid: int) -> float:
    """VmHWM of one process, MiB (its own peak resident set, children not included)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Receiver:
    """A receiver running under GNU time, and what it wrote on stderr."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The receiver's own process: GNU time's only child."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return int(path.read_text().split()[0])

    def stop(self) -> tuple[float, float]:
        """(the receiver's own peak, GNU time's peak) in MiB, after a clean SIGTERM stop."""
        pid = self.pid
        own = _peak_of(pid)
        os.kill(pid, signal.SIGTERM)  # it stops once the pipeline has finished its object
        try:
            self.proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: ours only
            self.proc.wait()
            return own, float("nan")
        time.sleep(0.2)  # the drain thread reads GNU time's last line
        tail = [line.strip() for line in self.lines if line.strip()]
        whole = float(tail[-1]) / 1024 if tail and tail[-1].isdigit() else float("nan")
        return own, whole


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _start(
    argv: list[str | Path], env: dict[str, str], *, ready_text: str | None, port: int
) -> Receiver:
    """Start a receiver under GNU time; return once it says it listens (or, for a peer that
    says nothing, once its port takes a connection)."""
    proc = subprocess.Popen(
        [TIME, "-f", "%M", *(str(a) for a in argv)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    receiver = Receiver(proc)
    ready = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            receiver.lines.append(line)
            if ready_text is not None and ready_text in line:
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + START_SECONDS
    while ready_text is None and not _listening(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    if ready_text is None:
        ready.set()
    if not ready.wait(START_SECONDS) or proc.poll() is not None:
        raise RuntimeError("receiver did not start: " + "".join(receiver.lines[-5:]))
    return receiver


def storescu(port: int, called: str, path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(
        ["storescu", "-aet", "STORESCU", "-aec", called, "127.0.0.1", str(port), str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    return time.perf_counter() - start, done.returncode


def receiver_rows(work: Path, env: dict[str, str], megabytes: int) -> list[str]:
    if shutil.which("storescu") is None or shutil.which("storescp") is None:
        return ["  storescu/storescp not on PATH (make sysdeps): receiver not measured"]
    big = large_image(work / "large.dcm", megabytes)
    size_mib = big.stat().st_size / (1 << 20)
    rows = [f"  the object: {size_mib:.0f} MiB, uncompressed, Explicit VR Little Endian"]
    site, _ = fresh_site(work, "scp-site", env)
    port = free_port()
    argv: list[str | Path] = [DICOMHAVEN, "scp", "--site", site, "--port", str(port),
                              "--allow", "STORESCU", "--drain-seconds", "0", "--json"]  # fmt: skip
    receiver = _start(argv, env, ready_text="listening on", port=port)
    seconds, code = storescu(port, "DICOMHAVEN", big)
    own, whole = receiver.stop()
    rows.append(
        f"  dicomhaven scp  receiver {own:6.0f} MiB  (whole command {whole:6.0f} MiB)  "
        f"{seconds:6.2f} s  storescu exit {code}"
    )
    stored = work / "storescp-out"
    stored.mkdir()
    port = free_port()
    receiver = _start(["storescp", "-od", stored, str(port)], env, ready_text=None, port=port)
    seconds, code = storescu(port, "ANY-SCP", big)
    own, whole = receiver.stop()
    rows.append(
        f"  storescp (peer) receiver {own:6.0f} MiB  (whole command {whole:6.0f} MiB)  "
        f"{seconds:6.2f} s  storescu exit {code}"
    )
    # --bit-preserving: storescp writes the data set to its file as it arrives.
    stored = work / "storescp-bit-preserving"
    stored.mkdir()
    port = free_port()
    peer = ["storescp", "--bit-preserving", "-od", stored, str(port)]
    receiver = _start(peer, env, ready_text=None, port=port)
    seconds, code = storescu(port, "ANY-SCP", big)
    own, whole = receiver.stop()
    rows.append(
        f"  storescp -B     receiver {own:6.0f} MiB  (whole command {whole:6.0f} MiB)  "
        f"{seconds:6.2f} s  storescu exit {code}"
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=300, help="size of the C-STORE")
    parser.add_argument("--runs", type=int, default=1, help="runs of the bomb commands")
    args = parser.parse_args(argv)
    env = {**os.environ, "DICOMHAVEN_DEVICE_GATE": "false"}
    with tempfile.TemporaryDirectory(prefix="dicomhaven-bomb-") as tmp:
        work = Path(tmp)
        print("Decompression bomb (goal: under 300 MiB, held by the declared size check)")
        for row in bomb_rows(work, env, args.runs):
            print(row, flush=True)
        print(f"\nOne large C-STORE ({args.megabytes} MB) from storescu")
        for row in receiver_rows(work, env, args.megabytes):
            print(row, flush=True)


if __name__ == "__main__":
    main()
