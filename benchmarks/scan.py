"""Residual-PII scanning: its cost beside de-identification, its OCR, its false alarms on
real files and its recall on the synthetic site, in one run.

    .venv/bin/python benchmarks/scan.py [--quick]

1. Scanning vs de-identifying, the same files. The corpus of ``deid_headers.py`` (pydicom's
   test files, pydicom-data, deid-data, the OpenREM samples, the synthetic mammograms; its
   own ``build_corpus``) is de-identified file by file exactly as its ``dicomhaven_file``
   does (``publication`` profile), then every output is scanned with the ``publication``
   rules (``Scanner.scan_file``, no OCR). Both are timed per file with
   ``time.perf_counter`` in this process (one worker each), from a warm page cache, after
   an untimed warm-up of each. The issue's goal: scanning every output costs less than
   de-identifying it (scan time ÷ de-identification time < 1).
2. OCR scanning. The scanner with ``ocr=True`` on the risky images (those the header triage
   would read) among the synthetic site's ultrasounds and dose screens and the real
   ultrasounds of pydicom-data (``OBXXXX1A*``) and deid-data, at most ``OCR_CAP`` of them;
   beside the same scan without OCR and the bare RapidOCR floor of ``deid_pixels.py`` (one
   displayed frame per image). The scanner reads up to three frames of a clip.
3. False alarms on de-identified real files: the part 1 scans of the real sources (the
   synthetic mammograms left out), as files failed and findings counted by action and rule,
   with the elements they were found in; then the same at the ``limited-access`` level
   (profile and rules).
4. Recall on the synthetic site, per category: every un-de-identified file of the site of
   part 2 scanned with its patient's values as the vault knows them, counted as
   ``tests/scan/test_scanner.py`` counts it (a header plant is found when a finding is at
   its tag path; burned-in text when a finding is at ``(7FE0,0010)``, read by OCR; an
   overlay when the overlay detector fires).

``--quick`` takes a few files of each source and three OCR images, for a smoke run.
Nothing found in a file is printed: counts, rule ids, detectors and element keywords only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pydicom

# This folder is first on sys.path when the script is run, so its sibling benchmarks import.
import deid_headers
from deid_headers import (
    MB,
    build_corpus,
    copy_file,
    dicomhaven_file,
    goal,
    quiet,
    run_serial,
    timed_file,
)
from deid_headers import dicomhaven_setup as publication_setup
from deid_pixels import bare_detector
from dicomhaven.deid import load_profile
from dicomhaven.pixels import engine_named
from dicomhaven.pixels._clean import _READ_CACHE, _images
from dicomhaven.pixels._triage import triage
from dicomhaven.scan import Action, Detector, KnownIdentifiers, Scanner, ScanResult, load_rules
from dicomhaven.synth import AnswerKey, Category, FileKind, generate_site

OCR_CAP = 20  # risky images read with OCR in a normal run
QUICK_OCR_CAP = 3
PIXEL_TAG = "(7FE0,0010)"
SYNTHETIC_SOURCE = "synthetic mammograms"  # build_corpus's name for its synthetic files
RISKY_KINDS = {FileKind.US, FileKind.US_CINE, FileKind.DOSE_SCREEN}
HEADER_CATEGORIES = {
    Category.STANDARD_ATTRIBUTE, Category.FREE_TEXT, Category.NESTED_SEQUENCE, Category.PRIVATE_TAG,
}  # fmt: skip
PIXEL_CATEGORIES = {Category.BURNED_IN_PIXELS, Category.OVERLAY}


# --- part 1: de-identify, then scan the outputs ---------------------------------------------


@dataclass
class Output:
    """One corpus file: its de-identification, and the scan of what it wrote."""

    source: str
    source_path: Path
    size: int  # input bytes
    deid_seconds: float
    deid_error: str | None
    path: Path  # the de-identified output
    out_size: int = 0
    scan_seconds: float = 0.0
    result: ScanResult | None = None


def deidentify_then_scan(
    files: list[tuple[str, Path]], out: Path, scanner: Scanner
) -> list[Output]:
    """De-identify every file (timed), then scan every output (timed separately)."""
    out.mkdir()
    done = []
    for i, (source, path) in enumerate(files):
        target = out / f"{i}.dcm"
        seconds, error = timed_file(dicomhaven_file, path, target)  # a failure is counted
        done.append(Output(source, path, path.stat().st_size, seconds, error, target))
    os.sync()  # the outputs' writes are flushed before the scan reads them (not timed)
    for output in done:
        if output.deid_error is not None:
            continue
        output.out_size = output.path.stat().st_size
        start = time.perf_counter()
        output.result = scanner.scan_file(output.path)
        output.scan_seconds = time.perf_counter() - start
    return done  # the outputs stay in ``out`` until the caller has reported on them


def warm_up(paths: list[Path], out: Path, scanner: Scanner) -> None:
    """Untimed de-identifications and scans, one file per source: profiles, rules, name
    lists and both of the de-identifier's paths loaded before the timing starts."""
    out.mkdir()
    for i, path in enumerate(paths):
        timed_file(dicomhaven_file, path, out / f"{i}.dcm")
        scanner.scan_file(out / f"{i}.dcm")
    shutil.rmtree(out)


