"""Header de-identification on the bytes (``deidentify_bytes``) beside the pydicom path.

    .venv/bin/python benchmarks/deid_stream.py [--quick] [--no-peer]

On the corpus of ``benchmarks/deid_headers.py`` (built the same way), one worker in this
process, three ways, each reading the file, de-identifying it with the ``publication``
profile and writing it atomically:

- engine: ``pydicom.dcmread`` + ``deidentify`` + ``write_dataset`` (today's path);
- stream: ``deidentify_bytes`` on the file's bytes, falling back to the engine for the
  files it declines (so every file is handled, and the declined ones cost their fallback);
- pydicom read+write, as a floor of the pydicom path;

and dicognito (the faster peer), run by ``benchmarks/peers/run_peer.py`` in the peers'
venv, unless ``--no-peer``. Then the big OpenREM RDSR alone, best of three. Ratios are over
the files every tool handled, as in ``deid_headers.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deid_headers import (
    BIG_RDSR,
    GOAL_ONE_WORKER,
    GOAL_RDSR_SECONDS,
    MB,
    Run,
    build_corpus,
    dicomhaven_setup,
    engine_file,
    in_child,
    peers_python,
    pydicom_file,
    quiet,
    run_peer,
    run_serial,
    table,
)
from dicomhaven.deid._stream import deidentify_bytes, write_bytes


def stream_file(source: Path, target: Path) -> None:
    """The byte path, with the engine as its fallback; written atomically like the engine."""
    profile, context = dicomhaven_setup()
    data = source.read_bytes()
    out = deidentify_bytes(data, profile, context)
    if out is None:
        engine_file(source, target)
        return
    write_bytes(out, target)


def accepted(files: list[Path]) -> int:
    profile, context = dicomhaven_setup()
    return sum(deidentify_bytes(p.read_bytes(), profile, context) is not None for p in files)


def best_of(process: object, path: Path, out: Path, rounds: int = 3) -> float:
    assert callable(process)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        process(path, out)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few files per source")
    parser.add_argument("--no-peer", action="store_true", help="leave dicognito out")
    args = parser.parse_args(argv)
    quiet()
    python = None if args.no_peer else peers_python()
    with tempfile.TemporaryDirectory(prefix="deid-stream-bench-") as tmp:
        work = Path(tmp)
        corpus = in_child(build_corpus, work, args.quick)
        files = sorted(
            (p for _, paths, _ in corpus for p in paths), key=lambda p: -p.stat().st_size
        )
        sizes = [p.stat().st_size for p in files]
        print(f"corpus: {len(files)} files, {sum(sizes) / MB:.1f} MB")
        print(f"  the byte path accepts {accepted(files)} of them (the rest fall back)\n")

        run_serial("warm-up", stream_file, files, work / "warm")
        runs: list[Run] = [
            run_serial("pydicom read+write", pydicom_file, files, work / "pydicom"),
            run_serial("engine, 1 worker", engine_file, files, work / "engine"),
            run_serial("stream, 1 worker", stream_file, files, work / "stream"),
        ]
        if python is not None:
            peer = run_peer("dicognito", python, files, work)
            peer.name = "dicognito 0.19.0"
            runs.append(peer)
        engine, stream = runs[1], runs[2]
        common = table(runs, sizes, engine)
        print(
            f"\nstream ÷ engine speed: {engine.time_over(common) / stream.time_over(common):.2f}×"
        )
        if python is not None:
            peer_time = runs[3].time_over(common)
            for run in (engine, stream):
                ratio = peer_time / run.time_over(common)
                met = "met" if ratio >= GOAL_ONE_WORKER else "NOT MET"
                print(f"{run.name} vs dicognito: {ratio:.2f}× (goal ≥ {GOAL_ONE_WORKER}) {met}")

        out = work / "one.dcm"
        elements = sum(1 for _ in pydicom.dcmread(BIG_RDSR).iterall())
        print(f"\n{BIG_RDSR.name} ({BIG_RDSR.stat().st_size / MB:.1f} MB, {elements:,} elements)")
        print("  best of 3, seconds:")
        for name, process in (
            ("pydicom read+write", pydicom_file),
            ("engine", engine_file),
            ("stream", stream_file),
        ):
            seconds = best_of(process, BIG_RDSR, out)
            goal = ""
            if name != "pydicom read+write":
                met = "met" if seconds <= GOAL_RDSR_SECONDS else "NOT MET"
                goal = f" (goal ≤ {GOAL_RDSR_SECONDS}) {met}"
            print(f"    {name:<20}{seconds:>6.2f}{goal}")


if __name__ == "__main__":
    main()
