"""Plain slices are sampled, whatever the header says (issue 18, item 1): the text-band
signature, the sampling rule, the gate's scan of sampled images, and the pipeline on a
synthetic CT series whose slices say Burned In Annotation NO while some carry a name and an
NHS number in their pixels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import select

from dicomhaven.catalogue import DeviceState, LedgerObject, make_engine, make_sessionmaker
from dicomhaven.cli import main
from dicomhaven.errors import ConfigError
from dicomhaven.ingest import import_paths
from dicomhaven.pixels import PixelOutcome, RapidOcrEngine, Word, clean_pixels, display_image
from dicomhaven.pixels._clean import _READ_CACHE
from dicomhaven.pixels._ocr import Box
from dicomhaven.pixels._sampling import (
    BandSignature,
    PlainSliceSampling,
    SampleReason,
    SeriesSampler,
    band_signature,
    mark_sampled,
    reset_sampling,
    was_sampled,
)
from dicomhaven.scan import KnownIdentifiers, Scanner, load_rules
from dicomhaven.scan._devices import DeviceIdentity, describe_objects, object_kind
from dicomhaven.scan._stage import gate_services, reset_gate_services
from dicomhaven.settings import load_settings
from dicomhaven.site import Site
from dicomhaven.synth._pixels import ct_slice, render_mask
from tests.corpora import pydicom_data_folder, pydicom_file
from tests.peers import require_tool

ROOT = "1.2.826.0.1.3680043.9.9999.18."
NAME, NHS = "ZZTEST CANARY", "NHS 943 476 5919"  # a synthetic name; the NHS's example number
SIZE = 256
TEXT = 4095  # stored value of burned-in text: the top of the 12-bit range
GREY_TEXT = 1024 + 150  # 150 HU: plain grey on the display, below the signature's ink level


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """As in a new worker: no series seen, nothing read yet (readings are counted)."""
    reset_sampling()
    reset_gate_services()
    _READ_CACHE.clear()
    yield
    reset_sampling()
    reset_gate_services()


# ------------------------------------------------------------------ builders


def _header() -> Dataset:
    """What the display of a synthetic CT slice needs: soft-tissue window, 12 bits."""
    ds = Dataset()
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = 40, 400
    return ds


def stored_slice(index: int, size: int = SIZE, seed: int = 18) -> npt.NDArray[np.uint16]:
    """Slice ``index`` of a synthetic chest series (5 mm apart), in stored values."""
    return ct_slice(np.random.default_rng(seed + index), size, size, -5.0 * index)


def plant(
    pixels: npt.NDArray[np.uint16], x: int, y: int, text: str, value: int = TEXT, size: int = 12
) -> tuple[int, int, int, int]:
    """Burn ``text`` into ``pixels`` at (x, y); its box (x0, y0, x1, y1)."""
    mask, (left, top, width, height) = render_mask(
        (pixels.shape[0], pixels.shape[1]), x, y, text, size
    )
    pixels[mask >= 128] = value
    return left, top, left + width, top + height


def shown(pixels: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint8]:
    image: npt.NDArray[np.uint8] = display_image(_header(), pixels)
    return image


def ct_file(
    path: Path,
    pixels: npt.NDArray[np.uint16],
    *,
    series: str,
    study: str,
    number: int,
    manufacturer: str = "ZZ Scanners",
) -> None:
    """One axial CT slice of a plain series, Burned In Annotation NO, as a scanner sends it."""
    ds = _header()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop = generate_uid(ROOT)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.FrameOfReferenceUID = generate_uid(ROOT)
    ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "NO"
    ds.SeriesDescription = "Chest 5mm"
    ds.PatientName, ds.PatientID = "ZZTEST^CANARY", "ZZ0000018"
    ds.PatientBirthDate, ds.PatientSex = "19500102", "O"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20260101", "120000", "ZZACC18"
    ds.Manufacturer, ds.ManufacturerModelName = manufacturer, "ZZ 64"
    ds.DeviceSerialNumber, ds.SoftwareVersions = "ZZSN18", "1.0"
    ds.SeriesNumber, ds.InstanceNumber = 1, number
    ds.SliceLocation = -5.0 * number
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


#: A plant on a slice: where, what, and at which stored value.
Plant = tuple[int, int, str, int]


def write_series(
    folder: Path, count: int, plants: dict[int, list[Plant]], seed: int = 18
) -> list[tuple[int, int, int, int]]:
    """``count`` slices of one series in ``folder`` (IM0001.dcm, ...), the ``plants`` burned
    into the slices they name (1-based); the boxes of every plant."""
    folder.mkdir(parents=True)
    study, series = generate_uid(ROOT), generate_uid(ROOT)
    boxes = []
    for number in range(1, count + 1):
        pixels = stored_slice(number, seed=seed)
        for x, y, text, value in plants.get(number, []):
            boxes.append(plant(pixels, x, y, text, value))
        ct_file(folder / f"IM{number:04d}.dcm", pixels, series=series, study=study, number=number)
    return boxes


# ------------------------------------------------------------------ the signature


def test_the_signature_sees_writing_in_every_band() -> None:
    assert not band_signature(shown(stored_slice(1))).text_like
    side = "ZZ 18"  # the left and right strips are narrow: a short label
    for x, y, text in (
        (6, 4, NHS), (SIZE - 100, 6, NAME), (6, SIZE - 18, NHS),
        (2, SIZE // 2, side), (SIZE - 30, SIZE // 2, side),
    ):  # fmt: skip
        pixels = stored_slice(1)
        plant(pixels, x, y, text, size=10)
        assert band_signature(shown(pixels)).text_like, (x, y)


def test_the_signature_takes_no_line_curve_or_speckle_for_writing() -> None:
    pixels = stored_slice(1)
    pixels[SIZE - 12 : SIZE - 9, :] = TEXT  # a table edge across the bottom band
    pixels[40:200, 10:12] = TEXT  # a head holder's side in the left strip
    t = np.linspace(0, np.pi, 400)
    ys, xs = (20 - 14 * np.sin(t)).astype(int), (30 + 190 * t / np.pi).astype(int)
    pixels[ys, xs] = TEXT  # an arc through the top band
    rng = np.random.default_rng(7)
    pixels[rng.integers(0, 30, 60), rng.integers(0, SIZE, 60)] = TEXT  # isolated speckle
    assert not band_signature(shown(pixels)).text_like
    # Real slices with anatomy, head holders and fat in their bands carry no writing.
    for path in (
        pydicom_file("CT_small.dcm"),
        pydicom_file("MR_small.dcm"),
        pydicom_data_folder() / "693_UNCR.dcm",
        pydicom_data_folder() / "MR2_UNCR.dcm",
    ):
        ds = pydicom.dcmread(path)
        assert not band_signature(display_image(ds, ds.pixel_array)).text_like, path.name


def test_text_in_the_middle_of_an_image_is_no_business_of_the_bands() -> None:
    """The signature looks where devices write; text elsewhere is for the regular samples."""
    pixels = stored_slice(1)
    plant(pixels, 60, 120, NHS)
    assert not band_signature(shown(pixels)).text_like


def test_bands_differ_when_text_appears_not_when_anatomy_drifts() -> None:
    first = band_signature(shown(stored_slice(1)))
    assert not band_signature(shown(stored_slice(2))).differs(first)
    assert not band_signature(shown(stored_slice(9))).differs(first)
    pixels = stored_slice(2)
    plant(pixels, 6, 4, "ZZ")  # too short to be writing, but new ink in a band
    marked = band_signature(shown(pixels))
    assert not marked.text_like and marked.differs(first)
    small = band_signature(shown(stored_slice(1, size=128)))
    assert small.differs(first)  # another image size: nothing to compare


# ------------------------------------------------------------------ the sampling rule


def _signature(text: bool = False, index: int = 1) -> BandSignature:
    pixels = stored_slice(index)
    if text:
        plant(pixels, 6, 4, NAME)
    return band_signature(shown(pixels))


def _reads(sampler: SeriesSampler, count: int, every: int, series: str = "s") -> list[int]:
    """Which of ``count`` plain slices (1-based) ``sampler`` reads, each found clean."""
    read = []
    plain = _signature()
    for number in range(1, count + 1):
        choice = sampler.choose(series, plain, every)
        if choice.read:
            read.append(number)
            sampler.record(choice, clean=True)
    return read


def test_the_first_slice_of_a_series_and_one_in_every_n_are_read() -> None:
    assert _reads(SeriesSampler(), 40, every=25) == [1, 26]
    assert _reads(SeriesSampler(), 12, every=5) == [1, 6, 11]
    assert _reads(SeriesSampler(), 4, every=1) == [1, 2, 3, 4]
    sampler = SeriesSampler()
    assert _reads(sampler, 3, every=25, series="a") == [1]
    assert _reads(sampler, 3, every=25, series="b") == [1]  # each series has its first


def test_an_untrusted_device_is_sampled_more_densely() -> None:
    sampler = SeriesSampler()
    trusted = PlainSliceSampling("t", every=25, sampler=sampler)
    untrusted = PlainSliceSampling("u", every=5, sampler=sampler)
    image = shown(stored_slice(1))
    counts = {}
    for sampling in (trusted, untrusted):
        reads = 0
        for _ in range(40):
            choice = sampling.choose(image)
            if choice.read:
                reads += 1
                sampling.record(choice, text_found=False, unreadable=False)
        counts[sampling.series] = reads
    assert counts == {"t": 2, "u": 8}


def test_writing_differing_bands_and_a_series_that_showed_text_are_read() -> None:
    sampler, plain, texted = SeriesSampler(), _signature(), _signature(text=True)
    first = sampler.choose("s", plain, 25)
    assert first.reason is SampleReason.FIRST
    sampler.record(first, clean=True)
    unread = sampler.choose("s", plain, 25)
    assert not unread.read and unread.since == 1
    assert "not sampled (1 of its series unread" in unread.describe()
    writing = sampler.choose("s", texted, 25)
    assert (writing.read, writing.reason) == (True, SampleReason.WRITING)
    pixels = stored_slice(3)
    plant(pixels, 6, 4, "ZZ")
    differing = sampler.choose("s", band_signature(shown(pixels)), 25)
    assert (differing.read, differing.reason) == (True, SampleReason.BANDS_DIFFER)
    sampler.record(writing, clean=False)  # the reading found text
    after = sampler.choose("s", plain, 25)
    assert (after.read, after.reason) == (True, SampleReason.SERIES_SHOWED_TEXT)


def test_a_forgotten_series_starts_again_from_its_first_slice() -> None:
    sampler, plain = SeriesSampler(capacity=2), _signature()
    for series in ("a", "b", "c"):
        sampler.record(sampler.choose(series, plain, 25), clean=True)
    assert sampler.choose("a", plain, 25).reason is SampleReason.FIRST  # the safe direction
    assert not sampler.choose("c", plain, 25).read


# ------------------------------------------------------------------ clean_pixels, the gate


def _plain_dataset(pixels: npt.NDArray[np.uint16]) -> Dataset:
    ds = _header()
    ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid(ROOT)
    ds.BurnedInAnnotation = "NO"
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = pixels.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def test_a_slice_the_sampling_passes_over_is_not_read_and_says_why() -> None:
    sampler = SeriesSampler()
    sampling = PlainSliceSampling("s", every=25, sampler=sampler)
    sampler.record(sampler.choose("s", band_signature(shown(stored_slice(1))), 25), clean=True)
    ds = _plain_dataset(stored_slice(2))
    result = clean_pixels(ds, original=ds, sampling=sampling, trusted_device=True)
    assert result.outcome is PixelOutcome.NOT_READ
    assert (
        result.reason.startswith("low risk: ") and "not sampled (1 of its series" in result.reason
    )
    # Without sampling (a caller that does not ask for it), a plain slice is not read at all.
    assert clean_pixels(ds, original=ds).reason.startswith("low risk: CT acquisition")


class _CountingEngine:
    """A stand-in OCR engine for the scanner's unit test: records what it is asked to read."""

    name = "counting"

    def __init__(self, words: list[Word]) -> None:
        self.words, self.calls = words, 0

    def read(self, image: npt.NDArray[Any]) -> list[Word]:
        self.calls += 1
        return self.words


