"""Header de-identification throughput: dicomhaven beside two peers and two floors, in one run.

    .venv/bin/python benchmarks/deid_headers.py [--quick]

Every tool reads each file of one corpus, de-identifies it and writes it to another folder;
files/s and MB/s (10^6 bytes of input) count only the files a tool handled, and the files
it failed on are listed. The tools:

- dicomhaven: what ``dicomhaven deid`` does with the ``publication`` profile (the byte
  rewriter, falling back to pydicom + ``deidentify`` for the files it declines), one worker
  (in this process) and two (a forkserver ``ProcessPoolExecutor`` over files, warmed up
  before timing);
- dicognito and dicom-anonymizer, pinned in ``benchmarks/peers/requirements.txt`` and run
  by ``benchmarks/peers/run_peer.py`` in their own venv, ``benchmarks/.peers-venv``, which
  is made on first use (its creation and the peers' imports are not timed);
- floors: plain pydicom ``dcmread`` + ``save_as``, and ``shutil.copyfile``.

The corpus: pydicom's test files, pydicom-data, deid-data, the OpenREM samples in
``/work/shared/data/openrem`` (each kept only if pydicom reads it) and the mammograms of
one synthetic full-size patient. ``--quick`` takes a few files of each for a smoke run.
Files are read from a warm page cache. The time ratio column compares each tool with
dicomhaven on one worker over the files that every tool handled, so a tool is not made
faster by failing on the hard files.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import data_store  # type: ignore[import-untyped]
import deid_data  # type: ignore[import-untyped]
import pydicom

from dicomhaven.deid import DeidContext, Profile, deidentify, load_profile, write_dataset
from dicomhaven.deid._stream import rewrite_bytes, write_bytes
from dicomhaven.identity import ProjectKeys
from dicomhaven.synth import generate_site

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".peers-venv"
PEERS_REQUIREMENTS = HERE / "peers" / "requirements.txt"
RUN_PEER = HERE / "peers" / "run_peer.py"
OPENREM = Path("/work/shared/data/openrem")
BIG_RDSR = OPENREM / "RF-Pat-Orientation-Modifier-Missing.dcm"  # 3.3 MB, ~160k elements
MB = 1e6
QUICK_FILES_PER_SOURCE = 8
GOAL_ONE_WORKER = 1.5  # times the faster peer's speed
GOAL_TWO_WORKERS = 2.5
GOAL_RDSR_SECONDS = 2.0
GOAL_MAMMOGRAM_VS_CP = 3.0
GOAL_MEMORY_GROWTH = 1.05  # peak RSS after twice the files over after once: flat

Processor = Callable[[Path, Path], None]
T = TypeVar("T")


# --- the tools run in this venv -------------------------------------------------------------


@functools.cache
def dicomhaven_setup() -> tuple[Profile, DeidContext]:
    """The profile and one patient's context, made once per process (not timed)."""
    keys = ProjectKeys("bench", bytes(32))
    master = "BCDFGHJKLMNP"
    context = DeidContext(keys=keys, master_pseudonym=master, pseudonym=keys.pseudonym(master))
    return load_profile("publication"), context


def dicomhaven_file(source: Path, target: Path) -> None:
    """What ``dicomhaven deid`` and the header stage do: the file's bytes rewritten, kept
    elements copied; the pydicom path for the files the byte path declines."""
    profile, context = dicomhaven_setup()
    data = source.read_bytes()
    rewritten = rewrite_bytes(data, profile, context)
    if rewritten is not None:
        write_bytes(rewritten.parts, target)
        return
    dataset = pydicom.dcmread(io.BytesIO(data))
    deidentify(dataset, profile, context)
    write_dataset(dataset, target)


def engine_file(source: Path, target: Path) -> None:
    """The pydicom path alone: read, de-identify, write (the engine every file can take)."""
    profile, context = dicomhaven_setup()
    dataset = pydicom.dcmread(source)
    deidentify(dataset, profile, context)
    write_dataset(dataset, target)  # the product's writer: atomic, tolerant of odd files


def pydicom_file(source: Path, target: Path) -> None:
    pydicom.dcmread(source).save_as(target)


def copy_file(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)


def timed_file(process: Processor, source: Path, target: Path) -> tuple[float, str | None]:
    """Seconds to process one file, and the error if it failed."""
    start = time.perf_counter()
    try:
        process(source, target)
        error = None
    except Exception as exc:  # a tool's failure on one file is a result, not a crash
        error = f"{type(exc).__name__}: {str(exc).partition(chr(10))[0]}"[:200]
    return time.perf_counter() - start, error