@contextlib.contextmanager
def profile_named(name: str) -> Iterator[None]:
    """``dicomhaven_file`` with another profile: it takes its profile from
    ``deid_headers.dicomhaven_setup``, which is swapped for the duration."""
    profile, context = load_profile(name), publication_setup()[1]
    with mock.patch.object(deid_headers, "dicomhaven_setup", lambda: (profile, context)):
        yield


def speed_table(outputs: list[Output]) -> float:
    """Print de-identification and scan speed; return scan time ÷ de-identification time."""
    ok = [o for o in outputs if o.result is not None]
    deid_seconds = sum(o.deid_seconds for o in ok)
    scan_seconds = sum(o.scan_seconds for o in ok)
    unreadable = sum(1 for o in ok if o.result is not None and o.result.error)
    print(
        f"{'step (one worker)':<36}{'files':>6}{'errors':>7}{'MB read':>9}{'seconds':>9}"
        f"{'files/s':>9}{'MB/s':>9}"
    )
    rows = [
        ("de-identify (publication profile)", deid_seconds, sum(o.size for o in ok),
         sum(1 for o in outputs if o.deid_error)),
        ("scan the outputs (publication rules)", scan_seconds, sum(o.out_size for o in ok),
         unreadable),
    ]  # fmt: skip
    for name, seconds, size, errors in rows:
        print(
            f"{name:<36}{len(ok):>6}{errors:>7}{size / MB:>9.1f}{seconds:>9.2f}"
            f"{len(ok) / seconds:>9.1f}{size / MB / seconds:>9.1f}"
        )
    print("(over the files de-identified; MB read: the input for one, the output for the other)")
    print(f"\n{'by source':<24}{'files':>6}{'deid s':>9}{'scan s':>9}{'scan ÷ deid':>13}")
    for source in dict.fromkeys(o.source for o in ok):
        mine = [o for o in ok if o.source == source]
        d, s = sum(o.deid_seconds for o in mine), sum(o.scan_seconds for o in mine)
        print(f"{source:<24}{len(mine):>6}{d:>9.2f}{s:>9.2f}{s / d:>13.2f}")
    print(f"\n{'slowest scans':<46}{'elements':>9}{'deid s':>9}{'scan s':>9}")
    for o in sorted(ok, key=lambda o: -o.scan_seconds)[:3]:
        elements = sum(1 for _ in pydicom.dcmread(o.path).iterall()) if o.path.exists() else 0
        print(f"{name_of(o):<46}{elements:>9,}{o.deid_seconds:>9.2f}{o.scan_seconds:>9.2f}")
    return scan_seconds / deid_seconds


def name_of(output: Output) -> str:
    """A public test file's own name; a synthetic file only as such."""
    if output.source == SYNTHETIC_SOURCE:
        return "(a synthetic mammogram)"
    return f"{output.source_path.parent.name}/{output.source_path.name}"


def left_out(outputs: list[Output]) -> None:
    """Print the files that could not be de-identified, or not be read by the scanner."""
    for o in outputs:
        if o.deid_error is not None:
            print(f"  not de-identified: {name_of(o)}: {o.deid_error}")
        elif o.result is not None and o.result.error is not None:
            print(f"  scan error: {name_of(o)}: {o.result.error}")


# --- part 2: OCR ------------------------------------------------------------------------------


def risky_images(site: Path, key: AnswerKey, cap: int) -> tuple[list[Path], int]:
    """The images the triage would read, synthetic first, at most ``cap``; and how many
    candidates there were in all."""
    import data_store  # type: ignore[import-untyped]
    import deid_data  # type: ignore[import-untyped]

    candidates = [site / f.path for f in key.files if f.kind in RISKY_KINDS]
    candidates += sorted((Path(data_store.__file__).parent / "data").glob("OBXXXX1A*.dcm"))
    candidates += sorted((Path(deid_data.__file__).parent / "data" / "ultrasounds").glob("*.dcm"))
    # The header is read as the scanner reads it, pixel data deferred but present: a header
    # read with stop_before_pixels has no Pixel Data, and the triage calls that low risk.
    risky = [p for p in candidates if triage(pydicom.dcmread(p, defer_size=1024)).needs_reading]
    return risky[:cap], len(risky)


