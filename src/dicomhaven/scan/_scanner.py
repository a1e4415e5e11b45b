"""The residual-PII scanner: every byte of a file outside the pixels, judged by rules.

It reads a Part-10 file with its own element walker (``_elements``; pydicom when the walker
declines a file), never through the de-identifier's byte path or its profiles, and looks at
the 128-byte preamble, the file meta, every data element, every sequence item at any depth,
private elements of any VR, and the text hidden in binary values of any length (runs of
ASCII or UTF-16 characters, found in one regular-expression pass). Pixel data is read only
when OCR is asked for, and only for images whose header says they may carry burned-in
text, or that the pixel stage sampled and read in this process. ``2.25.`` UIDs are checked against the project keys when the caller gives a
``made_uid`` check (a site's keys); without one they are reported as unverified.
"""

from __future__ import annotations

import functools
import re
import struct
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from dicomhaven.scan._detect import (
    Detector,
    Hit,
    KnownIdentifiers,
    detect_known,
    detect_text,
    value_shape,
)
from dicomhaven.scan._elements import RawElement, Unreadable, keyword, raw_elements
from dicomhaven.scan._rules import Action, Candidate, RuleSet

__all__ = ["Finding", "ScanResult", "Scanner"]

_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN", "AE", "UR"})
_DATE_VRS = frozenset({"DA", "DT", "TM", "CS", "AS", "IS", "DS"})  # the leak check only
_BINARY_VRS = frozenset({"OB", "OW", "UN", "OD", "OF", "OL", "OV"})
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_PSEUDONYM = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{12}")
_DEFER = 256 * 1024  # values larger than this are read only if needed (pixel data)
#: Runs of text in binary values: the detectors' patterns need at least this many
#: characters; the leak check alone goes down to the patient's shortest value (floor 3).
_RUN, _MIN_RUN = 6, 3
#: File meta elements that say where the file came from or went: Source, Sending and
#: Receiving Presentation Address, and the RTV (real-time video) elements.
_NETWORK_META = frozenset({0x00020026, 0x00020027, 0x00020028, *range(0x00020031, 0x00020039)})
_IMPLEMENTATION_UID, _IMPLEMENTATION_NAME = 0x00020012, 0x00020013
#: Implementation names that say only "dicomhaven" (or the library it writes with): an
#: original's Implementation Class UID or Version Name names the sender's software.
_OUR_IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498."  # pydicom's root (PYDICOM_ROOT_UID)
_OUR_IMPLEMENTATION_NAME = "DICOMHAVEN"
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")


@dataclass(frozen=True)
class Finding:
    """One thing the scanner found. Holds the value's shape, never the value."""

    detector: Detector
    tag_path: str
    path_pattern: str
    keyword: str
    vr: str
    shape: str
    action: Action
    rule: str

    def as_dict(self) -> dict[str, str]:
        return {
            "detector": self.detector.value,
            "tag_path": self.tag_path,
            "keyword": self.keyword,
            "vr": self.vr,
            "shape": self.shape,
            "action": self.action.value,
            "rule": self.rule,
        }


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    #: What ignore rules suppressed, kept so that every rule can be traced to what it hid.
    suppressions: list[Finding] = field(default_factory=list)
    ocr_read: bool = False
    error: str | None = None

    @property
    def suppressed(self) -> Counter[str]:
        """Suppressions by rule id."""
        return Counter(f.rule for f in self.suppressions)

    @property
    def failed(self) -> bool:
        return self.error is not None or any(f.action is Action.FAIL for f in self.findings)

    @property
    def clean(self) -> bool:
        return not self.failed

    def reasons(self, limit: int = 3) -> str:
        """Why the scan failed, by rule and tag (no value), for the ledger: the same words
        for every object with the same failures, so a data manager sees each kind of hold
        once however many objects share it (the counts are in the findings)."""
        if self.error:
            return self.error
        failing = sorted(
            {f"{f.rule} at {f.keyword or f.path_pattern}" for f in self.findings
             if f.action is Action.FAIL}
        )  # fmt: skip
        more = len(failing) - limit
        return "; ".join(failing[:limit]) + (f"; and {more} more" if more > 0 else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "error": self.error,
            "findings": [f.as_dict() for f in self.findings],
            "suppressed": dict(self.suppressed),
            "ocr_read": self.ocr_read,
        }


