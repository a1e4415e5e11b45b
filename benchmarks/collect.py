"""DICOM receiving throughput: ``dicomhaven scp`` beside Orthanc, fed by the same storescu, in
one run.

    .venv/bin/python benchmarks/collect.py [--patients 30] [--repeat 3] [--associations 1 4]

DCMTK's ``storescu`` sends one folder of synthetic DICOM files (a few hundred, from
``dicomhaven synth``) to each receiver; a run's time is storescu's wall time, from its start
to its exit, which comes after the last object was acknowledged. Both receivers persist
before they acknowledge: Orthanc writes its storage area and SQLite index; dicomhaven writes
intake (fsync on, the default) and commits the ledger. The runs:

- ``dicomhaven scp`` as it runs on a site, the pipeline working on received objects in a
  background process (it competes for the same 2 cores);
- ``dicomhaven scp`` with an empty pipeline: intake + ledger only, what the goal is about;
- Orthanc 1.10 (Debian), a fresh storage folder per run.

With ``--associations N`` the files are split over N storescu processes sending at once.
Everything runs in a private network namespace (tests/orthanc.py), which needs root. Rounds
interleave the receivers; each figure is a median over rounds, and the ratio is the median
of per-round ratios of dicomhaven's rate to Orthanc's. Goal (issue 7): intake + ledger only
at least 0.7x Orthanc's rate.

Reading the figures: over one association Orthanc 1.10 spends about 80 ms per instance on
this machine whatever the file size (strace: one fdatasync of its index per instance, 1-5 ms
each), and four associations are nearly four times faster, so its one-association rate is
bound by a per-object latency, likely the delayed-ACK stall that dicomhaven's receiver
avoids with TCP_QUICKACK (docs/stages/receive.md). The four-association ratio is the fairer
comparison of the work each receiver does.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the Orthanc launcher lives with the tests

from tests.orthanc import (  # noqa: E402
    DICOM_PORT,
    ORTHANC_AE,
    Modality,
    Netns,
    PeerUnavailable,
    orthanc_server,
    private_network,
)

from dicomhaven.site import init_site  # noqa: E402
from dicomhaven.synth import generate_site  # noqa: E402

SCP_PORT = 11112
SCP_AE = "DICOMHAVEN"
CALLING_AE = "STORESCU"
GOAL = 0.7
START_SECONDS = 60.0

# Runs dicomhaven's CLI with the pipeline emptied (intake + ledger only), as
# benchmarks/import.py does for folder import.
_EMPTY_PIPELINE = """
import sys
from dicomhaven import ingest
from dicomhaven.pipeline import Pipeline
ingest.pipeline_for = lambda site: Pipeline(stages=())
from dicomhaven.cli import main
sys.exit(main(sys.argv[1:]))
"""


def storescu(netns: Netns, files: list[Path], port: int, called: str, associations: int) -> float:
    """Seconds for ``associations`` storescu processes to send ``files`` (split evenly)."""
    tool = shutil.which("storescu")
    if tool is None:
        raise PeerUnavailable("storescu not on PATH (apt-get install dcmtk)")
    parts = [files[i::associations] for i in range(associations)]
    start = time.perf_counter()
    procs = []
    for part in parts:
        command = [tool, "-nh", "-aet", CALLING_AE, "-aec", called, "127.0.0.1", str(port)]
        command += map(str, part)
        procs.append(netns.popen(*command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for proc in procs:
        _, stderr = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"storescu failed: {stderr[-500:]}")
    return time.perf_counter() - start


def dicomhaven_run(
    netns: Netns, files: list[Path], scratch: Path, associations: int, *, pipeline: bool
) -> float:
    site = init_site(scratch / "site")
    prefix = ["-m", "dicomhaven"] if pipeline else ["-c", _EMPTY_PIPELINE]
    proc = netns.popen(
        sys.executable, *prefix, "scp", "--site", str(site.root), "--port", str(SCP_PORT),
        "--allow", CALLING_AE, "--drain-seconds", "0", "--json",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    deadline = time.monotonic() + START_SECONDS
    while "listening on" not in proc.stderr.readline():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("dicomhaven scp did not start")
    try:
        seconds = storescu(netns, files, SCP_PORT, SCP_AE, associations)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=600)
    if '"stored": ' + str(len(files)) not in out:
        raise RuntimeError(f"dicomhaven scp did not store every file: {out[-500:]}")
    return seconds


def orthanc_run(netns: Netns, files: list[Path], scratch: Path, associations: int) -> float:
    modalities = {"storescu": Modality(CALLING_AE, 104, allow_store=True, allow_query=False)}
    with orthanc_server(netns, scratch / "orthanc", modalities) as orthanc:
        seconds = storescu(netns, files, DICOM_PORT, ORTHANC_AE, associations)
        stored = orthanc.statistics()["CountInstances"]
    if stored != len(files):
        raise RuntimeError(f"Orthanc stored {stored} of {len(files)} files")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=30, help="synthetic patients to send")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--associations", type=int, nargs="+", default=[1, 4], help="storescu processes at once"
    )
    args = parser.parse_args()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="dicomhaven-bench-") as tmp,
            private_network() as netns,
        ):
            scratch = Path(tmp)
            generate_site(scratch / "synth", patients=args.patients, seed=1)
            files = sorted((scratch / "synth" / "export").rglob("*.dcm"))
            megabytes = sum(p.stat().st_size for p in files) / 1e6
            print(f"corpus: {len(files)} files, {megabytes:.1f} MB (synthetic, seed 1)")
            runners: dict[str, Callable[[Path, int], float]] = {
                "dicomhaven scp, pipeline running": lambda d, n: dicomhaven_run(
                    netns, files, d, n, pipeline=True
                ),
                "dicomhaven scp, intake + ledger only": lambda d, n: dicomhaven_run(
                    netns, files, d, n, pipeline=False
                ),
                "Orthanc 1.10 (Debian)": lambda d, n: orthanc_run(netns, files, d, n),
            }
            results: list[str] = []
            for associations in args.associations:
                times: dict[str, list[float]] = {label: [] for label in runners}
                ratios: dict[str, list[float]] = {label: [] for label in runners}
                for round_ in range(args.repeat):
                    for index, (label, run) in enumerate(runners.items()):
                        folder = scratch / f"a{associations}-r{round_}-{index}"
                        folder.mkdir()
                        times[label].append(run(folder, associations))
                        shutil.rmtree(folder)
                    peer = times["Orthanc 1.10 (Debian)"][-1]
                    for label in runners:
                        ratios[label].append(peer / times[label][-1])  # rate ratio
                print(f"\nstorescu associations at once: {associations}")
                print(f"{'receiver':<40} {'instances/s':>12} {'MB/s':>8} {'rate vs Orthanc':>16}")
                for label in runners:
                    seconds = statistics.median(times[label])
                    ratio = statistics.median(ratios[label])
                    print(
                        f"{label:<40} {len(files) / seconds:>12.1f} {megabytes / seconds:>8.1f} "
                        f"{ratio:>15.2f}x"
                    )
                goal = statistics.median(ratios["dicomhaven scp, intake + ledger only"])
                results.append(
                    f"{associations} association(s): {goal:.2f}x "
                    + ("(met)" if goal >= GOAL else "(NOT met)")
                )
            print(f"\ngoal (issue 7): intake + ledger only at least {GOAL}x Orthanc's rate")
            for line in results:
                print("  " + line)
    except PeerUnavailable as exc:
        print(f"cannot run the benchmark: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
