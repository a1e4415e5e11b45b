"""What ``dicomhaven deid`` stopped doing for speed (issue 19) changes no answer.

Each shortcut has its invariant here: a token hash that is cheap to check still refuses
a wrong token and still accepts the argon2 hashes of earlier versions; a schema at its head
is not migrated but one behind it is; answers remembered across files (decisions, changed
elements, the scanner's hits) give the bytes and findings worked out afresh; a copy marked
as not checked on its bytes is the copy pydicom would have written; the vault and the
consent register are asked once per patient of a run, and a withdrawal recorded between two
runs applies to the second. And a copy that cannot be written as its header describes it
(native pixels under a compressed transfer syntax) ends skipped, not the run.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from argon2 import PasswordHasher
from pydicom.uid import JPEGBaseline8Bit
from sqlalchemy import select, text, update

import dicomhaven.deid._stream_memo as memo
import dicomhaven.scan._scanner as scanner_module
from dicomhaven.access import NotAuthenticated, Role, Users
from dicomhaven.catalogue import (
    CATALOGUE,
    Schema,
    User,
    current_revision,
    head_revision,
    make_engine,
    make_sessionmaker,
    migrate,
)
from dicomhaven.catalogue._engine import _alembic_config, scripted_head
from dicomhaven.cli import main
from dicomhaven.deid import load_profile
from dicomhaven.deid._engine import DeidContext, mark_pixels_not_checked, write_dataset
from dicomhaven.deid._safe_path import CONSENT_WITHDRAWN, read_dataset
from dicomhaven.deid._stage import unchecked_content
from dicomhaven.deid._stream import rewrite_bytes
from dicomhaven.identity import ProjectKeys
from dicomhaven.identity._vault_models import VAULT
from dicomhaven.scan._detect import KnownIdentifiers
from dicomhaven.scan._rules import load_rules
from dicomhaven.scan._scanner import Scanner
from dicomhaven.site import Site
from dicomhaven.synth import FileKind
from tests.synth.generated import GeneratedSite
from tests.test_deid_safe_path import deid, pick, tokens, withdraw, written

# -- tokens ------------------------------------------------------------------------------


def stored_hash(site: Site, name: str) -> str:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return session.scalars(select(User.token_hash).where(User.name == name)).one()


def test_a_new_token_is_kept_as_a_sha256_hash_and_only_it_verifies(sqlite_site: Site) -> None:
    users = Users(make_engine(sqlite_site.database_url))
    token = users.add("dana", Role.DATA_MANAGER, by="(test)")
    secret = token.partition(".")[2]
    stored = stored_hash(sqlite_site, "dana")
    assert stored.startswith("sha256:") and len(stored) == len("sha256:") + 64
    assert secret not in stored
    assert users.authenticate(token).name == "dana"
    for wrong in (token[:-1] + ("A" if token[-1] != "A" else "B"), "dana.", "dana"):
        with pytest.raises(NotAuthenticated):
            users.authenticate(wrong)


def test_an_argon2_hash_of_an_earlier_version_verifies_once_then_becomes_sha256(
    sqlite_site: Site,
) -> None:
    users = Users(make_engine(sqlite_site.database_url))
    token = users.add("dana", Role.DATA_MANAGER, by="(test)")
    old = PasswordHasher().hash(token.partition(".")[2])
    with make_sessionmaker(make_engine(sqlite_site.database_url)).begin() as session:
        session.execute(update(User).where(User.name == "dana").values(token_hash=old))
    with pytest.raises(NotAuthenticated):  # a wrong secret leaves the old hash alone
        users.authenticate("dana.not-the-secret")
    assert stored_hash(sqlite_site, "dana") == old
    assert users.authenticate(token).name == "dana"
    assert stored_hash(sqlite_site, "dana").startswith("sha256:")
    assert users.authenticate(token).name == "dana"


# -- schema versions ---------------------------------------------------------------------


@pytest.mark.parametrize("schema", [CATALOGUE, VAULT], ids=["catalogue", "vault"])
def test_the_head_read_from_the_scripts_is_alembics(schema: Schema) -> None:
    assert scripted_head(schema.migrations) == head_revision(schema)


def test_a_schema_at_its_head_is_checked_without_loading_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url)
    probe = (
        "import sys\n"
        "from dicomhaven.catalogue import migrate\n"
        f"migrate({url!r})\n"
        "print('alembic' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_schema_behind_its_head_is_still_migrated(tmp_path: Path) -> None:
    from alembic import command

    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    migrate(engine)
    command.downgrade(_alembic_config(engine, CATALOGUE), "-1")
    behind = current_revision(engine)
    assert behind is not None and behind != head_revision()
    migrate(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:  # the newest revision's tables are back
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


# -- remembered answers ------------------------------------------------------------------


def contexts() -> list[DeidContext]:
    keys = ProjectKeys("p", b"k" * 32)
    return [
        DeidContext(keys, "MASTERAAAAAA", "PSEUDOAAAAAA", ("ZZTEST^Canary", "ZZCANARY0001")),
        DeidContext(keys, "MASTERBBBBBB", "PSEUDOBBBBBB", ("ZZOTHER^Person",)),
        DeidContext(ProjectKeys("q", b"j" * 32), "MASTERAAAAAA", "PSEUDOAAAAAA", ()),
    ]


def forget_everything() -> None:
    for table in (memo._TABLES, memo._MARKS, memo._ENCODED_MARKS, memo._GATHERED, memo._CHANGED):
        table.clear()
    memo._cleaner_of.cache_clear()
    scanner_module._HITS.clear()


def some_files(synth: GeneratedSite, into: Path) -> list[Path]:
    kinds = {
        FileKind.CT: 4,
        FileKind.MAMMO: 1,
        FileKind.SR: 2,
        FileKind.DOSE_SCREEN: 1,
        FileKind.US: 1,
    }
    return pick(synth, into, 0, kinds) + pick(synth, into, 1, {FileKind.CT: 2, FileKind.SR: 1})


def test_remembered_decisions_and_changes_give_the_bytes_worked_out_afresh(
    synth_site: GeneratedSite, tmp_path: Path
) -> None:
    files = some_files(synth_site, tmp_path)
    profiles = [load_profile("publication"), load_profile("limited-access")]
    cases = [(f, p, c) for f in files for p in profiles for c in contexts()]
    fresh = []
    for path, profile, ctx in cases:
        forget_everything()  # nothing remembered from another file
        done = rewrite_bytes(path.read_bytes(), profile, ctx)
        fresh.append(None if done is None else done.data)
    forget_everything()
    for _ in range(2):  # everything remembered the second time round
        again = [rewrite_bytes(f.read_bytes(), p, c) for f, p, c in cases]
        assert [None if d is None else d.data for d in again] == fresh
    assert any(fresh)


def test_remembered_hits_give_the_findings_of_each_file_scanned_alone(
    synth_site: GeneratedSite, tmp_path: Path
) -> None:
    files = some_files(synth_site, tmp_path)
    scanner = Scanner(load_rules([], level="publication"))
    knowns = [None, KnownIdentifiers.of(["ZZTEST^Canary", "ZZCANARY0001", "19700101"])]
    cases = [(f, k) for f in files for k in knowns]
    alone = []
    for path, known in cases:
        scanner_module._HITS.clear()
        alone.append(scanner.scan_file(path, known).as_dict())
    for _ in range(2):
        assert [scanner.scan_file(f, k).as_dict() for f, k in cases] == alone


def marked_by_pydicom(plain: bytes, tmp_path: Path) -> bytes:
    """What the copy became before: read, marked and written by pydicom."""
    dataset = read_dataset(plain)
    mark_pixels_not_checked(dataset)
    write_dataset(dataset, tmp_path / "marked.dcm")
    return (tmp_path / "marked.dcm").read_bytes()


def has_unchecked(tags: frozenset[int]) -> bool:
    return unchecked_content(tags) is not None


def test_a_copy_marked_as_not_checked_on_its_bytes_is_the_copy_pydicom_writes(
    synth_site: GeneratedSite, tmp_path: Path
) -> None:
    profile, ctx = load_profile("publication"), contexts()[0]
    images = pick(
        synth_site, tmp_path / "in", 0, {FileKind.CT: 2, FileKind.MAMMO: 1, FileKind.US: 1}
    )
    burned = tmp_path / "burned-in-no.dcm"  # Burned In Annotation NO: left out when marked
    ds = pydicom.dcmread(images[0])
    ds.BurnedInAnnotation = "NO"
    ds.save_as(burned)
    copies = {}
    for path in [*images, burned]:
        data = path.read_bytes()
        plain = rewrite_bytes(data, profile, ctx)
        marked = rewrite_bytes(data, profile, ctx, mark_if=has_unchecked)
        assert plain is not None and marked is not None
        assert marked.pixels_not_checked, path.name
        assert marked.data == marked_by_pydicom(plain.data, tmp_path), path.name
        copies[path] = (plain.data, marked.data)
    unmarked, marked_copy = (pydicom.dcmread(io.BytesIO(d)) for d in copies[burned])
    assert unmarked.BurnedInAnnotation == "NO" and "BurnedInAnnotation" not in marked_copy


def test_a_copy_pydicom_would_write_otherwise_is_left_for_it_to_mark(
    synth_site: GeneratedSite, tmp_path: Path
) -> None:
    """An empty value stored as UN takes its dictionary's VR when pydicom writes it: that
    copy is left unmarked (the caller reads and marks it), never marked differently."""
    profile, ctx = load_profile("publication"), contexts()[0]
    (ct,) = pick(synth_site, tmp_path / "in", 0, {FileKind.CT: 1})
    data = ct.read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    at = data.index(b"\x08\x00\x70\x00LO")  # Manufacturer, as explicit VR LO
    (length,) = struct.unpack_from("<H", data, at + 6)
    empty_un = b"\x08\x00\x70\x00UN\x00\x00" + struct.pack("<L", 0)
    patched = data[:at] + empty_un + data[at + 8 + length :]
    assert "Manufacturer" in ds  # the element patched exists
    marked = rewrite_bytes(patched, profile, ctx, mark_if=has_unchecked)
    plain = rewrite_bytes(patched, profile, ctx)
    assert marked is not None and plain is not None and not marked.pixels_not_checked
    assert marked.data == plain.data
    assert pydicom.dcmread(io.BytesIO(marked_by_pydicom(marked.data, tmp_path)))


# -- once per patient of a run -----------------------------------------------------------


def test_a_run_asks_the_vault_once_per_patient_not_per_file(
    sqlite_site: Site,
    synth_site: GeneratedSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dicomhaven.consent import ConsentRegister
    from dicomhaven.identity import Vault

    calls = {"details": 0, "identifiers": 0, "consent": 0}

    def counted(name: str, method: object) -> object:
        def wrapper(*args: object, **kwargs: object) -> object:
            calls[name] += 1
            return method(*args, **kwargs)  # type: ignore[operator]

        return wrapper

    monkeypatch.setattr(Vault, "details_of", counted("details", Vault.details_of))
    monkeypatch.setattr(Vault, "identifiers_of", counted("identifiers", Vault.identifiers_of))
    monkeypatch.setattr(ConsentRegister, "excluded", counted("consent", ConsentRegister.excluded))
    manager, _ = tokens(sqlite_site)
    pick(synth_site, tmp_path / "in", 0, {FileKind.CT: 6})
    out = tmp_path / "out"
    argv = deid(sqlite_site, [tmp_path / "in"], out, "--headers-only", "--token", manager,
                "--workers", "1")  # fmt: skip
    assert main(argv) == 0
    assert len(written(out)) == 6
    # One patient: consent once; the vault again only after this run added to what it
    # holds of them (a file's new details), not twice per file as before.
    assert calls["consent"] == 1
    assert 1 <= calls["details"] < 6 and 1 <= calls["identifiers"] < 6


def test_a_withdrawal_recorded_between_two_runs_applies_to_the_second(
    sqlite_site: Site, synth_site: GeneratedSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manager, _ = tokens(sqlite_site)
    pick(synth_site, tmp_path / "in", 0, {FileKind.CT: 2})
    first = tmp_path / "first"
    assert (
        main(deid(sqlite_site, [tmp_path / "in"], first, "--headers-only", "--token", manager)) == 0
    )
    assert len(written(first)) == 2
    withdraw(sqlite_site, synth_site, 0, manager, tmp_path)
    capsys.readouterr()
    second = tmp_path / "second"
    code = main(deid(sqlite_site, [tmp_path / "in"], second, "--headers-only", "--token", manager))
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and written(second) == []
    assert {s["reason"] for s in summary["skipped"]} == {CONSENT_WITHDRAWN}


# -- a copy that cannot be written -------------------------------------------------------


def says_jpeg(source: Path, target: Path) -> Path:
    """``source`` (native pixels, explicit VR little endian) with a file meta that names
    JPEG Baseline: the hostile corpus's ``ts-jpeg-native``."""
    data = source.read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    old = str(ds.file_meta.TransferSyntaxUID).encode()
    old += b"\x00" * (len(old) % 2)
    new = str(JPEGBaseline8Bit).encode()
    new += b"\x00" * (len(new) % 2)
    header = b"\x02\x00\x10\x00UI"
    at = data.index(header + struct.pack("<H", len(old)) + old)
    data = data[:at] + header + struct.pack("<H", len(new)) + new + data[at + 8 + len(old) :]
    group = b"\x02\x00\x00\x00UL\x04\x00"
    where = data.index(group) + len(group)
    (length,) = struct.unpack_from("<L", data, where)
    data = data[:where] + struct.pack("<L", length + len(new) - len(old)) + data[where + 4 :]
    target.write_bytes(data)
    return target