@dataclass
class Scanner:
    """Scan data sets with one rule set; optional OCR for risky images."""

    rules: RuleSet
    ocr: bool = False
    #: Where a file's own patient values come from when the caller gives none: the vault,
    #: asked by the pseudonym the file carries.
    known_for: Callable[[str], KnownIdentifiers] | None = None
    #: Whether a ``2.25.`` UID was made by one of the site's project keys; None (no keys):
    #: such UIDs cannot be verified and are reported once per file as unverified.
    made_uid: Callable[[str], bool] | None = None
    #: The site's hospital-number shapes (:func:`local_number_pattern`), or None.
    local_numbers: re.Pattern[str] | None = None
    _ocr_engine: Any = field(default=None, repr=False)

    def scan_file(
        self,
        path: Path,
        known: KnownIdentifiers | None = None,
        *,
        pseudonym: str | None = None,
        device: str = "",
    ) -> ScanResult:
        try:
            data = path.read_bytes()
            elements = list(raw_elements(data))
        except (OSError, Unreadable):
            return self._scan_with_pydicom(path, known, pseudonym=pseudonym, device=device)
        top = {e.tag: e for e in elements if not e.prefix}
        if 0x00080016 not in top and 0x00080018 not in top:
            return ScanResult(error="not readable as DICOM (no SOP Class or Instance UID)")
        modality = _ascii(top[0x00080060].value) if 0x00080060 in top else ""
        patient_id = _ascii(top[0x00100020].value) if 0x00100020 in top else ""
        walk = self._walk(known, pseudonym, patient_id, modality, device)
        walk.preamble(data[:128])
        for element in elements:
            pixels = element.tag in _PIXEL_TAGS  # OCR's job: not searched for runs of text
            walk.visit(
                element.path,
                element.tag,
                element.vr,
                keyword(element.tag),
                [] if pixels else _values(element, walk.min_run),
                present=bool(element.value),
            )
        if self.ocr and 0x7FE00010 in top:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._read_pixels(pydicom.dcmread(path, force=True), walk, walk.result)
        return walk.result

    def _scan_with_pydicom(
        self, path: Path, known: KnownIdentifiers | None, *, pseudonym: str | None, device: str
    ) -> ScanResult:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # odd values are judged below, not warned of
                dataset = pydicom.dcmread(path, force=True, defer_size=_DEFER)
                identified = "SOPClassUID" in dataset or "SOPInstanceUID" in dataset
        except Exception as exc:
            return ScanResult(error=f"not readable as DICOM ({type(exc).__name__})")
        if not identified:
            return ScanResult(error="not readable as DICOM (no SOP Class or Instance UID)")
        return self.scan(dataset, known, pseudonym=pseudonym, device=device)

    def _walk(
        self,
        known: KnownIdentifiers | None,
        pseudonym: str | None,
        patient_id: str,
        modality: str,
        device: str,
    ) -> _Walk:
        if pseudonym is None:
            pseudonym = patient_id if _PSEUDONYM.fullmatch(patient_id) else None
        if known is None and pseudonym is not None and self.known_for is not None:
            known = self.known_for(pseudonym)
        min_run = max(_MIN_RUN, min(_RUN, known.shortest)) if known else _RUN
        return _Walk(
            self.rules, ScanResult(), known, pseudonym, modality, device, self.made_uid,
            min_run, self.local_numbers, _shared=_hits_for(known, self.local_numbers),
        )  # fmt: skip

    def scan(
        self,
        dataset: Dataset,
        known: KnownIdentifiers | None = None,
        *,
        pseudonym: str | None = None,
        device: str = "",
    ) -> ScanResult:
        modality = str(dataset.get("Modality", "") or "")
        patient_id = str(dataset.get("PatientID", "") or "")
        walk = self._walk(known, pseudonym, patient_id, modality, device)
        result = walk.result
        meta = getattr(dataset, "file_meta", None)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # odd values are judged, not warned of
                preamble = getattr(dataset, "preamble", None)
                if isinstance(preamble, bytes):
                    walk.preamble(preamble)
                if meta is not None:
                    walk.dataset(meta, "")
                walk.dataset(dataset, "")
        except Exception as exc:  # a value pydicom cannot decode: the file is not checked
            result.error = f"an element could not be read ({type(exc).__name__})"
        if self.ocr and "PixelData" in dataset:
            self._read_pixels(dataset, walk, result)
        return result

    def _read_pixels(self, dataset: Dataset, walk: _Walk, result: ScanResult) -> None:
        from dicomhaven.pixels._clean import _frames_to_read, _read
        from dicomhaven.pixels._sampling import was_sampled
        from dicomhaven.pixels._triage import triage

        if not triage(dataset).needs_reading and not was_sampled(dataset):
            return  # a low-risk image the pixel stage did not sample either
        if self._ocr_engine is None:
            from dicomhaven.pixels._ocr import RapidOcrEngine

            self._ocr_engine = RapidOcrEngine()
        try:
            frames = _frames_to_read(int(dataset.get("NumberOfFrames", 1) or 1), 3)
            words = _read(dataset, self._ocr_engine, frames)
        except Exception as exc:
            result.error = f"pixel data could not be read for OCR ({type(exc).__name__})"
            return
        result.ocr_read = True
        text = " ".join(w.text for w in words)
        walk.text_hits(text, "(7FE0,0010)", "PixelData", "OB")  # words read in the pixels


