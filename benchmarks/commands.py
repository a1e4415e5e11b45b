"""Whole commands as a user times them: dicomhaven beside the peers' own command lines.

    .venv/bin/python benchmarks/commands.py [--runs 5] [--synthetic 2000] [--quick]

``benchmarks/deid_headers.py`` times the engine inside one process; a user runs a command,
and pays for its start, its imports, the vault, consent and the scan as well. Here every
figure is one whole process, started fresh, timed from fork to exit, with its peak memory
(GNU time's maximum resident set size: the process and the children it waited for). Runs of the tools are
interleaved (dicomhaven, dicognito, dicom-anonymizer, dicomhaven, ...) so a slow spell of
this shared machine falls on all of them; each row gives the median and the min–max.

The corpora: one file (a small CT slice), the real test files (pydicom's, pydicom-data,
deid-data and the OpenREM samples, each kept if pydicom reads it, copied into one folder),
and ``--synthetic`` files from the synthetic hospital. Of the real files only those that
every tool handles are kept: each peer's own API is tried on each file first (untimed, with
``benchmarks/peers/run_peer.py``), and dicomhaven's run once, since a tool that fails on a
file does less (dicognito's command line stops at its first failure) and one that skips a
file (dicomhaven, when the file names no patient) does less too. ``deid --headers-only`` is
the like-for-like figure (the peers read no pixels), with one worker and with
``--workers 2``; the whole safe path (pixels read by OCR, every frame) is timed beside it
on the first two corpora. The peers run in their own venv
(``benchmarks/.peers-venv``, see ``deid_headers.py``): ``python -m dicognito
--quiet --output-directory OUT IN`` and ``dicom-anonymizer IN OUT``. dicomhaven's ``deid`` is the
whole safe path (identity, consent, headers, pixels, the independent scan); the start-up
commands (``--help``, ``version``) and ``import``, ``scan`` and ``redact`` are timed beside
their floors (``cp -r``; a Python that reads every file with pydicom).

Every process runs with byte-code caching on (``PYTHONDONTWRITEBYTECODE`` removed), after one
untimed run that writes the caches, as an installed package has them: otherwise dicomhaven,
installed editable, would compile its own modules in every process and the peers, installed
by pip with their byte code, would not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deid_headers import RUN_PEER, build_corpus, peers_python

VENV_BIN = Path(sys.executable).parent
DICOMHAVEN = VENV_BIN / "dicomhaven"
GOAL_START = 0.25  # seconds, --help and version
GOAL_ONE_FILE = 0.6  # seconds, deid on one file
GOAL_REAL_ONE_WORKER = 1.5  # times faster than the faster peer
GOAL_REAL_TWO_WORKERS = 2.5
GOAL_SYNTHETIC = 2.0
GOAL_MEMORY = 2.0  # at most this many times the faster peer's peak memory

READ_ALL = (
    "import sys, pathlib, pydicom\n"
    "for p in sorted(pathlib.Path(sys.argv[1]).rglob('*')):\n"
    "    if p.is_file(): pydicom.dcmread(p, force=True)\n"
)


@dataclass
class Timing:
    """One command's runs: wall seconds and peak memory (MiB) of each."""

    name: str
    seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    def row(self, baseline: Timing | None = None) -> str:
        if not self.seconds:
            return f"  {self.name:<44} did not run"
        spread = f"{min(self.seconds):.2f}–{max(self.seconds):.2f}"
        ratio = f"{self.median / baseline.median:5.2f}×" if baseline and baseline.seconds else ""
        return (
            f"  {self.name:<44} {self.median:7.2f} s  ({spread:>11})  "
            f"{statistics.median(self.peak_mib):6.0f} MiB  {ratio}"
            + (f"  {self.failures} failed runs" if self.failures else "")
        )