def pool_task(job: tuple[Path, Path]) -> tuple[float, str | None, int]:
    seconds, error = timed_file(dicomhaven_file, *job)
    return seconds, error, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def quiet() -> None:
    """pydicom warns about the odd values in test files; the tables are what to read here."""
    warnings.simplefilter("ignore")


def busy_loop(_: int) -> float:
    """Seconds of a fixed pure-Python loop: how fast one process runs on this machine."""
    start = time.perf_counter()
    total = 0
    for i in range(20_000_000):
        total += i
    return time.perf_counter() - start


def machine_scaling() -> float:
    """How much of one process's speed each of two simultaneous processes gets here."""
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        list(pool.map(warm_worker, range(2)))
        alone = pool.submit(busy_loop, 0).result()
        together = max(pool.map(busy_loop, range(2)))
    return alone / together


def warm_worker(_: int) -> None:
    dicomhaven_setup()
    time.sleep(0.2)  # holds this worker so that the next warm-up task starts another


# --- runs and their figures -------------------------------------------------------------------


@dataclass
class Run:
    name: str
    seconds: list[float]  # per file, in corpus order
    errors: list[str | None]
    wall: float | None = None  # a pool's elapsed time; per-file seconds overlap there

    def ok(self, index: int) -> bool:
        return self.errors[index] is None

    def time_over(self, indexes: list[int]) -> float:
        """Seconds spent on these files (a pool's wall time, pro rata to its work on them)."""
        spent = sum(self.seconds[i] for i in indexes)
        if self.wall is None:
            return spent
        return self.wall * spent / sum(self.seconds)


def run_serial(name: str, process: Processor, files: list[Path], out: Path) -> Run:
    out.mkdir()
    records = [timed_file(process, path, out / f"{i}.dcm") for i, path in enumerate(files)]
    shutil.rmtree(out)
    return Run(name, [s for s, _ in records], [e for _, e in records])


def run_pool(files: list[Path], out: Path, workers: int) -> tuple[Run, int]:
    """dicomhaven over ``workers`` processes; also the largest worker's peak RSS (KiB)."""
    out.mkdir()
    jobs = [(path, out / f"{i}.dcm") for i, path in enumerate(files)]
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=quiet) as pool:
        list(pool.map(warm_worker, range(workers)))
        start = time.perf_counter()
        records = list(pool.map(pool_task, jobs))
        wall = time.perf_counter() - start
    shutil.rmtree(out)
    name = f"dicomhaven, {workers} workers"
    run = Run(name, [r[0] for r in records], [r[1] for r in records], wall)
    return run, max(r[2] for r in records)


