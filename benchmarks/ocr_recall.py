"""Burned-in text: how much of the true text each OCR engine finds, on real images.

    .venv/bin/python benchmarks/ocr_recall.py [--repeat N] [--engines tesseract,rapidocr,...]

The answer key is Presidio's ``ground_truth.json`` (in ``/work/shared/data/presidio``): the
box and text of every burned-in identifier on its TCIA sample images. Three of those images
are here: ``0_ORIGINAL_compressed.dcm`` (the RLE copy of ``0_ORIGINAL.dcm``, a CR of 2140 x
1760), ``2_ORIGINAL.dcm`` (a CT scout, 394 x 552) and ``RGB_ORIGINAL.dcm`` (a PET/CT fusion
secondary capture, 512 x 512), which carries no text and has no entry in the key: it
measures false detections only. Presidio drew its key on images it had padded by 25 pixels
on every side (``DicomImageRedactorEngine`` pads before OCR), so the key's boxes are moved
back by 25 pixels here; tesseract's word boxes then equal them to the pixel.

Each engine reads each image once per repeat (the reading time is the median); then, for
several ways of choosing what to blank, every chosen box is padded by ``--pad`` pixels and:

- **recall**: the fraction of true boxes covered (at least ``--cover`` of each box's area
  lies under a blanked box), with the smallest coverage seen;
- **precision**: the fraction of blanked area that lies inside true boxes.

The ways of choosing: ``all-text`` blanks every word read (the policy for risky images
whose patient is unknown); ``generic`` blanks the phrases holding a generic identifier
(dates, numbers, cue labels...); ``generic-words`` only the matching words; ``known``
adds the patient's own values taken from the header (as the vault would give them), and
``known-words`` blanks only the words those rules matched.
Nothing recognised is printed: only counts, scores and the names of rules.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom

from dicomhaven.pixels import (
    Box,
    KnownValues,
    OcrEngine,
    RapidOcrEngine,
    Scope,
    TesseractEngine,
    Word,
    display_image,
    find_identifiers,
)

PRESIDIO = Path("/work/shared/data/presidio")
#: Image file here → its entry in the key (None: no text on it, no entry).
IMAGES = {
    "0_ORIGINAL_compressed.dcm": "sample_data/0_ORIGINAL.dcm",
    "2_ORIGINAL.dcm": "sample_data/2_ORIGINAL.dcm",
    "RGB_ORIGINAL.dcm": None,
}
PRESIDIO_PADDING = 25

ENGINES: dict[str, Callable[[], OcrEngine]] = {
    "tesseract": TesseractEngine,
    "tesseract-upright": lambda: TesseractEngine(rotations=(0,)),
    "rapidocr": RapidOcrEngine,
}


@dataclass(frozen=True)
class Score:
    covered: int
    truths: int
    least_coverage: float
    precision: float | None
    blanked: int


def truth_boxes(key: dict[str, list[dict[str, int]]], entry: str | None) -> list[Box]:
    if entry is None:
        return []
    return [
        Box(
            b["left"] - PRESIDIO_PADDING,
            b["top"] - PRESIDIO_PADDING,
            b["left"] - PRESIDIO_PADDING + b["width"],
            b["top"] - PRESIDIO_PADDING + b["height"],
        )
        for b in key[entry]
    ]


def mask(boxes: Sequence[Box], shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    out = np.zeros(shape[:2], dtype=bool)
    for box in boxes:
        b = box.clipped(shape)
        out[b.y0 : b.y1, b.x0 : b.x1] = True
    return out


def score(blanked: Sequence[Box], truths: Sequence[Box], shape: tuple[int, ...], *, pad: int,
          cover: float) -> Score:  # fmt: skip
    blank = mask([b.padded(pad, shape) for b in blanked], shape)
    truth = mask(truths, shape)
    coverages = []
    for t in truths:
        c = t.clipped(shape)
        coverages.append(float(blank[c.y0 : c.y1, c.x0 : c.x1].mean()) if c.area else 1.0)
    area = int(blank.sum())
    return Score(
        covered=sum(c >= cover for c in coverages),
        truths=len(truths),
        least_coverage=min(coverages, default=1.0),
        precision=float((blank & truth).sum()) / area if area else None,
        blanked=area,
    )


def choices(words: list[Word], known: KnownValues) -> dict[str, tuple[list[Box], Counter[str]]]:
    def found(
        known: KnownValues | None = None, scope: Scope = Scope.PHRASE
    ) -> tuple[list[Box], Counter[str]]:
        findings = find_identifiers(words, known, scope=scope)
        return [f.box for f in findings], Counter(f.rule.value for f in findings)

    return {
        "all-text": ([w.box for w in words], Counter()),
        "generic": found(),
        "generic-words": found(scope=Scope.WORDS),
        "known": found(known=known),
        "known-words": found(known=known, scope=Scope.WORDS),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="readings per image (median)")
    parser.add_argument("--engines", default="tesseract,rapidocr", help=f"of {sorted(ENGINES)}")
    parser.add_argument("--pad", type=int, default=3, help="pixels added around each box")
    parser.add_argument("--cover", type=float, default=0.95, help="coverage to count a box")
    args = parser.parse_args(argv)
    key = json.loads((PRESIDIO / "ground_truth.json").read_text())
    names = [n.strip() for n in args.engines.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s) {unknown}; choose from {sorted(ENGINES)}")
    print(f"pad {args.pad} px, a true box counts as covered at >= {args.cover:.0%} of its area")
    header = (
        f"{'engine':<18}{'image':<27}{'s/image':>8}{'words':>6}  {'choice':<14}"
        f"{'recall':>8}{'least':>7}{'precision':>10}{'blanked px':>11}  rules"
    )
    print(header)
    print("-" * len(header))
    totals: dict[tuple[str, str], list[Score]] = {}
    for name in names:
        engine = ENGINES[name]()
        for filename, entry in IMAGES.items():
            ds = pydicom.dcmread(PRESIDIO / filename)
            image = display_image(ds, ds.pixel_array)
            truths = truth_boxes(key, entry)
            known = KnownValues.from_header(ds)
            times = []
            words: list[Word] = []
            for _ in range(max(1, args.repeat)):
                start = time.perf_counter()
                words = engine.read(image)
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            for i, (choice, (boxes, rules)) in enumerate(choices(words, known).items()):
                s = score(boxes, truths, image.shape, pad=args.pad, cover=args.cover)
                totals.setdefault((name, choice), []).append(s)
                recall = f"{s.covered}/{s.truths}" if s.truths else "-"
                least = f"{s.least_coverage:.2f}" if s.truths else "-"
                precision = "-" if s.precision is None else f"{s.precision:.2f}"
                lead = (
                    f"{name:<18}{filename:<27}{seconds:>8.2f}{len(words):>6}"
                    if i == 0
                    else " " * 59
                )
                fired = ",".join(f"{r}:{n}" for r, n in sorted(rules.items()))
                print(
                    f"{lead}  {choice:<14}{recall:>8}{least:>7}{precision:>10}"
                    f"{s.blanked:>11}  {fired}"
                )
    print()
    print("totals over the images with a key entry (recall) and over all images (precision)")
    for (name, choice), scores in totals.items():
        covered = sum(s.covered for s in scores)
        expected = sum(s.truths for s in scores)
        inside = sum((s.precision or 0.0) * s.blanked for s in scores)
        area = sum(s.blanked for s in scores)
        precision = f"{inside / area:.2f}" if area else "-"
        print(
            f"  {name:<18}{choice:<14} recall {covered}/{expected} = {covered / expected:.0%}"
            f"   precision {precision}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
