"""Each file is a well-formed DICOM object of its IOD, and its references resolve."""

from __future__ import annotations

import itertools
import subprocess
from functools import cache
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileDataset
from pydicom.uid import (
    ComprehensiveSRStorage,
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from dicomhaven.synth import FileKind, generate_site
from tests.peers import require_tool
from tests.synth.generated import GeneratedSite

_SOP_CLASS = {
    FileKind.MAMMO: DigitalMammographyXRayImageStorageForPresentation,
    FileKind.CT: CTImageStorage,
    FileKind.US: UltrasoundImageStorage,
    FileKind.US_CINE: UltrasoundMultiFrameImageStorage,
    FileKind.DOSE_SCREEN: SecondaryCaptureImageStorage,
    FileKind.SR: ComprehensiveSRStorage,
}


@cache
def _read(path: Path) -> FileDataset:
    return pydicom.dcmread(path)


def test_files_have_preamble_meta_and_explicit_little_endian(synth_site: GeneratedSite) -> None:
    for record in synth_site.key.files:
        path = synth_site.root / record.path
        with path.open("rb") as handle:
            head = handle.read(132)
        assert head[128:] == b"DICM"
        dataset = _read(path)
        meta = dataset.file_meta
        assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert meta.MediaStorageSOPClassUID == dataset.SOPClassUID == record.sop_class_uid
        assert meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID == record.sop_instance_uid
        assert dataset.SOPClassUID == _SOP_CLASS[record.kind]
        assert dataset.StudyInstanceUID == record.study_instance_uid
        assert dataset.SeriesInstanceUID == record.series_instance_uid
        assert dataset.Modality == record.modality


def test_uids_are_unique_2_25_uids(synth_site: GeneratedSite) -> None:
    instances = [f.sop_instance_uid for f in synth_site.key.files]
    assert len(set(instances)) == len(instances)
    series_to_study: dict[str, str] = {}
    for record in synth_site.key.files:
        for uid in (record.sop_instance_uid, record.series_instance_uid, record.study_instance_uid):
            assert uid.startswith("2.25.") and len(uid) <= 64
            assert pydicom.uid.UID(uid).is_valid
        assert series_to_study.setdefault(
            record.series_instance_uid, record.study_instance_uid
        ) == (record.study_instance_uid)


def test_mammograms_have_four_labelled_views(synth_site: GeneratedSite) -> None:
    views: dict[str, set[tuple[str, str, str]]] = {}
    for record in synth_site.key.files_of_kind(FileKind.MAMMO):
        dataset = _read(synth_site.root / record.path)
        code = dataset.ViewCodeSequence[0]
        assert code.CodingSchemeDesignator == "SCT"
        assert dataset.BodyPartExamined == "BREAST"
        assert dataset.PhotometricInterpretation == "MONOCHROME2"
        assert dataset.BitsAllocated == 16
        assert (dataset.Rows, dataset.Columns) == (512, 416)
        views.setdefault(record.study_instance_uid, set()).add(
            (dataset.ImageLaterality, dataset.ViewPosition, code.CodeValue)
        )
    for found in views.values():
        assert found == {
            ("R", "CC", "399162004"),
            ("L", "CC", "399162004"),
            ("R", "MLO", "399368009"),
            ("L", "MLO", "399368009"),
        }


def test_ct_geometry_is_consistent(synth_site: GeneratedSite) -> None:
    by_series: dict[str, list[FileDataset]] = {}
    for record in synth_site.key.files_of_kind(FileKind.CT):
        by_series.setdefault(record.series_instance_uid, []).append(
            _read(synth_site.root / record.path)
        )
    for slices in by_series.values():
        frames = {s.FrameOfReferenceUID for s in slices}
        assert len(frames) == 1
        for s in slices:
            assert float(s.ImagePositionPatient[2]) == pytest.approx(float(s.SliceLocation))
            assert s.pixel_array.shape == (s.Rows, s.Columns)
        locations = sorted(float(s.SliceLocation) for s in slices)
        steps = {round(b - a, 3) for a, b in itertools.pairwise(locations)}
        assert len(steps) <= 2  # the last slab may be thinner


def _index(synth_site: GeneratedSite) -> dict[str, tuple[str, str]]:
    return {
        f.sop_instance_uid: (f.sop_class_uid, f.series_instance_uid) for f in synth_site.key.files
    }


def test_ct_reformats_reference_their_source_slices(synth_site: GeneratedSite) -> None:
    known = _index(synth_site)
    derived = [
        _read(synth_site.root / f.path)
        for f in synth_site.key.files_of_kind(FileKind.CT)
        if "DERIVED" in _read(synth_site.root / f.path).ImageType
    ]
    assert derived
    for dataset in derived:
        referenced = [dataset.ReferencedImageSequence[0]]
        referenced += list(dataset.SourceImageSequence)
        series = dataset.ReferencedSeriesSequence[0]
        referenced += list(series.ReferencedInstanceSequence)
        for item in referenced:
            sop_class, series_uid = known[item.ReferencedSOPInstanceUID]
            assert sop_class == item.ReferencedSOPClassUID
            assert series_uid == series.SeriesInstanceUID != dataset.SeriesInstanceUID
        assert dataset.FrameOfReferenceUID == _read_series_frame(
            synth_site, series.SeriesInstanceUID
        )


def _read_series_frame(synth_site: GeneratedSite, series_uid: str) -> str:
    record = next(f for f in synth_site.key.files if f.series_instance_uid == series_uid)
    return str(_read(synth_site.root / record.path).FrameOfReferenceUID)


def test_reports_reference_a_ct_image_of_their_study(synth_site: GeneratedSite) -> None:
    known = _index(synth_site)
    for record in synth_site.key.files_of_kind(FileKind.SR):
        dataset = _read(synth_site.root / record.path)
        evidence = dataset.CurrentRequestedProcedureEvidenceSequence[0]
        assert evidence.StudyInstanceUID == record.study_instance_uid
        series = evidence.ReferencedSeriesSequence[0]
        uid = series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert known[uid] == (CTImageStorage, series.SeriesInstanceUID)
        image_items = [
            item
            for container in dataset.ContentSequence
            for child in container.get("ContentSequence", [])
            for item in child.get("ContentSequence", [])
            if item.ValueType == "IMAGE"
        ]
        assert [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in image_items] == [uid]


def test_cine_has_eight_frames(synth_site: GeneratedSite) -> None:
    for record in synth_site.key.files_of_kind(FileKind.US_CINE):
        dataset = _read(synth_site.root / record.path)
        assert int(dataset.NumberOfFrames) == 8
        assert dataset.pixel_array.shape[0] == 8


def _dciodvfy_errors(tool: str, path: Path) -> list[str]:
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    return [line for line in output.splitlines() if "Error -" in line or line.startswith("Error")]


@pytest.mark.integration
def test_dciodvfy_finds_no_errors_in_any_kind(synth_site: GeneratedSite) -> None:
    tool = require_tool("dciodvfy")
    first: dict[FileKind, str] = {}
    for record in synth_site.key.files:
        first.setdefault(record.kind, record.path)
    # Also the slab reformats (references) and an image with an overlay.
    derived = [f.path for f in synth_site.key.files_of_kind(FileKind.CT) if "/SE002/" in f.path]
    overlaid = {p.path for p in synth_site.key.plants if p.category.value == "overlay"}
    paths = sorted({*first.values(), derived[0], *overlaid})
    for path in paths:
        assert _dciodvfy_errors(tool, synth_site.root / path) == [], path


_STUDY_LEVEL = (
    "StudyDescription",
    "AdditionalPatientHistory",
    "PatientComments",
    "AccessionNumber",
    "PatientName",
    "PatientAddress",
    "ReferringPhysicianName",
    "InstitutionName",
)


def test_study_level_attributes_agree_across_a_study(synth_site: GeneratedSite) -> None:
    """Devices copy the same worklist entry into every object of a study."""
    seen: dict[tuple[str, str], str] = {}
    for record in synth_site.key.files:
        dataset = _read(synth_site.root / record.path)
        for keyword in _STUDY_LEVEL:
            if keyword in dataset:
                value = str(dataset[keyword].value)
                key = (record.study_instance_uid, keyword)
                assert seen.setdefault(key, value) == value, (record.path, keyword)


@pytest.mark.integration
def test_full_size_mammograms_are_real_size(tmp_path: Path) -> None:
    key = generate_site(tmp_path, patients=1, seed=3, full_size=True)
    assert key.full_size
    record = key.files_of_kind(FileKind.MAMMO)[0]
    dataset = pydicom.dcmread(tmp_path / record.path, stop_before_pixels=True)
    assert (dataset.Rows, dataset.Columns, dataset.BitsAllocated) == (4096, 3328, 16)
    assert (tmp_path / record.path).stat().st_size > 27_000_000