def run_once(command: list[str | Path], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak MiB and exit code of one fresh process, under GNU time (its
    maximum resident set size: the process and the children it waited for)."""
    timed = ["/usr/bin/time", "-f", "%M", *(str(c) for c in command)]
    start = time.perf_counter()
    done = subprocess.run(timed, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - start
    last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["0"]
    peak_kib = float(last[0]) if last[0].isdigit() else 0.0
    return wall, peak_kib / 1024, done.returncode


@dataclass
class Command:
    """A command to time; ``prepare`` empties its output folder before each run (not timed)."""

    name: str
    argv: list[str | Path]
    out: Path | None = None
    ok_codes: tuple[int, ...] = (0, 1)  # 1: the work ran and something was held or skipped
    make_out: bool = False  # the tool wants its output folder to exist (dicom-anonymizer)


def interleaved(commands: list[Command], runs: int, env: dict[str, str]) -> list[Timing]:
    timings = [Timing(c.name) for c in commands]
    for _ in range(runs):
        for command, timing in zip(commands, timings, strict=True):
            if command.out is not None:
                shutil.rmtree(command.out, ignore_errors=True)
                if command.make_out:
                    command.out.mkdir(parents=True)
            os.sync()  # no tool pays for another's dirty pages
            wall, peak, code = run_once(command.argv, env)
            if code in command.ok_codes:
                timing.seconds.append(wall)
                timing.peak_mib.append(peak)
            else:
                timing.failures += 1
    return timings


def token_for(site: Path, env: dict[str, str]) -> str:
    """A data manager's token on a fresh site, for the commands that need one."""
    done = subprocess.run(
        [DICOMHAVEN, "users", "add", "bench", "--role", "data-manager", "--site", site],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return done.stdout.strip().splitlines()[-1]  # the token is printed alone, last


def fresh_site(work: Path, name: str, env: dict[str, str]) -> tuple[Path, str]:
    site = work / name
    subprocess.run([DICOMHAVEN, "init", site], check=True, capture_output=True, env=env)
    return site, token_for(site, env)


def gather(files: list[Path], folder: Path) -> Path:
    """The files in one folder (copies: the peers read folders)."""
    folder.mkdir(parents=True)
    for index, path in enumerate(files):
        shutil.copyfile(path, folder / f"{index:05d}.dcm")
    return folder


def synthetic_files(work: Path, count: int) -> list[Path]:
    from dicomhaven.synth import generate_site

    patients = max(1, count // 10 + 1)
    generate_site(work / "synth-big", patients=patients, seed=11)
    files = sorted((work / "synth-big" / "export").rglob("*.dcm"))
    return files[:count]


def peers_handle(files: list[Path], work: Path, peers: Path) -> list[bool]:
    """Whether each peer's own API de-identified each file without an error (untimed)."""
    handled = [True] * len(files)
    listing = work / "peer-files.json"
    listing.write_text(json.dumps([str(p) for p in files]))
    for tool in ("dicognito", "dicom-anonymizer"):
        out, results = work / f"peer-{tool}", work / f"peer-{tool}.json"
        out.mkdir()
        command = [peers, RUN_PEER, tool, listing, out, results]
        subprocess.run(command, check=True, capture_output=True)
        for index, (_, error) in enumerate(json.loads(results.read_text())):
            handled[index] = handled[index] and error is None
        shutil.rmtree(out)
    return handled


def dicomhaven_handles(files: list[Path], work: Path, env: dict[str, str]) -> list[bool]:
    """Whether dicomhaven's ``deid --headers-only`` de-identified each file (written or
    held after every step), not skipped it (no patient named, unreadable), untimed."""
    corpus = gather(files, work / "dh-check-in")
    site, token = fresh_site(work, "site-dh-check", env)
    command = [DICOMHAVEN, "deid", corpus, work / "dh-check-out", "--site", site, "--token",
               token, "--headers-only", "--json"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    results = {Path(r["path"]).name: r["status"] for r in json.loads(done.stdout)["results"]}
    shutil.rmtree(corpus)
    shutil.rmtree(work / "dh-check-out")
    return [results.get(f"{i:05d}.dcm") in ("written", "held") for i in range(len(files))]


def handled_by_all(files: list[Path], work: Path, peers: Path, env: dict[str, str]) -> list[Path]:
    by_peers = peers_handle(files, work, peers)
    by_dicomhaven = dicomhaven_handles(files, work, env)
    return [p for p, a, b in zip(files, by_peers, by_dicomhaven, strict=True) if a and b]


def deid_commands(
    corpus: Path, work: Path, peers: Path, env: dict[str, str], *, whole_path: bool = True,
    workers: int = 1,
) -> tuple[list[Command], list[str]]:  # fmt: skip
    site, token = fresh_site(work, f"site-{corpus.name}", env)
    out = work / "out"
    dh: list[str | Path] = [
        DICOMHAVEN,
        "deid",
        corpus,
        out / "dicomhaven",
        "--profile",
        "publication",
        "--site",
        site,
        "--token",
        token,
    ]
    commands = [
        Command("dicomhaven deid --headers-only", [*dh, "--headers-only"], out / "dicomhaven"),
    ]
    if workers > 1:
        commands.append(
            Command(
                f"dicomhaven deid --headers-only --workers {workers}",
                [*dh, "--headers-only", "--workers", str(workers)],
                out / "dicomhaven",
            )
        )
    if whole_path:
        commands.append(Command("dicomhaven deid (whole safe path)", dh, out / "dicomhaven"))
    commands += [
        Command(
            "dicognito (python -m dicognito)",
            # --quiet: no summary table, which it fails to print for some real files
            # (a multi-valued name) after doing all the work, exiting 1
            [peers, "-m", "dicognito", "--quiet", "--output-directory", out / "dicognito", corpus],
            out / "dicognito",
            ok_codes=(0,),  # a failure stops it early: not a run to time
        ),
        Command(
            "dicom-anonymizer (its command line)",
            [peers.parent / "dicom-anonymizer", corpus, out / "anonymizer"],
            out / "anonymizer",
            ok_codes=(0,),
            make_out=True,  # it exits 0 having done nothing when OUT does not exist
        ),
    ]
    return commands, ["dicognito (python -m dicognito)", "dicom-anonymizer (its command line)"]


def report_deid(label: str, timings: list[Timing], peer_names: list[str]) -> dict[str, float]:
    peers = [t for t in timings if t.name in peer_names and t.seconds]
    faster = min(peers, key=lambda t: t.median) if peers else None
    print(f"\n{label} (whole processes; ratio = time over the faster peer's)")
    for timing in timings:
        print(timing.row(faster))
    figures: dict[str, float] = {}
    if faster is not None:
        for timing in timings:
            if timing.name.startswith("dicomhaven") and timing.seconds:
                figures[timing.name] = faster.median / timing.median
                memory = statistics.median(timing.peak_mib) / statistics.median(faster.peak_mib)
                print(
                    f"    {timing.name}: {figures[timing.name]:.2f}× as fast as {faster.name}, "
                    f"peak memory {memory:.2f}× its (goal ≤ {GOAL_MEMORY})"
                )
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--synthetic", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="few files, three runs")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else args.runs
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMHAVEN_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: byte code cached
    env["DICOMHAVEN_LOG_LEVEL"] = "WARNING"
    peers = peers_python()
    with tempfile.TemporaryDirectory(prefix="bench-commands-") as tmp:
        work = Path(tmp)
        print("start-up (whole processes)")
        startup = interleaved(
            [
                Command("dicomhaven --help", [DICOMHAVEN, "--help"]),
                Command("dicomhaven version", [DICOMHAVEN, "version"]),
                Command("dicomhaven scan --help", [DICOMHAVEN, "scan", "--help"]),
                Command("dicomhaven import --help", [DICOMHAVEN, "import", "--help"]),
                Command("python -c pass (the floor)", [sys.executable, "-c", "pass"]),
            ],
            runs,
            env,
        )
        for timing in startup:
            print(timing.row())
        print(f"    goal: --help and version < {GOAL_START} s")

        every = [
            p for _, files, _ in build_corpus(work / "corpus-build", args.quick) for p in files
        ]
        real = handled_by_all(every, work, peers, env)  # also the untimed run that caches
        print(f"\nreal test files: {len(real)} of {len(every)} handled by every tool")
        real_dir = gather(real, work / "real")
        one_dir = gather(
            [
                p
                for p in real
                if pydicom.dcmread(p, stop_before_pixels=True).get("Modality") == "CT"
            ][:1],
            work / "one",
        )
        synthetic = synthetic_files(work, 100 if args.quick else args.synthetic)
        synth_dir = gather(synthetic, work / "synthetic")

        commands, names = deid_commands(one_dir, work, peers, env, whole_path=True)
        one_timings = interleaved(commands, runs, env)
        one = report_deid("deid on one file", one_timings, names)
        commands, names = deid_commands(real_dir, work, peers, env, workers=2)
        size = sum(p.stat().st_size for p in real) / 1e6
        label = f"deid on the real test files ({len(real)} files, {size:.0f} MB)"
        # The whole safe path reads pixels (OCR, every frame): minutes, so timed once or
        # twice after the others, beside the same peers' medians.
        whole = [c for c in commands if "whole" in c.name]
        real_timings = interleaved([c for c in commands if c not in whole], runs, env)
        real_timings += interleaved(whole, max(1, runs // 3), env)
        on_real = report_deid(label, real_timings, names)
        commands, names = deid_commands(synth_dir, work, peers, env, whole_path=False, workers=2)
        label = f"deid on {len(synthetic)} synthetic files"
        on_synth = report_deid(label, interleaved(commands, max(1, runs // 2), env), names)

        site, token = fresh_site(work, "site-others", env)
        others = interleaved(
            [
                Command(
                    "dicomhaven import (real files)",
                    [DICOMHAVEN, "import", "--site", site, real_dir],
                    ok_codes=(0, 1),
                ),
                Command("cp -r (its floor)", ["cp", "-r", real_dir, work / "copy"], work / "copy"),
                Command("dicomhaven scan (real files)", [DICOMHAVEN, "scan", real_dir]),
                Command(
                    "read every file with pydicom (its floor)",
                    [sys.executable, "-c", READ_ALL, real_dir],
                ),
                Command(
                    "dicomhaven redact (one file)",
                    [
                        DICOMHAVEN,
                        "redact",
                        one_dir,
                        work / "redacted",
                        "--site",
                        site,
                        "--token",
                        token,
                    ],
                    work / "redacted",
                ),
            ],
            max(1, runs // 2),
            env,
        )
        print("\nother commands beside their floors (import runs again on the same site:")
        print("every file after the first run is a duplicate, as a user re-running it sees)")
        for timing in others:
            print(timing.row())

    print("\ngoals")
    for timing in one_timings:
        if timing.name.startswith("dicomhaven"):
            mark = "met" if timing.median < GOAL_ONE_FILE else "NOT met"
            print(
                f"  one file, {timing.name}: {timing.median:.2f} s "
                f"(goal < {GOAL_ONE_FILE}; {one.get(timing.name, 0):.2f}× the faster peer): {mark}"
            )
    for timing in startup[:2]:
        mark = "met" if timing.median < GOAL_START else "NOT met"
        print(f"  {timing.name}: {timing.median:.2f} s (goal < {GOAL_START}): {mark}")
    for name, ratio in on_real.items():
        wanted = GOAL_REAL_TWO_WORKERS if "--workers" in name else GOAL_REAL_ONE_WORKER
        if "whole safe path" in name:
            print(f"  real files, {name}: {ratio:.2f}× (pixels read; the peers read none)")
            continue
        print(
            f"  real files, {name}: {ratio:.2f}× (goal ≥ {wanted}): "
            f"{'met' if ratio >= wanted else 'NOT met'}"
        )
    for name, ratio in on_synth.items():
        print(
            f"  synthetic, {name}: {ratio:.2f}× (goal ≥ {GOAL_SYNTHETIC}): "
            f"{'met' if ratio >= GOAL_SYNTHETIC else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
