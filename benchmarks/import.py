"""Folder-import throughput beside its floor, plain ``pydicom.dcmread`` + copy, in one run.

    .venv/bin/python benchmarks/import.py [--patients 40] [--corpus FOLDER] [--repeat 3]

The floor reads every file with pydicom (full data set) and copies it to another folder,
which is the least any importer that parses and keeps the original must do. dicomhaven
does more: it hashes, checks the structure, writes atomically, records each object in the
ledger and runs the pipeline. The figure that matters is the ratio (goal: at most 1.5).
Each figure is the median of ``--repeat`` runs on a warm page cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pydicom

from dicomhaven.collect import iter_files
from dicomhaven.ingest import import_paths
from dicomhaven.site import Site, init_site, open_site


def floor(files: list[Path], dest: Path) -> None:
    dest.mkdir()
    for i, path in enumerate(files):
        pydicom.dcmread(path, force=True)
        shutil.copyfile(path, dest / f"{i}.dcm")


def dicomhaven_import(corpus: Path, site: Site, *, workers: int) -> None:
    summary = import_paths(site, [corpus], workers=workers)
    if summary.unreadable or summary.interrupted:
        raise SystemExit("benchmark import did not complete")


def timed(
    run: Callable[[Path], None], scratch: Path, repeat: int, prepare: Callable[[Path], None]
) -> float:
    """Median seconds of ``run``; ``prepare`` (creating an empty site) is not timed."""
    times = []
    for i in range(repeat):
        dest = scratch / f"run-{time.monotonic_ns()}-{i}"
        prepare(dest)
        start = time.perf_counter()
        run(dest)
        times.append(time.perf_counter() - start)
        shutil.rmtree(dest)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=40, help="synthetic patients to generate")
    parser.add_argument(
        "--corpus", type=Path, help="import this folder instead of a synthetic site"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dicomhaven-bench-") as tmp:
        scratch = Path(tmp)
        if args.corpus is not None:
            corpus = args.corpus
        else:
            from dicomhaven.synth import generate_site

            generate_site(scratch / "synth", patients=args.patients, seed=1)
            corpus = scratch / "synth" / "export"
        files = list(iter_files([corpus]))
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        print(f"corpus: {len(files)} files, {megabytes:.1f} MB ({corpus})")
        floor(files, scratch / "warm-cache")
        shutil.rmtree(scratch / "warm-cache")

        rows = [
            (
                "floor: pydicom.dcmread + copy",
                timed(lambda d: floor(files, d), scratch, args.repeat, lambda d: None),
            )
        ]
        for workers, fsync in [(1, False), (1, True), (2, False)]:
            os.environ["DICOMHAVEN_INTAKE_FSYNC"] = "true" if fsync else "false"
            label = f"dicomhaven import --workers {workers} (intake_fsync={str(fsync).lower()})"
            seconds = timed(
                lambda d, w=workers: dicomhaven_import(corpus, open_site(d), workers=w),
                scratch,
                args.repeat,
                init_site,
            )
            rows.append((label, seconds))

        base = rows[0][1]
        print(f"{'run':<58} {'files/s':>9} {'MB/s':>8} {'time ratio':>11}")
        for label, seconds in rows:
            print(
                f"{label:<58} {len(files) / seconds:>9.1f} {megabytes / seconds:>8.1f} "
                f"{seconds / base:>10.2f}x"
            )
        print("goal: dicomhaven --workers 1 (intake_fsync=false) at most 1.5x the floor's time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