def test_the_gates_scan_reads_the_pixels_of_every_sampled_image() -> None:
    pixels = stored_slice(1)
    plant(pixels, 6, 4, NHS)
    ds = _plain_dataset(pixels)
    engine = _CountingEngine([Word("943 476 5919", Box(6, 4, 90, 14), 0.9)])
    scanner = Scanner(load_rules([]), ocr=True)
    scanner._ocr_engine = engine
    known = KnownIdentifiers.of(["9434765919"])
    assert not scanner.scan(ds, known).ocr_read and engine.calls == 0  # low risk, not sampled
    assert not was_sampled(ds)
    mark_sampled(ds)  # what the pixel stage does when it samples and reads a slice
    assert was_sampled(ds)
    result = scanner.scan(ds, known)
    assert result.ocr_read and engine.calls == 1
    assert result.failed and any(f.keyword == "PixelData" for f in result.findings)


def test_objects_to_reread_are_listed_as_short_ranges() -> None:
    assert describe_objects([12]) == "object 12"
    assert describe_objects([14, 12, 13, 20, 22, 21, 30]) == "objects 12-14, 20-22, 30"
    assert describe_objects(list(range(0, 20, 2)), limit=3) == "objects 0, 2, 4 and 7 more ranges"


def test_the_sampling_settings_are_validated() -> None:
    settings = load_settings(None, {})
    assert (settings.pixel_sample_every, settings.pixel_sample_every_untrusted) == (25, 5)
    assert load_settings(None, {"DICOMHAVEN_PIXEL_SAMPLE_EVERY": "1"}).pixel_sample_every == 1
    with pytest.raises(ConfigError, match="pixel_sample_every_untrusted"):
        load_settings(None, {"DICOMHAVEN_PIXEL_SAMPLE_EVERY_UNTRUSTED": "0"})