def timed_scans(
    scanner: Scanner, paths: list[Path], known: Callable[[Path], KnownIdentifiers | None]
) -> tuple[float, dict[Path, ScanResult]]:
    results = {}
    seconds = 0.0
    for path in paths:
        start = time.perf_counter()
        results[path] = scanner.scan_file(path, known(path))
        seconds += time.perf_counter() - start
    return seconds, results


# --- part 3: false alarms ---------------------------------------------------------------------


def false_alarms(outputs: list[Output]) -> None:
    """Print files failed per source and findings by action and rule, with where they were."""
    real = [o for o in outputs if o.source != SYNTHETIC_SOURCE and o.result is not None]
    print(f"{'source':<24}{'files':>6}{'clean':>7}{'failed':>8}{'unreadable':>12}")
    for source in dict.fromkeys(o.source for o in real):
        results = [o.result for o in real if o.source == source and o.result is not None]
        failed = sum(1 for r in results if r.failed)
        errors = sum(1 for r in results if r.error)
        print(f"{source:<24}{len(results):>6}{len(results) - failed:>7}{failed:>8}{errors:>12}")
    results = [o.result for o in real if o.result is not None]
    findings = Counter((f.action, f.rule) for r in results for f in r.findings)
    files = Counter({k: 0 for k in findings})
    where: dict[tuple[Action, str], Counter[str]] = {k: Counter() for k in findings}
    for r in results:
        for k in {(f.action, f.rule) for f in r.findings}:
            files[k] += 1
        for f in r.findings:
            where[(f.action, f.rule)][f"{f.detector.value}@{f.keyword or f.path_pattern}"] += 1
    print(f"\n{'action':<8}{'rule':<30}{'findings':>9}{'files':>7}  most often (detector@element)")
    order = sorted(findings, key=lambda k: (-k[0].rank, -findings[k]))
    for key in order:
        top = ", ".join(f"{w} ×{n}" for w, n in where[key].most_common(3))
        print(f"{key[0].value:<8}{key[1]:<30}{findings[key]:>9}{files[key]:>7}  {top}")
    if not findings:
        print("  no findings")
    suppressed = sum((r.suppressed for r in results), Counter[str]())
    told = ", ".join(f"{rule} {n}" for rule, n in suppressed.most_common())
    print(f"suppressed by ignore rules: {told or 'none'}")
    left_out([o for o in outputs if o.source != SYNTHETIC_SOURCE])


# --- part 4: recall ---------------------------------------------------------------------------


def known_of(key: AnswerKey, patient: int) -> KnownIdentifiers:
    """What the vault knows of a patient (as ``tests/scan/test_scanner.py`` has it)."""
    p = key.patients[patient]
    values = [p.nhs_number, p.hospital_number, p.family_name, *p.given_names, p.birth_date]
    return KnownIdentifiers.of([*values, *([p.chi_number] if p.chi_number else [])])


def recall(
    site: Path, key: AnswerKey, ocr_scanner: Scanner, ocr_done: dict[Path, ScanResult]
) -> tuple[Counter[str], Counter[str], int]:
    """Plants found and planted per category; and the images read with OCR here."""
    scanner = Scanner(load_rules([], level="publication"))
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    read_here = 0
    for record in key.files:
        path = site / record.path
        known = known_of(key, record.patient)
        plants = key.plants_in(record.path)
        header = scanner.scan_file(path, known)
        paths = {f.tag_path for f in header.findings}
        for plant in plants:
            if plant.category in HEADER_CATEGORIES:
                total[plant.category.value] += 1
                found[plant.category.value] += plant.location in paths
        pixel_plants = [p for p in plants if p.category in PIXEL_CATEGORIES]
        if not pixel_plants:
            continue
        if path not in ocr_done:
            ocr_done[path] = ocr_scanner.scan_file(path, known)
            read_here += 1
        result = ocr_done[path]
        for plant in pixel_plants:
            total[plant.category.value] += 1
            if plant.category is Category.OVERLAY:
                found[plant.category.value] += any(
                    f.detector is Detector.OVERLAY for f in result.findings
                )
            else:
                found[plant.category.value] += any(f.tag_path == PIXEL_TAG for f in result.findings)
    return found, total, read_here