@dataclass
class _Walk:
    rules: RuleSet
    result: ScanResult
    known: KnownIdentifiers | None
    pseudonym: str | None
    modality: str
    device: str
    made_uid: Callable[[str], bool] | None = None
    min_run: int = _RUN  # binary values are searched in runs of text this long or longer
    local_numbers: re.Pattern[str] | None = None  # the site's hospital-number shapes
    #: Detector hits by (text, names searched, leak check only): reports repeat their values
    #: thousands of times; short values, the patient's other files too (``_hits_for``).
    _hits: dict[tuple[str, bool, bool], list[Hit]] = field(default_factory=dict)
    _shared: dict[tuple[str, bool, bool], list[Hit]] = field(default_factory=dict)
    _unverified: bool = False  # an unverified 2.25 UID was reported (once per file)
    _short: tuple[str, ...] | None = None  # the patient's values shorter than a long run

    def preamble(self, data: bytes) -> None:
        """The 128 bytes before ``DICM``: zeros, or a TIFF header in a dual-format file;
        anything else is reported, and text in it is judged like a private binary value."""
        if not data.strip(b"\x00"):
            return
        if not data.startswith(_TIFF_HEADERS):
            self.decide(Detector.PREAMBLE, "preamble", "Preamble", "OB", "")
        seen: set[Detector] = set()
        for run in _runs(data, self.min_run):
            self.binary_text(run, "preamble", "Preamble", "OB", full=True, seen=seen)

    def dataset(self, dataset: Dataset, prefix: str) -> None:
        for element in dataset:
            self.element(element, prefix)

    def element(self, element: DataElement, prefix: str) -> None:
        tag = int(element.tag)
        path = prefix + f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        vr = str(element.VR)
        if vr == "SQ":
            for i, item in enumerate(element.value or ()):
                self.dataset(item, f"{path}[{i}]/")
            return
        if tag in _PIXEL_TAGS:
            return
        value = element.value
        present = value is not None and value != "" and value != b""
        self.visit(path, tag, vr, element.keyword or "", list(_texts(element, self.min_run)), present=present)  # fmt: skip

    def visit(
        self, path: str, tag: int, vr: str, keyword: str, values: list[str], *, present: bool
    ) -> None:
        """Judge one element: ``values`` are its text values (for a binary value or a
        private number, the runs of text found in its bytes); ``present``: it has a value."""
        group = tag >> 16
        private = bool(group % 2) and group > 0x0008
        if private and (tag & 0xFFFF) >= 0x1000:
            self.decide(Detector.PRIVATE_ELEMENT, path, keyword, vr, "")
        if (0x6000 <= group <= 0x601E and (tag & 0xFFFF) == 0x3000) or 0x5000 <= group <= 0x501E:
            self.decide(Detector.OVERLAY, path, keyword, vr, "")
            return
        if tag in _PIXEL_TAGS:
            return
        if present and not private and (tag in _NETWORK_META or vr in ("UR", "AE")):
            self.decide(Detector.NETWORK_ATTRIBUTE, path, keyword, vr, values[0] if values else "")
        if tag in (_IMPLEMENTATION_UID, _IMPLEMENTATION_NAME) and values:
            ours = (
                values[0].startswith(_OUR_IMPLEMENTATION_UID)
                if tag == _IMPLEMENTATION_UID
                else values[0].upper().startswith(_OUR_IMPLEMENTATION_NAME)
            )
            if not ours:
                self.decide(Detector.IMPLEMENTATION, path, keyword, vr, values[0])
        if keyword in self.rules.watch and any(v.strip() for v in values):
            first = next(v for v in values if v.strip())
            self.decide(Detector.IDENTIFYING_ATTRIBUTE, path, keyword, vr, first)
        uid_like = (
            (vr in _UID_LIKELY or private) and values and all(map(_UID_FORM.fullmatch, values))
        )
        if vr == "UI" or uid_like:
            for value in values:
                if value:
                    self.uid(value, path, keyword, vr)
            return
        binary = vr in _BINARY_VRS or (private and vr not in _STRING_VRS)
        seen: set[Detector] = set()  # a binary value: one finding per detector, all runs
        for value in values:
            if not value.strip() or value == self.pseudonym or _PSEUDONYM.fullmatch(value):
                continue  # a pseudonym (twelve consonants) names no one
            if vr == "PN":
                self.decide(Detector.NAME_ELEMENT, path, keyword, vr, value)
            if binary:
                # A standard binary value (a lookup table, a waveform) is numbers that may
                # look like a phone number; only the patient's own values are searched.
                self.binary_text(value, path, keyword, vr, full=private or vr == "UN", seen=seen)
            elif vr in _TEXT_VRS or private:
                # A private value of any VR is searched like text (a kept safe-private
                # element too: being safe lowers only the private-element finding).
                self.text_hits(value, path, keyword, vr, names=not (vr == "CS" and not private))
            elif vr in _DATE_VRS and self.known:
                self.text_hits(value, path, keyword, vr, only_known=True, names=False)

    def uid(self, value: str, path: str, keyword: str, vr: str) -> None:
        """A UID that the de-identifier did not make links the copy to its original."""
        if value.startswith("2.25."):
            if self.made_uid is None:
                if not self._unverified:  # without keys, once per file: it is not a leak
                    self._unverified = True
                    self.decide(Detector.UNVERIFIED_UID, path, keyword, vr, value)
                return
            if self.made_uid(value):
                return
        elif _registered(value, keyword):
            return
        self.decide(Detector.ORIGINAL_UID, path, keyword, vr, value)

    def binary_text(
        self, run: str, path: str, keyword: str, vr: str, *, full: bool, seen: set[Detector]
    ) -> None:
        """A run of text from a binary value: every detector when ``full`` and the run is
        long enough for their patterns, else the leak check alone. A short run can hold
        only a short name part or number: most are passed over by a substring test."""
        if full and len(run) >= _RUN:
            self.text_hits(run, path, keyword, vr, seen=seen)
        elif self.known and (len(run) >= _RUN or self._could_leak(run)):
            self.text_hits(run, path, keyword, vr, only_known=True, seen=seen)

    def _could_leak(self, run: str) -> bool:
        if self._short is None:
            assert self.known
            self._short = self.known.short_values(_RUN)
        upper = run.upper()
        return any(value in upper for value in self._short)

    def text_hits(
        self,
        text: str,
        path: str,
        keyword: str,
        vr: str,
        *,
        only_known: bool = False,
        names: bool = True,
        seen: set[Detector] | None = None,
    ) -> None:
        key = (text, names, only_known)
        table = self._shared if len(text) <= _SHARED_TEXT else self._hits
        hits = table.get(key)
        if hits is None:
            if only_known:
                assert self.known
                hits = detect_known(text, self.known, known_names=names)
            else:
                hits = detect_text(
                    text, self.known, known_names=names, local_numbers=self.local_numbers
                )
            table[key] = hits
        seen = set() if seen is None else seen
        for hit in hits:
            if hit.detector in seen:  # one finding per detector per value
                continue
            seen.add(hit.detector)
            self.decide(hit.detector, path, keyword, vr, text[hit.start : hit.end])

    def decide(self, detector: Detector, path: str, keyword: str, vr: str, value: str) -> None:
        candidate = Candidate(detector, path, keyword, vr, value, self.modality, self.device)
        action, rule = self.rules.decide(candidate)
        kept = self.result.suppressions if action is Action.IGNORE else self.result.findings
        kept.append(
            Finding(
                detector=detector,
                tag_path=path,
                path_pattern=candidate.path_pattern,
                keyword=keyword,
                vr=vr,
                shape=value_shape(value),
                action=action,
                rule=rule,
            )
        )