@pytest.mark.parametrize("mode", [["--headers-only"], []], ids=["headers-only", "whole-path"])
def test_native_pixels_under_a_compressed_syntax_end_skipped_and_the_run_goes_on(
    mode: list[str],
    sqlite_site: Site,
    synth_site: GeneratedSite,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Regression: pydicom refused to write the copy (ValueError) and the whole run ended
    with an internal error."""
    manager, _ = tokens(sqlite_site)
    good, source = pick(synth_site, tmp_path / "in", 0, {FileKind.CT: 2})
    lie = says_jpeg(source, tmp_path / "in" / "zz-lie.dcm")
    source.unlink()
    out = tmp_path / "out"
    capsys.readouterr()
    code = main(deid(sqlite_site, [tmp_path / "in"], out, *mode, "--token", manager))
    summary = json.loads(capsys.readouterr().out)
    assert code == 1
    assert summary["written"] == 1 and len(written(out)) == 1
    (skipped,) = summary["skipped"]
    assert skipped["path"] == str(lie) and skipped["stage"] == "write"
    assert "JPEG Baseline" in skipped["reason"] and "native pixels" in skipped["reason"]
    assert not list(out.rglob("*.part")) and not (out / "held" / ".pending").exists()
    assert good.exists()


def test_the_layout_reason_names_no_value_of_the_file() -> None:
    from dicomhaven.deid._folder import layout_problem

    ds = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]
    assert layout_problem(ds) is None
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    reason = layout_problem(ds)
    assert reason is not None and "JPEG Baseline" in reason
    for value in (str(ds.PatientID), str(ds.SOPInstanceUID), str(ds.StudyInstanceUID)):
        assert value not in reason
