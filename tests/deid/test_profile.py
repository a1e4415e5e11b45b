"""Profiles as data: composition, validation with file:line, and a stable hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomhaven.deid import BUILTIN_PROFILES, Level, Option, load_profile
from dicomhaven.errors import ConfigError


def test_builtin_profiles_compose_from_base() -> None:
    limited = load_profile("limited-access")
    assert limited.chain == ("base.yaml", "limited-access.yaml")
    assert limited.level is Level.LIMITED_ACCESS
    assert Option.RETAIN_DEVICE_IDENTITY in limited.options
    publication = load_profile("publication")
    assert publication.level is Level.PUBLICATION
    assert Option.RETAIN_DEVICE_IDENTITY not in publication.options
    assert Option.RETAIN_INSTITUTION_IDENTITY not in publication.options
    assert limited.sha256 != publication.sha256
    assert load_profile("publication").sha256 == publication.sha256
    assert sorted(p.stem for p in BUILTIN_PROFILES.glob("*.yaml")) == [
        "base",
        "limited-access",
        "publication",
    ]


def test_a_site_profile_extends_a_builtin_one(tmp_path: Path) -> None:
    path = tmp_path / "mammo-project.yaml"
    path.write_text(
        "name: mammo\nextends: publication\noptions: [retain_uids]\nremove: [StudyID]\n"
    )
    profile = load_profile(path)
    assert profile.chain == ("base.yaml", "publication.yaml", "mammo-project.yaml")
    assert Option.RETAIN_UIDS in profile.options and Option.CLEAN_DESCRIPTORS in profile.options
    assert profile.remove == {"StudyID"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("extends: base\nopions: []\n", r"p.yaml:2: unknown key 'opions'"),
        (
            "extends: base\noptions: [retain_everything]\n",
            r"p.yaml:2: unknown option 'retain_everything'",
        ),
        (
            "extends: base\nlevel: secret\n",
            r"p.yaml:2: level must be limited-access or publication",
        ),
        (
            "extends: base\nkeep: [PatientsShoeSize]\n",
            r"p.yaml:2: 'PatientsShoeSize' in 'keep' is not",
        ),
        (
            "extends: base\noptions: [retain_longitudinal_full_dates, retain_longitudinal_modified_dates]\n",
            r"p.yaml:2: .*cannot both be chosen",
        ),
        ("extends: nowhere\n", r"nowhere.yaml not found"),
        ("options: [\n", r"p.yaml:\d+: not valid YAML"),
    ],
)
def test_bad_profiles_are_refused_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_profile(path)


def test_extends_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="makes a loop"):
        load_profile(tmp_path / "a.yaml")