# ------------------------------------------------------------------ the pipeline


def _objects(site: Site) -> list[LedgerObject]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(LedgerObject).order_by(LedgerObject.id)))


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Count the detector's reads (the real engine reads; only the calls are counted)."""
    calls = [0]
    real = RapidOcrEngine.read

    def counted(self: RapidOcrEngine, image: npt.NDArray[Any]) -> list[Word]:
        calls[0] += 1
        return real(self, image)

    monkeypatch.setattr(RapidOcrEngine, "read", counted)
    return lambda: calls[0]


def _store_ink(site: Site, boxes: list[tuple[int, int, int, int]]) -> int:
    """The brightest stored value inside any plant box of any copy in the store."""
    brightest = 0
    for copy in site.zone("store").rglob("*.dcm"):
        pixels = pydicom.dcmread(copy).pixel_array
        for x0, y0, x1, y1 in boxes:
            brightest = max(brightest, int(pixels[y0:y1, x0:x1].max()))
    return brightest


def _trusted_device(site: Site, folder: Path) -> str:
    header = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
    registry = gate_services(site.root).registry
    device = registry.register(DeviceIdentity.of(header), site.site_key()).id
    registry.set_state(device, DeviceState.TRUSTED, by="(test)", reason="sample reviewed")
    return device


