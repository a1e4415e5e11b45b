"""Every path to the store, walked with images that carry a fake patient's name, NHS number
and birth date in their pixels (issue 21): nothing reaches ``store/`` with that text still
in it, whatever command moved it there.

The mandatory case is an MR head slice whose header says Burned In Annotation YES and whose
study description mentions the brain: the pixel stage holds it for defacing, and
``dicomhaven deface`` used to offer it to the gate as it was ("head series shows no face:
fewer than 20 slices"), text and all. Beside it goes an MR knee slice with the same text,
which the pixel stage reads itself. The paths:

- ``import`` alone (it decides the series it completed), and ``import`` (the series still
  open) then ``deface`` (the gate releases at once);
- ``import``, ``deface``, ``devices trust``, ``release`` (a new device is held first);
- ``import``, ``deface``, ``review decide``, ``release`` (a scan finding is reviewed first);
- ``import`` that fails (no verifier installed), then ``process`` and ``deface``.

The text is judged on the store copies themselves: every pixel the text set is blanked,
or else the verifier reads none of the planted values there.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import numpy as np
import pydicom
import pytest
from sqlalchemy import select

from dicomhaven.catalogue import LedgerObject, make_engine, make_sessionmaker
from dicomhaven.cli import main
from dicomhaven.ingest import import_paths
from dicomhaven.ledger import Ledger
from dicomhaven.pixels import AWAITS_DEFACING, black_value, engine_named, find_identifiers
from dicomhaven.pixels._clean import VERIFY_RULES, _images
from dicomhaven.scan._stage import GateServices, reset_gate_services
from dicomhaven.site import Site, open_site
from tests.peers import require_tool
from tests.pixels.burned_in_mr import KNOWN, Mask, burned_in_mr

HEAD, KNEE = "MR BRAIN", "MR KNEE"
KNEE_MM = 0.4  # pixel spacing: a 102 mm field of view, too small for a head


@pytest.fixture(autouse=True)
def _fresh_gate_services() -> Iterator[None]:
    reset_gate_services()
    yield
    reset_gate_services()


class StoreWrites:
    """The writes into one site's ``store/`` while a test runs: how many the release gate's
    writer made, and the stack of every other one."""

    def __init__(self, store: Path) -> None:
        self.store = os.path.realpath(store) + os.sep
        self.by_gate = 0
        self.elsewhere: list[str] = []

    def record(self, target: str) -> None:
        if not os.path.realpath(target).startswith(self.store):
            return
        writer = getattr(GateServices, "_store", None)  # None before the gate had one
        code = writer.__code__ if writer is not None else None
        frame: FrameType | None = sys._getframe()
        while frame is not None and frame.f_code is not code:
            frame = frame.f_back
        if frame is None:
            self.elsewhere.append("".join(traceback.format_stack(limit=8)))
        elif target.endswith(".dcm"):  # the renamed copy (not its partial file)
            self.by_gate += 1


_WATCHING: list[StoreWrites] = []
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _audit(event: str, args: tuple[object, ...]) -> None:
    """Every file opened for writing, renamed or linked, told to the watchers (an audit
    hook stays for the session: it does nothing while no test watches)."""
    if not _WATCHING or event not in ("open", "os.rename", "os.link", "os.symlink"):
        return
    try:
        if event == "open":
            path, mode, flags = args
            writes = (
                any(c in mode for c in "wax+")
                if isinstance(mode, str)
                else bool(isinstance(flags, int) and flags & _WRITING)
            )
            target = path if writes else None
        else:
            target = args[1]
        if isinstance(target, str | bytes | os.PathLike):
            for watch in _WATCHING:
                watch.record(os.fsdecode(target))
    except Exception:  # a hook must never break the operation it watches
        return


@pytest.fixture
def store_writes(sqlite_site: Site) -> Iterator[StoreWrites]:
    if _audit not in _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED.append(_audit)
    watch = StoreWrites(sqlite_site.zone("store"))
    _WATCHING.append(watch)
    yield watch
    _WATCHING.remove(watch)


_HOOKED: list[object] = []


def export(tmp_path: Path, seed: int, institution: str | None = None) -> tuple[Path, Mask]:
    """The head slice and the knee slice, in one folder; the text's mask. Each test takes
    its own ``seed``: the OCR engines keep what they read of an image for the process, and
    a test must not lean on another's reading."""
    folder = tmp_path / "export"
    text = burned_in_mr(folder / "head", HEAD, institution=institution, seed=seed)
    burned_in_mr(folder / "knee", KNEE, institution=institution, seed=seed + 1, spacing=KNEE_MM)
    return folder, text


