"""No decoder runs on pixels larger than their site allows, or whose codestream lies.

A JPEG 2000 file of under 1 KB declaring 60000 x 60000 pixels at 16 bits took ``import``
to 7.4 GB and 23 s before it was held (issue 22 #3). The check reads headers only: the
regression tests run the bomb in a process whose address space is capped at 1 GiB, where a
decoder's allocation fails at once, so the only way to pass is to hold the object by the
declared size check before decoding.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from dicomhaven.access import Role, Users
from dicomhaven.catalogue import make_engine
from dicomhaven.pixels._codec import (
    DECLARED_SIZE_CHECK,
    DeclaredSizeError,
    check_declared_size,
    declared_pixel_bytes,
    decode,
    pixel_limit,
)
from dicomhaven.settings import MAX_PIXEL_BYTES_DEFAULT, load_settings
from dicomhaven.site import Site
from tests.corpora import pydicom_file
from tests.pixels.bombs import BOMB_SIDE, PATIENT_ID, PATIENT_NAME, jpeg2000_bomb

ADDRESS_SPACE = 1 << 30  # a decode of the bomb (7.2 GB) cannot even start under this
LIMITED_SECONDS = 120

_LIMITED = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
{body}
"""


def run_limited(body: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh Python whose address space is capped at 1 GiB."""
    code = _LIMITED.format(limit=ADDRESS_SPACE, body=body)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=LIMITED_SECONDS,
    )


_CLEAN = """
import pydicom
from dicomhaven.pixels import clean_pixels
ds = pydicom.dcmread(sys.argv[1])
result = clean_pixels(ds, original=ds)
print(json.dumps({"outcome": result.outcome.value, "reason": result.reason}))
"""


def clean_limited(path: Path) -> dict[str, str]:
    done = run_limited(_CLEAN, str(path))
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def assert_no_identifier(text: str) -> None:
    for value in (PATIENT_ID, *PATIENT_NAME.split("^"), str(BOMB_SIDE)):
        assert value not in text


def test_the_bomb_is_held_by_the_declared_size_check_before_any_decoder(tmp_path: Path) -> None:
    bomb = jpeg2000_bomb(tmp_path / "bomb.dcm")
    assert bomb.stat().st_size < 2048
    result = clean_limited(bomb)
    assert result["outcome"] == "held"
    assert DECLARED_SIZE_CHECK in result["reason"]
    assert "max_pixel_bytes" in result["reason"]
    assert_no_identifier(result["reason"])


def test_a_siz_marker_that_disagrees_with_rows_and_columns_is_held(tmp_path: Path) -> None:
    # 64 x 64 in the header (8 KB decoded, within any limit); the codestream says 60000².
    liar = jpeg2000_bomb(tmp_path / "liar.dcm", rows=64, columns=64, siz=(BOMB_SIDE, BOMB_SIDE))
    result = clean_limited(liar)
    assert result["outcome"] == "held"
    assert DECLARED_SIZE_CHECK in result["reason"]
    assert "JPEG 2000 SIZ marker" in result["reason"]
    assert_no_identifier(result["reason"])


def test_an_honest_jpeg2000_of_the_same_making_decodes(tmp_path: Path) -> None:
    honest = pydicom.dcmread(jpeg2000_bomb(tmp_path / "honest.dcm", rows=64, columns=64))
    check_declared_size(honest)
    assert decode(honest).frames.shape == (1, 64, 64, 1)


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")  # "1A", on purpose
def test_the_declared_size_counts_every_factor() -> None:
    ds = Dataset()
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel, ds.BitsAllocated = 10, 20, 3, 3, 16
    assert declared_pixel_bytes(ds) == 10 * 20 * 3 * 3 * 2
    ds.BitsAllocated = 1  # a decoder gives each bit a byte
    assert declared_pixel_bytes(ds) == 10 * 20 * 3 * 3
    ds[0x00280008] = RawDataElement(Tag(0x00280008), "IS", 2, b"1A", 0, True, True)
    with pytest.raises(DeclaredSizeError, match="NumberOfFrames is not a number"):
        declared_pixel_bytes(ds)


def test_the_limit_in_force_is_the_one_given() -> None:
    ct = pydicom.dcmread(pydicom_file("CT_small.dcm"))  # 128 x 128 x 16 bits: 32 KiB
    decode(ct)
    with pixel_limit(16 * 1024), pytest.raises(DeclaredSizeError, match="max_pixel_bytes"):
        decode(ct)
    decode(ct)  # the block's limit ends with it


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("SC_rgb_jpeg_dcmtk.dcm", "JPEG SOF marker"),
        ("SC_rgb_jpeg_gdcm.dcm", "JPEG SOF marker"),  # lossless, process 14
        ("JPGExtended.dcm", "JPEG SOF marker"),
        ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS SOF55 marker"),
        ("MR_small_jp2klossless.dcm", "JPEG 2000 SIZ marker"),
    ],
)
def test_every_codestream_header_is_compared_with_rows_and_columns(name: str, header: str) -> None:
    ds = pydicom.dcmread(pydicom_file(name))
    check_declared_size(ds)  # as made, header and codestream agree
    ds.Rows = int(ds.Rows) // 2  # smaller: within every limit, but not what is encoded
    with pytest.raises(DeclaredSizeError, match=header):
        check_declared_size(ds)


def test_the_setting_reaches_the_pixel_stage(
    sqlite_site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dicomhaven.ingest import pipeline_for
    from dicomhaven.pixels._stage import PixelStage

    assert load_settings(None, {}).max_pixel_bytes == MAX_PIXEL_BYTES_DEFAULT
    monkeypatch.setenv("DICOMHAVEN_MAX_PIXEL_BYTES", str(3 << 20))
    site = Site(root=sqlite_site.root, settings=load_settings(sqlite_site.root))
    [stage] = [s for s in pipeline_for(site).stages if isinstance(s, PixelStage)]
    assert stage.policy.max_pixel_bytes == 3 << 20


_VOLUME = """
import pydicom
from dicomhaven.pixels._volume import DefacingError, read_volume
try:
    read_volume([pydicom.dcmread(sys.argv[1])])
except DefacingError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def test_defacing_does_not_load_a_bomb_into_a_volume(tmp_path: Path) -> None:
    bomb = jpeg2000_bomb(tmp_path / "bomb.dcm")
    done = run_limited(_VOLUME, str(bomb))
    assert done.returncode == 0, done.stderr[-2000:]
    assert DECLARED_SIZE_CHECK in json.loads(done.stdout.strip().splitlines()[-1])["error"]


# -- whole commands ---------------------------------------------------------------------------

_MAIN = """
from dicomhaven.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.integration
def test_import_holds_the_bomb_without_decoding_it(sqlite_site: Site, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    jpeg2000_bomb(folder / "bomb.dcm")
    done = run_limited(_MAIN, "import", str(folder), "--site", str(sqlite_site.root), "--json")
    assert done.returncode in (0, 1), done.stderr[-2000:]
    ledger = subprocess.run(
        [sys.executable, "-m", "dicomhaven", "ledger", "--site", str(sqlite_site.root), "--json"],
        capture_output=True,
        text=True,
        timeout=LIMITED_SECONDS,
    )
    report = json.loads(ledger.stdout)
    assert report["counts"]["quarantined"] == 1
    [[reason, count]] = report["reasons"]
    assert count == 1
    assert DECLARED_SIZE_CHECK in reason
    assert_no_identifier(reason + done.stdout + done.stderr)


@pytest.mark.integration
def test_redact_holds_the_bomb_without_decoding_it(sqlite_site: Site, tmp_path: Path) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    jpeg2000_bomb(folder / "bomb.dcm")
    token = Users(make_engine(sqlite_site.database_url)).add("dana", Role.DATA_MANAGER, by="(t)")
    args = ["redact", str(folder), str(out), "--site", str(sqlite_site.root), "--token", token]
    done = run_limited(_MAIN, *args, "--json")
    assert done.returncode == 1, done.stderr[-2000:]  # 1: something was held
    assert not list(out.glob("*.dcm"))  # nothing written beside held/
    [reason_file] = (out / "held").rglob("*.reason.json")
    held = json.loads(reason_file.read_text())
    assert held["stage"] == "pixels"
    assert DECLARED_SIZE_CHECK in held["reason"]
    assert_no_identifier(held["reason"] + done.stdout + done.stderr)