def _slice_numbers(site: Site, folder: Path) -> dict[int, LedgerObject]:
    """The objects of the series written to ``folder``, by Instance Number (read from their
    originals in intake)."""
    series = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
    numbered = {}
    for o in _objects(site):
        header = pydicom.dcmread(site.intake / o.intake_path, stop_before_pixels=True)
        if header.SeriesInstanceUID == series.SeriesInstanceUID:
            numbered[int(header.InstanceNumber)] = o
    return numbered


@pytest.mark.integration
def test_a_trusted_scanners_burned_in_name_is_found_by_sampling_and_revokes_its_kind(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("tesseract")
    monkeypatch.setenv("DICOMHAVEN_DEVICE_GATE", "true")
    reads = _count_reads(monkeypatch)
    clean = tmp_path / "clean"
    write_series(clean, 40, {})
    device = _trusted_device(sqlite_site, clean)

    # A clean series of 40 slices costs its samples: the first and one in 25.
    import_paths(sqlite_site, sorted(clean.glob("*.dcm")))  # in the scanner's order
    assert reads() == 2
    assert [o.status for o in _objects(sqlite_site)] == ["released"] * 40

    # The same scanner stamps the name and NHS number on three slices of its next series.
    texted = tmp_path / "texted"
    stamp: list[Plant] = [(6, 4, NAME, TEXT), (6, 18, NHS, TEXT)]
    boxes = write_series(texted, 40, {n: stamp for n in (33, 34, 38)}, seed=180)
    after_clean = reads()
    import_paths(sqlite_site, sorted(texted.glob("*.dcm")))
    assert _store_ink(sqlite_site, boxes) < 2000  # none of the planted text reached the store

    second = _slice_numbers(sqlite_site, texted)
    assert [n for n, o in sorted(second.items()) if o.status == "released"] == list(range(1, 33))
    assert all("revoked" in second[n].reason for n in range(33, 41))  # the kind is held
    [revoked] = gate_services(sqlite_site.root).registry.revocations(device)
    assert revoked.kind == "CT:CTImageStorage:ORIGINAL/PRIMARY/AXIAL"
    assert revoked.group_id == "pixel-sample"
    assert revoked.cause.startswith(
        "burned-in text on a sampled plain slice (its border bands show writing)"
    )
    # Listed to re-read: what was released since the series' last clean sample, slice 26
    # (the one in 25 after the first).
    since_clean = [second[n].id for n in range(27, 33)]
    assert revoked.cause.endswith(f": {len(since_clean)}, {describe_objects(since_clean)}")
    # Slices 1, 26 and 33 to 40 were read (after text, every slice of its series is; the
    # detector reads a frame again when the verifier still finds something on it).
    assert reads() - after_clean >= 10


@pytest.mark.integration
def test_an_untrusted_scanners_series_is_sampled_and_its_ends_read_before_release(
    sqlite_site: Site,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_tool("tesseract")
    monkeypatch.setenv("DICOMHAVEN_DEVICE_GATE", "true")
    root = str(sqlite_site.root)
    reads = _count_reads(monkeypatch)
    # One clean series, and one whose last slice carries the NHS number in plain grey (too
    # dim for the signature's ink level, plain to OCR): only reading the last slice finds it.
    clean, dim = tmp_path / "in" / "clean", tmp_path / "in" / "dim"
    write_series(clean, 40, {})
    boxes = write_series(dim, 40, {40: [(6, 4, NHS, GREY_TEXT)]}, seed=181)
    import_paths(sqlite_site, [*sorted(clean.glob("*.dcm")), *sorted(dim.glob("*.dcm"))])
    assert reads() == 16  # per series, the first and one in five: slices 1, 6, ..., 36
    objects = _objects(sqlite_site)
    assert {o.status for o in objects} == {"quarantined"}  # a new device: held

    assert main(["users", "add", "dana", "--role", "data-manager", "--site", root]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    header = pydicom.dcmread(next(clean.glob("*.dcm")), stop_before_pixels=True)
    device = DeviceIdentity.of(header).device_id(sqlite_site.site_key())
    trust = ["devices", "trust", device, "--reason", "sample reviewed", "--site", root]
    assert main([*trust, "--token", token]) == 0
    _READ_CACHE.clear()  # 'dicomhaven release' runs in a process of its own
    assert main(["release", "--site", root, "--token", token]) == 0
    assert reads() == 16 + 6  # then the first, middle and last of each series
    assert _store_ink(sqlite_site, boxes) < GREY_TEXT - 50  # the dim number is not in store

    dimmed = _slice_numbers(sqlite_site, dim)
    assert dimmed[40].status == "quarantined"
    assert "burned-in text on a slice read before release" in dimmed[40].reason
    [revoked] = gate_services(sqlite_site.root).registry.revocations(device)
    assert revoked.kind == object_kind(header) and "read before release" in revoked.cause
    # The rest of the kind stays held until a data manager trusts it again.
    assert {o.status for o in _objects(sqlite_site)} == {"quarantined"}


@pytest.mark.integration
def test_a_worker_that_read_no_clean_sample_lists_all_released_since_the_trust(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger's record: a worker that has not read a clean sample of the kind lists
    what was released of it since the device was trusted."""
    require_tool("tesseract")
    monkeypatch.setenv("DICOMHAVEN_DEVICE_GATE", "true")
    clean, texted = tmp_path / "clean", tmp_path / "texted"
    write_series(clean, 10, {})
    write_series(texted, 3, {1: [(6, 4, NAME, TEXT), (6, 18, NHS, TEXT)]}, seed=182)
    device = _trusted_device(sqlite_site, clean)
    import_paths(sqlite_site, sorted(clean.glob("*.dcm")))
    released = [o.id for o in _objects(sqlite_site) if o.status == "released"]
    assert len(released) == 10
    reset_sampling()  # a new worker: no clean sample read here
    import_paths(sqlite_site, sorted(texted.glob("*.dcm")))
    [revoked] = gate_services(sqlite_site.root).registry.revocations(device)
    assert revoked.cause.endswith(f": 10, {describe_objects(released)}")
    assert {o.status for o in _objects(sqlite_site) if o.id not in released} == {"quarantined"}
