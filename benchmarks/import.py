"""Folder-import throughput beside its floor, plain ``pydicom.dcmread`` + copy, in one run.

    .venv/bin/python benchmarks/import.py [--patients 40] [--corpus FOLDER] [--repeat 3]

The floor reads every file with pydicom (full data set) and copies it to another folder,
which is the least any importer that parses and keeps the original must do. dicomhaven
does more: it hashes, checks the structure, writes atomically, records each object in the
ledger and runs the pipeline. The figure that matters is the ratio (goal: at most 1.5).
Runs are interleaved in ``--repeat`` rounds on a warm page cache; each ratio is the median of
the per-round ratios, since this machine's disk speed drifts between runs.
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

from dicomhaven import ingest
from dicomhaven.collect import iter_files
from dicomhaven.ingest import import_paths
from dicomhaven.pipeline import Pipeline
from dicomhaven.site import Site, init_site, open_site


def floor(files: list[Path], dest: Path) -> None:
    dest.mkdir()
    for i, path in enumerate(files):
        pydicom.dcmread(path, force=True)
        shutil.copyfile(path, dest / f"{i}.dcm")


def dicomhaven_import(corpus: Path, site: Site, *, workers: int, stages: bool) -> None:
    """Import ``corpus``; without ``stages`` the pipeline is empty, which measures intake and
    the ledger alone (what the floor compares with), not pseudonymisation."""
    original = ingest.pipeline_for
    if not stages:
        ingest.pipeline_for = lambda site: Pipeline(stages=())  # type: ignore[assignment]
    try:
        summary = import_paths(site, [corpus], workers=workers)
    finally:
        ingest.pipeline_for = original  # type: ignore[assignment]
    if summary.unreadable or summary.interrupted:
        raise SystemExit("benchmark import did not complete")


def timed(run: Callable[[Path], None], dest: Path, prepare: Callable[[Path], object]) -> float:
    """Seconds of ``run``; ``prepare`` (creating an empty site) is not timed."""
    prepare(dest)
    start = time.perf_counter()
    run(dest)
    seconds = time.perf_counter() - start
    shutil.rmtree(dest)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=40, help="synthetic patients to generate")
    parser.add_argument(
        "--corpus", type=Path, help="import this folder instead of a synthetic site"
    )
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds")
    parser.add_argument(
        "--scratch", type=Path, default=None, help="folder for temporary files (default: $TMPDIR)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dicomhaven-bench-", dir=args.scratch) as tmp:
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

        variants: list[tuple[str, Callable[[Path], None], Callable[[Path], object], bool]] = [
            ("floor: pydicom.dcmread + copy", lambda d: floor(files, d), lambda d: None, False)
        ]
        runs = [
            (1, False, False),
            (1, True, False),
            (2, False, False),
            (1, False, True),
            (2, False, True),
        ]
        for workers, fsync, stages in runs:
            what = "import + identity stage" if stages else "intake + ledger only   "
            variants.append(
                (
                    f"{what} --workers {workers} fsync={str(fsync).lower()}",
                    lambda d, w=workers, s=stages: dicomhaven_import(
                        corpus, open_site(d), workers=w, stages=s
                    ),
                    init_site,
                    fsync,
                )
            )
        # Rounds interleave the runs, so a slow spell of the disk hits every variant alike;
        # each variant's figure is the median of its per-round time ratio to the floor.
        times: dict[str, list[float]] = {label: [] for label, *_ in variants}
        ratios: dict[str, list[float]] = {label: [] for label, *_ in variants}
        for round_ in range(args.repeat):
            floor_seconds = 0.0
            for label, run, prepare, fsync in variants:
                os.environ["DICOMHAVEN_INTAKE_FSYNC"] = "true" if fsync else "false"
                seconds = timed(
                    run, scratch / f"r{round_}-{len(times[label])}-{hash(label)}", prepare
                )
                floor_seconds = floor_seconds or seconds
                times[label].append(seconds)
                ratios[label].append(seconds / floor_seconds)

        print(f"{'run':<58} {'files/s':>9} {'MB/s':>8} {'time ratio':>11}")
        for label, *_ in variants:
            seconds = statistics.median(times[label])
            print(
                f"{label:<58} {len(files) / seconds:>9.1f} {megabytes / seconds:>8.1f} "
                f"{statistics.median(ratios[label]):>10.2f}x"
            )
        print(
            "goal (issue 2): intake + ledger only, --workers 1, fsync=false: at most 1.5x the floor"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
