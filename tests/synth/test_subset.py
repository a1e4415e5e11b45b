"""The smaller exports cut from the shared synthetic site: what they hold and what they keep."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomhaven.synth import FileKind
from tests.synth.generated import GeneratedSite, subset


def test_a_subset_holds_exactly_the_chosen_files_byte_for_byte(
    synth_site: GeneratedSite, tmp_path: Path
) -> None:
    chosen = {f.path for f in synth_site.key.files if f.patient == 1}
    part = subset(synth_site, tmp_path, lambda f: f.path in chosen)
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.dcm")}
    assert written == chosen == {f.path for f in part.key.files}
    for path in chosen:
        assert (tmp_path / path).read_bytes() == (synth_site.root / path).read_bytes()
    assert [p.index for p in part.key.patients] == [1]
    assert part.key.plants and all(p.path in chosen for p in part.key.plants)
    assert {p for p in synth_site.key.plants if p.path in chosen} == set(part.key.plants)


def test_a_subset_of_nothing_is_refused(synth_site: GeneratedSite, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="selects no file"):
        subset(synth_site, tmp_path, lambda f: False)


def test_the_patient_subset_has_several_whole_patients_and_no_ultrasound(
    synth_site: GeneratedSite, synth_patients: GeneratedSite
) -> None:
    indexes = {p.index for p in synth_patients.key.patients}
    assert len(indexes) >= 3
    assert {f.path for f in synth_patients.key.files} == {
        f.path for f in synth_site.key.files if f.patient in indexes
    }
    assert not {FileKind.US, FileKind.US_CINE} & {f.kind for f in synth_patients.key.files}


def test_the_kind_subset_has_one_file_of_each_kind(synth_kinds: GeneratedSite) -> None:
    kinds = [f.kind for f in synth_kinds.key.files]
    assert sorted(kinds) == sorted(FileKind)