def peers_python() -> Path:
    """The peers' venv's interpreter, making the venv first when it is missing or stale."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / "requirements.txt"
    wanted = PEERS_REQUIREMENTS.read_text()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print(f"making {PEERS_VENV} (not timed)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", PEERS_VENV], check=True)
        pip: list[str | Path] = [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "-r",
            PEERS_REQUIREMENTS,
        ]
        subprocess.run(pip, check=True)
        stamp.write_text(wanted)
    return python


def run_peer(name: str, python: Path, files: list[Path], work: Path) -> Run:
    out = work / name
    out.mkdir()
    listing = work / f"{name}-files.json"
    results = work / f"{name}-results.json"
    listing.write_text(json.dumps([str(p) for p in files]))
    command: list[str | Path] = [python, RUN_PEER, name, listing, out, results]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} did not run:\n{done.stderr[-2000:]}")
    records = json.loads(results.read_text())
    shutil.rmtree(out)
    return Run(name, [s for s, _ in records], [e for _, e in records])


# --- the corpus -------------------------------------------------------------------------------


def readable(paths: list[Path]) -> list[Path]:
    kept = []
    for path in sorted(paths):
        try:
            pydicom.dcmread(path)
        except Exception:  # not DICOM, or a test file that is broken on purpose
            continue
        kept.append(path)
    return kept


def mammograms(folder: Path) -> list[Path]:
    generate_site(folder, patients=1, seed=1, full_size=True)
    found = []
    for path in sorted((folder / "export").rglob("*.dcm")):
        if pydicom.dcmread(path, stop_before_pixels=True).get("Modality") == "MG":
            found.append(path)
    return found


def build_corpus(work: Path, quick: bool) -> list[tuple[str, list[Path], int]]:
    """(source, files, how many were skipped as unreadable) for each source."""
    sources = {
        "pydicom test files": list((Path(pydicom.__file__).parent / "data" / "test_files").glob("*.dcm")),
        "pydicom-data": [p for p in (Path(data_store.__file__).parent / "data").rglob("*") if p.is_file()],
        "deid-data": [p for p in (Path(deid_data.__file__).parent / "data").rglob("*") if p.is_file()],
        "OpenREM samples": list(OPENREM.glob("*.dcm")),
    }  # fmt: skip
    corpus = []
    for source, candidates in sources.items():
        files = readable(candidates)
        skipped = len(candidates) - len(files)
        corpus.append((source, files[:QUICK_FILES_PER_SOURCE] if quick else files, skipped))
    mg = mammograms(work / "synth")
    corpus.append(("synthetic mammograms", mg[:1] if quick else mg, 0))
    return corpus


def in_child(function: Callable[..., T], *args: object) -> T:
    """Run ``function`` in a fresh process, so that its memory does not count in ours."""
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=context, initializer=quiet) as pool:
        return pool.submit(function, *args).result()


# --- single files -----------------------------------------------------------------------------


def phases(path: Path, out: Path, rounds: int = 3) -> dict[str, float]:
    """dicomhaven's read, de-identify and write of one file, and a copy of it: the best
    seconds of each over ``rounds`` runs (one file is too short a run to trust once)."""
    profile, context = dicomhaven_setup()
    best: dict[str, float] = {}
    for _ in range(rounds):
        for old in out.glob("*.dcm"):  # every tool writes a new file, as in the corpus runs
            old.unlink()
        # Dirty pages left by earlier writes make the kernel throttle whoever writes next:
        # flush them before each timing so that no tool pays for another's writes.
        os.sync()
        times = {}
        start = time.perf_counter()
        dataset = pydicom.dcmread(path)
        times["read"] = time.perf_counter() - start
        start = time.perf_counter()
        deidentify(dataset, profile, context)
        times["deidentify"] = time.perf_counter() - start
        start = time.perf_counter()
        write_dataset(dataset, out / "one.dcm")
        times["write"] = time.perf_counter() - start
        times["total"] = times["read"] + times["deidentify"] + times["write"]
        os.sync()
        times["cp"] = timed_file(copy_file, path, out / "copy.dcm")[0]
        os.sync()
        times["product"] = timed_file(dicomhaven_file, path, out / "product.dcm")[0]
        best = {key: min(value, best.get(key, value)) for key, value in times.items()}
    return best


def single_file(path: Path, out: Path, files: list[Path], runs: list[Run]) -> dict[str, float]:
    """Print dicomhaven's phases on one file and each tool's time on it in the runs above."""
    times = phases(path, out)
    elements = sum(1 for _ in pydicom.dcmread(path).iterall())
    print(f"  {path.name} ({path.stat().st_size / MB:.1f} MB, {elements:,} elements)")
    print(
        f"    dicomhaven, best of 3: {times['product']:.2f} s; its pydicom path alone "
        f"{times['total']:.2f} s = read {times['read']:.2f} + deidentify "
        f"{times['deidentify']:.2f} + write {times['write']:.2f}; cp {times['cp'] * 1000:.0f} ms"
    )
    if path in files:  # --quick leaves the big RDSR out of the corpus
        index = files.index(path)
        in_runs = ", ".join(f"{run.name} {run.seconds[index]:.2f}" for run in runs)
        print(f"    in the corpus runs: {in_runs}")
    return times


# --- report -----------------------------------------------------------------------------------


def table(runs: list[Run], sizes: list[int], baseline: Run) -> list[int]:
    """Print the table; return the indexes of the files every tool handled."""
    common = [i for i in range(len(sizes)) if all(run.ok(i) for run in runs)]
    base = baseline.time_over(common)
    print(
        f"{'tool':<28}{'files':>6}{'failed':>7}{'MB':>9}{'seconds':>9}"
        f"{'files/s':>9}{'MB/s':>9}{'time ÷ dicomhaven×1':>21}"
    )
    for run in runs:
        handled = [i for i in range(len(sizes)) if run.ok(i)]
        seconds = run.time_over(handled)
        megabytes = sum(sizes[i] for i in handled) / MB
        print(
            f"{run.name:<28}{len(handled):>6}{len(sizes) - len(handled):>7}{megabytes:>9.1f}"
            f"{seconds:>9.2f}{len(handled) / seconds:>9.1f}{megabytes / seconds:>9.1f}"
            f"{run.time_over(common) / base:>21.2f}"
        )
    print(
        f"(files/s and MB/s over the files each tool handled; the ratio over the "
        f"{len(common)} files all handled, {sum(sizes[i] for i in common) / MB:.1f} MB)"
    )
    return common


def goal(label: str, measured: float, wanted: float, higher_is_better: bool = True) -> None:
    met = measured >= wanted if higher_is_better else measured <= wanted
    sign = "≥" if higher_is_better else "≤"
    print(f"  {label}: {measured:.2f} (goal {sign} {wanted}) {'met' if met else 'NOT MET'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few files per source")
    args = parser.parse_args(argv)
    quiet()

    python = peers_python()
    with tempfile.TemporaryDirectory(prefix="deid-bench-") as tmp:
        work = Path(tmp)
        corpus = in_child(build_corpus, work, args.quick)
        # Largest first, so that no big file is left to one worker at the end of a pool run.
        files = sorted(
            (p for _, paths, _ in corpus for p in paths), key=lambda p: -p.stat().st_size
        )
        sizes = [path.stat().st_size for path in files]
        print(f"corpus{' (--quick)' if args.quick else ''}:")
        for source, paths, skipped in corpus:
            megabytes = sum(p.stat().st_size for p in paths) / MB
            note = f", {skipped} skipped (pydicom cannot read them)" if skipped else ""
            print(f"  {source:<22}{len(paths):>5} files {megabytes:>8.1f} MB{note}")
        print(f"  {'total':<22}{len(files):>5} files {sum(sizes) / MB:>8.1f} MB\n")

        run_serial("warm-up", copy_file, files, work / "warm")  # page cache, not reported
        dicomhaven_setup()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        one = run_serial("dicomhaven, 1 worker", dicomhaven_file, files, work / "dh1")
        rss_one = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Memory flat in the number of files: a second pass over the corpus must not raise
        # the peak (anything kept per file would).
        run_serial("dicomhaven again", dicomhaven_file, files, work / "dh1b")
        rss_twice = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        two, rss_two = run_pool(files, work / "dh2", workers=2)
        runs = [
            run_serial("cp (shutil.copyfile)", copy_file, files, work / "cp"),
            run_serial("pydicom read+write", pydicom_file, files, work / "pydicom"),
            one,
            two,
            run_peer("dicognito", python, files, work),
            run_peer("dicom-anonymizer", python, files, work),
        ]
        runs[-2].name, runs[-1].name = "dicognito 0.19.0", "dicom-anonymizer 2.1.0"
        common = table(runs, sizes, one)

        scaling = machine_scaling()
        print(
            f"(this machine: with two processes busy, each runs at {scaling:.0%} of one alone, "
            f"so two workers can give at most {2 * scaling:.1f}× one)"
        )

        print("\npeak RSS of dicomhaven:")
        print(
            f"  1 worker: {rss_one / 1024:.0f} MiB (this process; {rss_before / 1024:.0f} before)"
        )
        print(f"  2 workers: {rss_two / 1024:.0f} MiB (the larger worker)")
        print(
            f"  after a second pass over the corpus (twice the files): {rss_twice / 1024:.0f} MiB"
        )

        print("\nsingle files, seconds:")
        rdsr = single_file(BIG_RDSR, work, files, runs)
        mg = single_file(corpus[-1][1][0], work, files, runs)  # a synthetic mammogram

        peers = runs[-2:]
        fastest = min(peers, key=lambda run: run.time_over(common))
        print(f"\ngoals (speed ratios over the common files; faster peer: {fastest.name}):")
        peer_time = fastest.time_over(common)
        goal(
            "dicomhaven 1 worker vs faster peer", peer_time / one.time_over(common), GOAL_ONE_WORKER
        )
        goal(
            "dicomhaven 2 workers vs faster peer",
            peer_time / two.time_over(common),
            GOAL_TWO_WORKERS,
        )
        goal("big RDSR, seconds", rdsr["product"], GOAL_RDSR_SECONDS, higher_is_better=False)
        goal(
            "peak RSS after twice the files, times after once",
            rss_twice / rss_one,
            GOAL_MEMORY_GROWTH,
            higher_is_better=False,
        )
        goal(
            "mammogram, times cp",
            mg["product"] / mg["cp"],
            GOAL_MAMMOGRAM_VS_CP,
            higher_is_better=False,
        )

        print("\nfiles a tool failed on (left out of its figures):")
        failures = [
            (run.name, files[i], run.errors[i])
            for run in runs
            for i in range(len(files))
            if not run.ok(i)
        ]
        for name, path, error in failures:
            print(f"  {name}: {path.parent.name}/{path.name}: {error}")
        if not failures:
            print("  none")


if __name__ == "__main__":
    main()
