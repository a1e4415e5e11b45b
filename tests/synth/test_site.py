"""The generated site as a whole: determinism, refusal, progress, layout and counts."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from dicomhaven.errors import ConfigError
from dicomhaven.identity import is_valid_chi_number, is_valid_nhs_number
from dicomhaven.synth import AnswerKey, FileKind, generate_site
from tests.synth.generated import PATIENTS, SEED, GeneratedSite

_PATH = re.compile(r"^export/P\d{4}/ST\d{2}/SE\d{3}/IM\d{4}\.dcm$")


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_identical_bytes_and_key(tmp_path: Path) -> None:
    first = generate_site(tmp_path / "a", patients=2, seed=11)
    second = generate_site(tmp_path / "b", patients=2, seed=11)
    assert first == second
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_different_seed_gives_different_patients(tmp_path: Path) -> None:
    first = generate_site(tmp_path / "a", patients=2, seed=11)
    second = generate_site(tmp_path / "b", patients=2, seed=12)
    assert {p.nhs_number for p in first.patients}.isdisjoint(p.nhs_number for p in second.patients)
    assert [p.family_name for p in first.patients] != [p.family_name for p in second.patients]
    assert {f.sop_instance_uid for f in first.files}.isdisjoint(
        f.sop_instance_uid for f in second.files
    )


def test_adding_patients_leaves_earlier_ones_unchanged(
    tmp_path: Path, synth_site: GeneratedSite
) -> None:
    small = generate_site(tmp_path / "small", patients=2, seed=SEED)
    assert small.patients == synth_site.key.patients[:2]
    assert small.files == tuple(f for f in synth_site.key.files if f.patient < 2)
    for record in small.files:
        assert (tmp_path / "small" / record.path).read_bytes() == (
            synth_site.root / record.path
        ).read_bytes()


def test_key_on_disk_is_the_key_returned(synth_site: GeneratedSite) -> None:
    path = synth_site.root / "answer_key.json"
    assert AnswerKey.load(path) == synth_site.key
    assert path.read_text(encoding="utf-8") == synth_site.key.to_json()


def test_key_header(synth_site: GeneratedSite) -> None:
    text = (synth_site.root / "answer_key.json").read_text(encoding="utf-8")
    document = json.loads(text)
    assert document["generator"] == "dicomhaven.synth"
    assert document["format"] == 1
    assert document["seed"] == SEED
    assert document["full_size"] is False
    assert len(document["patients"]) == PATIENTS


def test_refuses_a_non_empty_export_folder(tmp_path: Path) -> None:
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "old.dcm").write_bytes(b"")
    with pytest.raises(ConfigError, match="not empty"):
        generate_site(tmp_path, patients=1, seed=1)


def test_accepts_an_empty_export_folder(tmp_path: Path) -> None:
    (tmp_path / "export").mkdir()
    key = generate_site(tmp_path, patients=1, seed=1)
    assert key.files


def test_refuses_zero_patients(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        generate_site(tmp_path, patients=0, seed=1)


def test_progress_counts_every_file_once(synth_site: GeneratedSite) -> None:
    total = len(synth_site.key.files)
    assert synth_site.progress == [(done, total) for done in range(1, total + 1)]


def test_files_on_disk_are_exactly_the_files_in_the_key(synth_site: GeneratedSite) -> None:
    on_disk = {
        str(p.relative_to(synth_site.root)) for p in (synth_site.root / "export").rglob("*.dcm")
    }
    assert on_disk == {f.path for f in synth_site.key.files}
    assert len(synth_site.key.files) == len(on_disk)


def test_paths_are_built_from_indexes_only(synth_site: GeneratedSite) -> None:
    for record in synth_site.key.files:
        assert _PATH.match(record.path), record.path
        assert record.path.startswith(f"export/P{record.patient:04d}/")


def test_no_identifier_in_any_path(synth_site: GeneratedSite) -> None:
    names = [str(p.relative_to(synth_site.root)).lower() for p in synth_site.root.rglob("*")]
    for patient in synth_site.key.patients:
        identifiers = [
            patient.nhs_number,
            patient.hospital_number,
            patient.family_name,
            *patient.given_names,
            patient.birth_date,
            patient.postcode.replace(" ", ""),
            patient.phone.replace(" ", ""),
            *([patient.chi_number] if patient.chi_number else []),
        ]
        for name in names:
            compact = name.replace(" ", "")
            for identifier in identifiers:
                assert identifier.lower().replace(" ", "") not in compact


def test_patients_have_valid_safe_identifiers(synth_site: GeneratedSite) -> None:
    for patient in synth_site.key.patients:
        assert is_valid_nhs_number(patient.nhs_number)
        assert patient.nhs_number.startswith("999")
        assert re.fullmatch(r"ZZ9\d{7}", patient.hospital_number)
        assert re.fullmatch(r"\d{8}", patient.birth_date)
        assert patient.sex in {"M", "F"}
        assert patient.given_names
        if patient.chi_number is not None:
            assert is_valid_chi_number(patient.chi_number)
            birth = patient.birth_date
            assert patient.chi_number[:6] == birth[6:8] + birth[4:6] + birth[2:4]
            assert int(patient.chi_number[8]) % 2 == (1 if patient.sex == "M" else 0)
    numbers = [p.nhs_number for p in synth_site.key.patients]
    assert len(set(numbers)) == len(numbers)
    families = [p.family_name for p in synth_site.key.patients]
    assert len(set(families)) == len(families)


def test_every_kind_of_file_is_made(synth_site: GeneratedSite) -> None:
    counts = Counter(f.kind for f in synth_site.key.files)
    assert set(counts) == set(FileKind)


def test_study_structure(synth_site: GeneratedSite) -> None:
    by_study: dict[str, list[FileKind]] = {}
    series_per_study: dict[str, set[str]] = {}
    for record in synth_site.key.files:
        by_study.setdefault(record.study_instance_uid, []).append(record.kind)
        series_per_study.setdefault(record.study_instance_uid, set()).add(
            record.series_instance_uid
        )
    for study, kinds in by_study.items():
        counts = Counter(kinds)
        if FileKind.MAMMO in counts:
            assert counts == {FileKind.MAMMO: 4}
            assert len(series_per_study[study]) == 1
        elif FileKind.CT in counts:
            # 8 axial slices, 3 slab averages, one dose screen, one report.
            assert counts == {FileKind.CT: 11, FileKind.DOSE_SCREEN: 1, FileKind.SR: 1}
            assert len(series_per_study[study]) == 4
        else:
            assert set(counts) <= {FileKind.US, FileKind.US_CINE}
            assert 2 <= counts[FileKind.US] <= 4
            assert counts[FileKind.US_CINE] <= 1


def test_files_per_patient_on_average(synth_site: GeneratedSite) -> None:
    assert 6 <= len(synth_site.key.files) / PATIENTS <= 20