# --- report -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few files per source")
    args = parser.parse_args(argv)
    quiet()
    began = time.perf_counter()
    publication = Scanner(load_rules([], level="publication"))
    ocr_scanner = Scanner(load_rules([], level="publication"), ocr=True)

    with tempfile.TemporaryDirectory(prefix="scan-bench-") as tmp:
        work = Path(tmp)
        corpus = build_corpus(work, args.quick)
        files = [(source, p) for source, paths, _ in corpus for p in paths]
        print(f"corpus{' (--quick)' if args.quick else ''}:")
        for source, paths, skipped in corpus:
            megabytes = sum(p.stat().st_size for p in paths) / MB
            note = f", {skipped} skipped (pydicom cannot read them)" if skipped else ""
            print(f"  {source:<22}{len(paths):>5} files {megabytes:>8.1f} MB{note}")
        total_mb = sum(p.stat().st_size for _, p in files) / MB
        print(f"  {'total':<22}{len(files):>5} files {total_mb:>8.1f} MB")

        run_serial("warm-up", copy_file, [p for _, p in files], work / "warm")  # page cache
        publication_setup()
        warm_up([paths[0] for _, paths, _ in corpus if paths], work / "warm-tools", publication)

        print("\n1. scanning vs de-identifying, the same files")
        outputs = deidentify_then_scan(files, work / "publication", publication)
        ratio = speed_table(outputs)
        shutil.rmtree(work / "publication")
        print()
        goal(
            "scan time ÷ de-identification time (scanning every output costs less than "
            "de-identifying it)",
            ratio,
            1.0,
            higher_is_better=False,
        )

        site = work / "site"
        key = generate_site(site, patients=3, seed=7)
        cap = QUICK_OCR_CAP if args.quick else OCR_CAP
        images, candidates = risky_images(site, key, cap)
        by_path = {site / f.path: f for f in key.files}

        def known(path: Path) -> KnownIdentifiers | None:
            record = by_path.get(path)  # the synthetic patient's values; none for real files
            return None if record is None else known_of(key, record.patient)

        print(f"\n2. OCR scanning: {len(images)} risky images (of {candidates} the triage reads; "
              f"at most {cap}), {sum(p in by_path for p in images)} synthetic")  # fmt: skip
        ocr_scanner.scan_file(images[0])  # loads RapidOCR's models (not timed)
        engine_named("rapidocr").read(_images(pydicom.dcmread(images[0]), [0])[0])
        header_seconds, _ = timed_scans(publication, images, known)
        # The OCR stage keeps what it read per image hash in this process; emptied, so that
        # every image is read here as it would be in a fresh worker.
        _READ_CACHE.clear()
        ocr_seconds, ocr_done = timed_scans(ocr_scanner, images, known)
        floor = bare_detector(images)
        read = sum(1 for r in ocr_done.values() if r.ocr_read)
        print(f"{'way':<44}{'images':>7}{'seconds':>9}{'images/s':>10}")
        for name, seconds in [
            ("scanner, headers only", header_seconds),
            ("scanner with OCR (RapidOCR, up to 3 frames)", ocr_seconds),
            ("floor: RapidOCR reading one frame each", floor),
        ]:
            print(f"{name:<44}{len(images):>7}{seconds:>9.2f}{len(images) / seconds:>10.2f}")
        print(f"(OCR ran on {read} of {len(images)}; the scanner with OCR takes "
              f"{ocr_seconds / floor:.2f}× the floor's time)")  # fmt: skip

        print("\n3. false alarms on de-identified real files (publication profile and rules)")
        false_alarms(outputs)
        print("\n   the same at the limited-access level (profile and rules)")
        limited = Scanner(load_rules([], level="limited-access"))
        real = [(s, p) for s, p in files if s != SYNTHETIC_SOURCE]
        with profile_named("limited-access"):
            warm_up([p for _, p in real[:1]], work / "warm-limited", limited)
            limited_outputs = deidentify_then_scan(real, work / "limited", limited)
        shutil.rmtree(work / "limited")
        false_alarms(limited_outputs)

        print("\n4. recall on the synthetic site (3 patients, seed 7), un-de-identified files, "
              "publication rules, the patient's values known")  # fmt: skip
        found, total, read_here = recall(site, key, ocr_scanner, ocr_done)
        print(f"{'category':<22}{'found':>7}{'planted':>9}{'recall':>8}")
        for category in Category:
            c = category.value
            if total[c]:
                print(f"{c:<22}{found[c]:>7}{total[c]:>9}{found[c] / total[c]:>8.1%}")
        print(f"({len(key.files)} files; pixel plants judged per file, by OCR of up to three "
              f"frames; {read_here} images read with OCR for this part alone)")  # fmt: skip

    print(f"\nwhole run: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