def rows(site: Site) -> list[LedgerObject]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return list(session.scalars(select(LedgerObject).order_by(LedgerObject.id)))


def manager(site: Site, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["users", "add", "dana", "--role", "data-manager", "--site", str(site.root)]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def text_left(copy: Path, text: Mask) -> list[str]:
    """What of the planted text a store copy still shows: nothing when every pixel it set
    is blanked; otherwise the rules the verifier's reading of the copy fires."""
    output = pydicom.dcmread(copy)
    fill = black_value(output, str(output.PhotometricInterpretation))[0]
    if (np.asarray(output.pixel_array)[text] == fill).all():
        return []
    [image] = _images(output, [0])
    words = engine_named("tesseract").read(image)
    return sorted({f.rule.value for f in find_identifiers(words, KNOWN, rules=VERIFY_RULES)})


def assert_released_without_text(
    site: Site, text: Mask, expected: int, writes: StoreWrites
) -> None:
    """Every object released, its store copy free of the text, written by the release gate,
    its verdict on the very bytes in the store, and its ledger reason naming what was
    checked."""
    objects = rows(site)
    assert [o.status for o in objects] == ["released"] * expected, [o.reason for o in objects]
    copies = sorted(site.zone("store").rglob("*.dcm"))
    assert len(copies) == expected
    assert {c.name: text_left(c, text) for c in copies} == {c.name: [] for c in copies}
    assert (writes.by_gate, writes.elsewhere) == (expected, [])
    from dicomhaven.catalogue import PixelVerdict  # after the text: the test runs on old code

    with make_sessionmaker(make_engine(site.database_url))() as session:
        verdicts = {v.sha256 for v in session.scalars(select(PixelVerdict))}
    assert {hashlib.sha256(c.read_bytes()).hexdigest() for c in copies} <= verdicts
    assert all(o.reason.startswith("pixels: ") and "; face: " in o.reason for o in objects)
    faces = sorted(o.reason.partition("; face: ")[2].partition(":")[0] for o in objects)
    assert faces == ["no face", "not a head volume"]  # the head slice's own check, the knee's
    assert Ledger(make_engine(site.database_url)).verify(site.intake).consistent


@pytest.mark.integration
def test_import_alone_defaces(sqlite_site: Site, tmp_path: Path, store_writes: StoreWrites) -> None:
    """The folder import ends the head series, and decides it itself (issue 18)."""
    require_tool("tesseract")
    folder, text = export(tmp_path, 31)
    import_paths(sqlite_site, [folder])
    assert_released_without_text(sqlite_site, text, 2, store_writes)


@pytest.mark.integration
def test_import_then_deface(sqlite_site: Site, tmp_path: Path, store_writes: StoreWrites) -> None:
    require_tool("tesseract")
    (sqlite_site.root / "dicomhaven.yaml").write_text("import_series_quiet_seconds: 300\n")
    site = open_site(sqlite_site.root)
    folder, text = export(tmp_path, 31)
    import_paths(site, [folder])
    waiting = [o for o in rows(site) if o.status != "released"]
    assert [o.reason for o in waiting] == [AWAITS_DEFACING]  # the knee was read and released

    assert main(["deface", "--site", str(site.root)]) == 0
    assert_released_without_text(site, text, 2, store_writes)


@pytest.mark.integration
def test_devices_trust_then_release(
    sqlite_site: Site,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    store_writes: StoreWrites,
) -> None:
    require_tool("tesseract")
    monkeypatch.setenv("DICOMHAVEN_DEVICE_GATE", "true")
    site = open_site(sqlite_site.root)
    root, token = str(site.root), manager(site, capsys)
    folder, text = export(tmp_path, 41)
    import_paths(site, [folder])
    main(["deface", "--site", root])  # its slice is held: the device is new
    capsys.readouterr()
    assert {o.status for o in rows(site)} == {"quarantined"}
    assert not list(site.zone("store").rglob("*.dcm"))

    assert main(["devices", "list", "--site", root, "--json"]) == 0
    [device] = json.loads(capsys.readouterr().out)
    trust = ["devices", "trust", device["id"], "--reason", "2 copies reviewed", "--site", root]
    assert main([*trust, "--token", token]) == 0
    assert main(["release", "--site", root, "--token", token]) == 0
    assert_released_without_text(site, text, 2, store_writes)


@pytest.mark.integration
def test_review_decide_then_release(
    sqlite_site: Site,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    store_writes: StoreWrites,
) -> None:
    require_tool("tesseract")
    profile = sqlite_site.root / "institution-kept.yaml"
    profile.write_text("extends: limited-access\nkeep: [InstitutionName]\n")
    (sqlite_site.root / "dicomhaven.yaml").write_text(f"deid_profile: {json.dumps(str(profile))}\n")
    site = open_site(sqlite_site.root)
    root, token = str(site.root), manager(site, capsys)
    folder, text = export(tmp_path, 51, institution="ZZ Test Infirmary")
    import_paths(site, [folder])
    main(["deface", "--site", root])  # the scan holds the head slice as it held the knee's
    capsys.readouterr()
    assert all(o.reason.startswith("scan failed: ") for o in rows(site))

    assert main(["review", "--site", root, "--json"]) == 0
    [group] = [g for g in json.loads(capsys.readouterr().out) if g["keyword"] == "InstitutionName"]
    decide = ["review", "decide", group["id"], "--allow", "--site", root, "--token", token]
    assert main([*decide, "--reason", "the infirmary's name is public"]) == 0
    assert main(["release", "--site", root, "--token", token]) == 0
    assert_released_without_text(site, text, 2, store_writes)


@pytest.mark.integration
def test_process_retry_then_deface(
    sqlite_site: Site,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store_writes: StoreWrites,
) -> None:
    require_tool("tesseract")
    root = str(sqlite_site.root)
    folder, text = export(tmp_path, 61)
    path = os.environ["PATH"]
    no_tools = tmp_path / "bin"
    no_tools.mkdir()
    monkeypatch.setenv("PATH", str(no_tools))  # the verifier is not installed yet
    import_paths(sqlite_site, [folder])
    assert sorted(o.status for o in rows(sqlite_site)) == ["failed", "quarantined"]
    main(["deface", "--site", root])  # cannot verify the head slice's text either
    assert not list(sqlite_site.zone("store").rglob("*.dcm"))

    monkeypatch.setenv("PATH", path)  # installed: retry
    assert main(["process", "--site", root]) == 0
    assert main(["deface", "--site", root]) == 0
    assert_released_without_text(sqlite_site, text, 2, store_writes)


def test_only_the_release_gate_writes_into_the_store(
    sqlite_site: Site, tmp_path: Path, store_writes: StoreWrites
) -> None:
    """A plain slice through the pipeline and a head slice through ``deface``: every file
    written or renamed into the store was written by the gate's one writer."""
    folder = tmp_path / "export"
    burned_in_mr(folder / "head", HEAD, burned_in_annotation=None, lines=())  # not read
    burned_in_mr(
        folder / "knee", KNEE, burned_in_annotation=None, lines=(), seed=22, spacing=KNEE_MM
    )
    import_paths(sqlite_site, [folder])
    assert main(["deface", "--site", str(sqlite_site.root)]) == 0
    assert {o.status for o in rows(sqlite_site)} == {"released"}
    assert (store_writes.by_gate, store_writes.elsewhere) == (2, [])
