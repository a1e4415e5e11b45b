"""Every readable real test file (pydicom's, pydicom-data, deid-data, OpenREM): de-identified
without error, no original UID or patient name left, no private element left, nothing the
residual-PII scanner fails, and (with dciodvfy) no new validation error."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicomhaven.deid import deidentify, load_profile
from dicomhaven.identity import ProjectKeys
from dicomhaven.intake import ParsedObject, parse_object
from dicomhaven.scan import Scanner, load_rules
from tests.corpora import deid_data_folder, pydicom_data_folder, pydicom_file
from tests.deid.conftest import context
from tests.deid.test_dciodvfy import ALLOWED, errors
from tests.peers import shared_data

PROFILE = load_profile("publication")
KEYS = ProjectKeys("corpus", bytes(32))


def _pydicom_round_trips(path: Path) -> bool:
    """Whether pydicom itself can read and write the file unchanged (SC_rgb_jpeg.dcm, say,
    declares explicit VR, is implicit, and pydicom cannot write it back)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydicom.dcmread(path, force=True).save_as(io.BytesIO())
    except Exception:
        return False
    return True


def corpus() -> list[Path]:
    folders = [pydicom_file("CT_small.dcm").parent, pydicom_data_folder(), deid_data_folder()]
    files = [p for folder in folders for p in sorted(folder.rglob("*.dcm"))]
    return [
        p
        for p in files
        if isinstance(parse_object(p.read_bytes()), ParsedObject) and _pydicom_round_trips(p)
    ]


def deidentified(path: Path) -> tuple[pydicom.Dataset, bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # test files with deliberately odd values
        source = pydicom.dcmread(path, force=True)
        ds = pydicom.dcmread(path, force=True)
        deidentify(ds, PROFILE, context(KEYS, "BCDFGHJKLMNP"))
        buffer = io.BytesIO()
        ds.save_as(buffer)
    return source, buffer.getvalue()


def originals(source: pydicom.Dataset) -> set[str]:
    found = set()
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        value = str(source.get(keyword, ""))
        if len(value) > 12:
            found.add(value)
    return found


def test_every_readable_corpus_file() -> None:
    """... and the residual-PII scanner, at the publication level, fails none of them."""
    files = corpus() + sorted(shared_data("openrem").glob("*.dcm"))
    assert len(files) > 180
    scanner = Scanner(load_rules([], level="publication"))
    problems = []
    for path in files:
        try:
            source, data = deidentified(path)
        except Exception as exc:  # a crash on any real file is a bug: report them all
            problems.append((path.name, f"raised {type(exc).__name__}"))
            continue
        for uid in originals(source):
            if uid.encode() in data:
                problems.append((path.name, f"original UID kept: {uid}"))
        again = pydicom.dcmread(io.BytesIO(data), force=True)
        if any(e.tag.is_private for e in again.iterall()):
            problems.append((path.name, "private element kept"))
        name = str(source.get("PatientName", ""))
        if len(name) >= 4 and str(again.get("PatientName", "")) == name:
            problems.append((path.name, "patient name kept"))
        scan = scanner.scan(again)
        if scan.failed:
            problems.append((path.name, f"scan failed: {scan.reasons()}"))
    assert problems == []


@pytest.mark.integration
def test_dciodvfy_finds_no_new_error_in_openrem_and_pydicom_files(tmp_path: Path) -> None:
    """Compared with the original and with the same file read and written by plain pydicom,
    so only what de-identification changes is judged (pydicom's own writing changes a few
    files, and a deflated original, written inflated, shows dciodvfy more of itself)."""
    files = sorted(shared_data("openrem").glob("*.dcm")) + corpus()
    new_errors = {}
    for i, path in enumerate(files):
        plain = tmp_path / f"plain{i}.dcm"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            original = pydicom.dcmread(path, force=True)
            meta = getattr(original, "file_meta", None)
            if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
                meta.TransferSyntaxUID = ExplicitVRLittleEndian  # as de-identification writes it
            original.save_as(plain)
        _, data = deidentified(path)
        out = tmp_path / f"{i}.dcm"
        out.write_bytes(data)
        # Error for error (by kind and attribute, values and item numbers aside): every
        # error of the output is one the original, or pydicom's own copy, had as often.
        before = errors(plain) | errors(path)
        added = sorted(e for e in errors(out) - before if e not in ALLOWED)
        if added:
            new_errors[path.name] = sorted(added)[:3]
    assert new_errors == {}


@pytest.mark.integration
def test_non_ascii_openrem_text_survives_decoded_and_re_encoded() -> None:
    """OpenREM's reports in Latin-1 and UTF-8 (µGy, names of places and people): what is kept
    reads back as the same characters, and nothing turns into mojibake."""
    files = [
        path
        for path in sorted(shared_data("openrem").glob("*.dcm"))
        if any(
            isinstance(e.value, str) and any(ord(c) > 127 for c in e.value)
            for e in pydicom.dcmread(path, force=True).iterall()
        )
    ]
    assert len(files) >= 8
    for path in files:
        source, data = deidentified(path)
        again = pydicom.dcmread(io.BytesIO(data), force=True)
        assert again.get("SpecificCharacterSet") == source.get("SpecificCharacterSet"), path.name
        before = {str(e.value) for e in source.iterall() if isinstance(e.value, str)}
        # One Siemens report holds UTF-8 bytes under a Latin-1 declaration: its mojibake is
        # the input's, not ours.
        marks = [m for m in ("\ufffd", "Ã") if not any(m in v for v in before)]
        for element in again.iterall():
            value = element.value
            if isinstance(value, str) and any(ord(c) > 127 for c in value):
                assert not any(m in value for m in marks), (path.name, element.keyword)
                if element.keyword in ("CodeMeaning", "Manufacturer", "ManufacturerModelName"):
                    assert value in before, (path.name, element.keyword)
