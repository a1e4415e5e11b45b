"""Pixel de-identification throughput, beside the bare OCR engine and Presidio, in one run.

    .venv/bin/python benchmarks/deid_pixels.py [--no-peer] [--sampling-only] [--slices N]

Four ways dicomhaven makes images safe, each in this process on one core:

- ultrasound with OCR: the real burned-in ultrasounds of pydicom-data and deid-data and the
  synthetic site's ultrasounds and dose screens, read by RapidOCR, blanked and verified by
  Tesseract (``clean_pixels`` with the default policy);
- the same images with a device template: each device's regions learned from the first
  pass and approved, so images are blanked without reading (one in ten still read);
- low-risk CT slices: triaged from the header and not read at all (``deid``, ``redact``);
- a plain CT series (40 synthetic 512 x 512 slices, Burned In Annotation NO) as the pipeline
  treats it: a sample of each series read (``pixel_sample_every`` 25 once its device is
  trusted, 5 before; ``release`` then reads the first, middle and last of an untrusted
  device's held series, 3 more), beside reading every slice; readings are the detector's
  calls, seconds include the signature of every slice.

The floor is the bare detector: RapidOCR reading each image's first frame once. The peer
is Presidio's ``DicomImageRedactorEngine`` with Tesseract (``presidio-image-redactor``,
pinned in ``benchmarks/peers/pixels-requirements.txt``), run in its own venv,
``benchmarks/.pixel-peers-venv``, made on first use; its analyzer gets a blank spaCy
pipeline, since the trained models it asks for are downloaded at run time, which this
machine cannot do (the DICOM redactor finds names through the header's own values and
patterns, which need no trained model). When the peer cannot run here, the reason is
printed and its column left empty.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pydicom

from dicomhaven.pixels import (
    DeviceKey,
    KnownValues,
    PixelOutcome,
    TemplateStore,
    clean_pixels,
    engine_named,
)
from dicomhaven.pixels._clean import _READ_CACHE, _images
from dicomhaven.pixels._ocr import RapidOcrEngine
from dicomhaven.pixels._sampling import PlainSliceSampling, SeriesSampler
from dicomhaven.synth import FileKind, generate_site

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".pixel-peers-venv"
PEER_REQUIREMENTS = HERE / "peers" / "pixels-requirements.txt"
PEER_SCRIPT = HERE / "peers" / "run_presidio.py"


def corpus(work: Path) -> tuple[list[Path], list[Path]]:
    """Risky images (real and synthetic ultrasounds, dose screens) and low-risk CT slices."""
    import data_store  # type: ignore[import-untyped]
    import deid_data  # type: ignore[import-untyped]

    risky = sorted((Path(data_store.__file__).parent / "data").glob("OBXXXX1A*.dcm"))
    risky += sorted((Path(deid_data.__file__).parent / "data" / "ultrasounds").glob("*.dcm"))
    key = generate_site(work / "synth", patients=4, seed=11)
    kinds = {FileKind.US, FileKind.US_CINE, FileKind.DOSE_SCREEN}
    risky += [work / "synth" / f.path for f in key.files if f.kind in kinds]
    low = [work / "synth" / f.path for f in key.files if f.kind is FileKind.CT]
    return risky, low


def timed(paths: list[Path], store: TemplateStore | None) -> tuple[float, dict[str, int], int]:
    """Seconds to make ``paths`` safe, the outcomes, and the frames in them."""
    outcomes: dict[str, int] = {}
    frames = 0
    seconds = 0.0
    for path in paths:
        dataset = pydicom.dcmread(path)
        frames += int(dataset.get("NumberOfFrames", 1) or 1)
        known = KnownValues.from_header(dataset)
        start = time.perf_counter()
        result = clean_pixels(dataset, known, original=dataset, templates=store)
        seconds += time.perf_counter() - start
        outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
    return seconds, outcomes, frames


def learned_templates(paths: list[Path], folder: Path) -> TemplateStore:
    """Approved templates from one reading pass, as a data manager would approve them."""
    store = TemplateStore(folder)
    for path in paths:
        dataset = pydicom.dcmread(path)
        clean_pixels(dataset, original=dataset, templates=store)
    for template in store.all():
        store.approve(template.device, "benchmark")
    return TemplateStore(folder)  # a fresh cache, as a new worker would read them


def plain_series(slices: int, size: int = 512) -> list[pydicom.Dataset]:
    """One synthetic axial CT series as a scanner sends it (no text anywhere)."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    from dicomhaven.synth._pixels import ct_slice

    series = []
    for index in range(slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.BurnedInAnnotation = "NO"
        ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth = -1024, 1, 40, 400
        ds.Rows = ds.Columns = size
        rng = np.random.default_rng(index)
        ds.PixelData = ct_slice(rng, size, size, -5.0 * index).tobytes()
        series.append(ds)
    return series


def sampled_series(slices: int) -> list[tuple[str, int, float, dict[str, int]]]:
    """Readings and seconds for one plain series: every slice read, then sampled as for
    a trusted and an untrusted device."""
    import copy

    calls = [0]
    real = RapidOcrEngine.read

    def counted(self: RapidOcrEngine, image: object) -> object:
        calls[0] += 1
        return real(self, image)  # type: ignore[arg-type]

    RapidOcrEngine.read = counted  # type: ignore[assignment,method-assign]
    rows = []
    try:
        series = plain_series(slices)
        for name, every in (
            ("plain CT series, every slice read", 1),
            ("plain CT series, sampled (trusted, 1 in 25)", 25),
            ("plain CT series, sampled (untrusted, 1 in 5)", 5),
        ):
            _READ_CACHE.clear()  # each way reads the series afresh
            sampling = PlainSliceSampling("bench", every, sampler=SeriesSampler())
            calls[0], seconds = 0, 0.0
            outcomes: dict[str, int] = {}
            for original in series:
                dataset = copy.deepcopy(original)
                start = time.perf_counter()
                result = clean_pixels(dataset, original=dataset, sampling=sampling)
                seconds += time.perf_counter() - start
                outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
            rows.append((name, calls[0], seconds, outcomes))
    finally:
        RapidOcrEngine.read = real  # type: ignore[method-assign]
    return rows


def bare_detector(paths: list[Path]) -> float:
    engine = engine_named("rapidocr")
    seconds = 0.0
    for path in paths:
        dataset = pydicom.dcmread(path)
        (image,) = _images(dataset, [0])
        start = time.perf_counter()
        engine.read(image)
        seconds += time.perf_counter() - start
    return seconds


def peer(paths: list[Path], out: Path) -> tuple[float | None, str]:
    """Presidio's seconds on ``paths``, or None and why it could not run."""
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / "requirements.txt"
    try:
        if (
            not python.exists()
            or not stamp.exists()
            or stamp.read_text() != PEER_REQUIREMENTS.read_text()
        ):
            print(f"making {PEER_VENV} (not timed)...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", PEER_VENV], check=True)
            subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "-r", PEER_REQUIREMENTS],
                check=True,
                capture_output=True,
            )
            stamp.write_text(PEER_REQUIREMENTS.read_text())
        proc = subprocess.run(
            [python, PEER_SCRIPT, str(out), *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{type(exc).__name__}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return None, last
    report = json.loads(proc.stdout)
    return float(report["seconds"]), f"{report['failed']} files failed"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-peer", action="store_true", help="leave Presidio out")
    parser.add_argument(
        "--sampling-only", action="store_true", help="only the plain CT series' sampling"
    )
    parser.add_argument("--slices", type=int, default=40, help="slices of the plain series")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    engine_named("rapidocr")  # loaded once, not timed
    series_rows = sampled_series(args.slices)
    print(f"{'plain CT series of ' + str(args.slices) + ' slices':<48}{'reads':>6}"
          f"{'s/series':>10}  outcomes")  # fmt: skip
    for name, reads, seconds, outcomes in series_rows:
        told = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        print(f"{name:<48}{reads:>6}{seconds:>10.2f}  {told}")
    print()
    if args.sampling_only:
        return
    with tempfile.TemporaryDirectory(prefix="pixels-bench-") as tmp:
        work = Path(tmp)
        risky, low = corpus(work)
        engine_named("rapidocr").read(_images(pydicom.dcmread(risky[0]), [0])[0])  # warm-up
        ocr_seconds, ocr_outcomes, frames = timed(risky, None)
        store = learned_templates(risky, work / "templates")
        devices = {DeviceKey.of(pydicom.dcmread(p, stop_before_pixels=True)).id for p in risky}
        template_seconds, template_outcomes, _ = timed(risky, store)
        low_seconds, low_outcomes, _ = timed(low, None)
        floor = bare_detector(risky)
        peer_seconds, peer_note = (None, "left out (--no-peer)")
        if not args.no_peer:
            peer_seconds, peer_note = peer(risky, work / "presidio")

    print(f"risky images: {len(risky)} ({frames} frames, {len(devices)} devices); "
          f"low-risk CT slices: {len(low)}\n")  # fmt: skip
    print(f"{'way':<44}{'images':>7}{'seconds':>9}{'images/s':>10}  outcomes")
    rows = [
        ("dicomhaven, ultrasound with OCR", len(risky), ocr_seconds, ocr_outcomes),
        ("dicomhaven, same with device templates", len(risky), template_seconds, template_outcomes),
        ("dicomhaven, low-risk CT (triaged, not read)", len(low), low_seconds, low_outcomes),
        ("floor: RapidOCR reading one frame each", len(risky), floor, {}),
    ]
    for name, count, seconds, outcomes in rows:
        told = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        print(f"{name:<44}{count:>7}{seconds:>9.2f}{count / seconds:>10.2f}  {told}")
    if peer_seconds is None:
        print(f"{'Presidio DicomImageRedactorEngine':<44}{len(risky):>7}{'-':>9}{'-':>10}  "
              f"could not run here: {peer_note}")  # fmt: skip
    else:
        print(f"{'Presidio DicomImageRedactorEngine':<44}{len(risky):>7}{peer_seconds:>9.2f}"
              f"{len(risky) / peer_seconds:>10.2f}  {peer_note}")  # fmt: skip
        print(f"\ndicomhaven with OCR vs Presidio: {peer_seconds / ocr_seconds:.2f}× its speed")
    print(f"dicomhaven with OCR vs the bare detector: {ocr_seconds / floor:.2f}× its time "
          f"(it also verifies with a second engine and writes the pixels back)")  # fmt: skip
    redacted = ocr_outcomes.get(PixelOutcome.REDACTED.value, 0)
    print(f"made safe with OCR: {redacted} of {len(risky)} redacted, "
          f"{ocr_outcomes.get(PixelOutcome.HELD.value, 0)} held")  # fmt: skip


if __name__ == "__main__":
    main()