#: Detector hits by what they depend on besides the text (the patient's values, the site's
#: number shapes): the files of one patient repeat most of their values, so each is
#: searched once per patient, not once per file. Bounded: emptied when full.
_HITS: dict[tuple[KnownIdentifiers | None, re.Pattern[str] | None], dict[Any, list[Hit]]] = {}
_HIT_PATIENTS = 16
_HIT_TEXTS = 20_000
_SHARED_TEXT = 256  # characters: a longer text (a report) is remembered for its file only


def _hits_for(
    known: KnownIdentifiers | None, local_numbers: re.Pattern[str] | None
) -> dict[Any, list[Hit]]:
    key = (known, local_numbers)
    hits = _HITS.get(key)
    if hits is None or len(hits) >= _HIT_TEXTS:
        if hits is None and len(_HITS) >= _HIT_PATIENTS:
            _HITS.clear()
        hits = _HITS[key] = {}
    return hits


def _texts(element: DataElement, min_run: int) -> Iterator[str]:
    value = element.value
    if value is None:
        return
    if isinstance(value, bytes | bytearray):
        yield from _runs(bytes(value), min_run)
        return
    if element.tag.is_private and element.VR in _NUMBER_FORMATS:
        # pydicom made numbers of a private value's bytes: search the bytes, as the
        # element walker does (a device may write text into a private "US" element).
        yield from _runs(_number_bytes(value, _NUMBER_FORMATS[element.VR]), min_run)
        return
    if isinstance(value, MultiValue | list | tuple):
        yield from (str(item) for item in value if item is not None)
        return
    yield str(value)


#: A UID in an element whose VR the reader may not know (private, UN) is judged as a UID.
_UID_FORM = re.compile(r"[0-2](\.(0|[1-9][0-9]*)){3,}")
_UID_LIKELY = frozenset({"UN", "OB"})
_SINGLE_VALUED = frozenset({"LT", "ST", "UT", "UR"})
_STRING_VRS = _TEXT_VRS | _DATE_VRS | {"UI"}
_DELIMITERS = {0x5C}


_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}  # fmt: skip


def _number_bytes(value: object, code: str) -> bytes:
    """The little-endian bytes of a number or numbers (what a private value was written as)."""
    numbers = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    try:
        return struct.pack(f"<{len(numbers)}{code}", *numbers)
    except (struct.error, TypeError):
        return b""


def _ascii(value: bytes) -> str:
    return value.decode("ascii", "replace").strip("\x00 ")


@functools.lru_cache(maxsize=64)
def _encodings(charset: tuple[str, ...]) -> list[str]:
    return convert_encodings(list(charset) or None)


def _values(element: RawElement, min_run: int) -> list[str]:
    """An element's text values from its raw bytes (for binary VRs and private numbers, the
    text runs in them)."""
    value, vr = element.value, element.vr
    if vr in _BINARY_VRS or (element.tag >> 16 & 1 and vr not in _STRING_VRS):
        return list(_runs(value, min_run))
    if vr not in _STRING_VRS or not value:
        return []
    if vr in _TEXT_VRS and not value.isascii():
        text = decode_bytes(value, _encodings(element.charset), _DELIMITERS)
    else:
        text = value.decode("latin-1")
    text = text.rstrip("\x00 ")
    return [text] if vr in _SINGLE_VALUED else [v.strip(" \x00") for v in text.split("\\")]


@functools.lru_cache(maxsize=8)
def _run_pattern(min_run: int) -> re.Pattern[bytes]:
    """Runs of UTF-16 (little-endian) or ASCII text, in one pass over the bytes."""
    return re.compile(rb"(?:[\x20-\x7e]\x00){%d,}|[\x20-\x7e]{%d,}" % (min_run, min_run))


def _runs(data: bytes, min_run: int = _RUN) -> Iterator[str]:
    """Every run of text in a binary value, however long the value: one regular-expression
    pass (linear in the value's length)."""
    for m in _run_pattern(min_run).finditer(data):
        run = m.group(0)
        text = (run.decode("utf-16-le") if run[1:2] == b"\x00" else run.decode("ascii")).strip()
        if text:
            yield text


def _registered(value: str, keyword: str) -> bool:
    """A UID that names no instance: a class, transfer syntax or other registered UID, or
    one under the DICOM root."""
    if keyword.endswith("ClassUID") or keyword == "TransferSyntaxUID":
        return True
    uid = UID(value)
    return value.startswith("1.2.840.10008.") or uid.name != value
