"""Head series that arrive over the network complete themselves: pushed to the receiver
(quiet period 0: complete when the receiver stops), and pulled from a real PACS (Orthanc,
see tests/orthanc.py), where the count the PACS gives in its series-level C-FIND answer,
Number of Series Related Instances (0020,1209), says when a series is whole. Either way the
pipeline defaces or releases the series itself; nobody runs ``dicomhaven deface``.

The series is 8 slices of the synthetic head (too few to show a face, so released as it is
once complete): what is under test is when the series is complete, not the defacing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from sqlalchemy import select

from dicomhaven.catalogue import LedgerObject, make_engine, make_sessionmaker
from dicomhaven.catalogue._models import SeriesRecord
from dicomhaven.collect import embedded_receiver, receiver_config
from dicomhaven.collect._jobs import keyed
from dicomhaven.site import Site, open_site
from tests.collect.conftest import RECEIVER_PORT
from tests.orthanc import DICOM_PORT, ORTHANC_AE, Netns, Orthanc
from tests.pixels.head_phantom import head_phantom, slices

pytestmark = pytest.mark.integration

ACCESSION = "HEADSERIES01"
PULL_SECONDS = 300.0


def head_files(folder: Path) -> list[Path]:
    """8 axial slices of the synthetic head CT, in a study of their own."""
    folder.mkdir(parents=True)
    paths = []
    for ds in slices(head_phantom("CT").values[40:48], "CT", series="pulled-head"):
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.9999.79"
        ds.AccessionNumber = ACCESSION
        ds.StudyDate = "20240102"
        path = folder / f"{ds.InstanceNumber:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def statuses(site: Site) -> list[str]:
    with make_sessionmaker(make_engine(site.database_url))() as session:
        return sorted(session.scalars(select(LedgerObject.status)))


def test_a_series_pushed_to_the_receiver_is_decided_when_the_receiver_stops(
    sqlite_site: Site, tmp_path: Path
) -> None:
    (sqlite_site.root / "dicomhaven.yaml").write_text("head_series_quiet_seconds: 0\n")
    site = open_site(sqlite_site.root)
    config = receiver_config(site.settings, port=0, allow=["MODALITY"])
    with embedded_receiver(site, config) as address:
        host, port = address.rsplit(":", 1)
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate(host, int(port), ae_title=config.ae_title)
        assert assoc.is_established
        try:
            for path in head_files(tmp_path / "head"):
                status = assoc.send_c_store(pydicom.dcmread(path))
                assert int(status.Status) == 0
        finally:
            assoc.release()
    # The receiver's job ended as it stopped: with a quiet period of 0 the series is whole.
    assert statuses(site) == ["released"] * 8


def test_a_pulled_series_is_complete_when_every_announced_instance_arrived(
    netns: Netns, orthanc: Orthanc, sqlite_site: Site, tmp_path: Path
) -> None:
    files = head_files(tmp_path / "head")
    assert orthanc.upload(files) == len(files)
    [study] = orthanc.rest(
        "POST", "/tools/find", {"Level": "Study", "Query": {"AccessionNumber": ACCESSION}}
    )
    try:
        # Orthanc answers the count in the series-level C-FIND that a pull sends.
        probe = (
            "import sys; from dicomhaven.collect._pull import DimseSource, PacsAddress; "
            f"a = PacsAddress('127.0.0.1', {DICOM_PORT}, '{ORTHANC_AE}', 'DICOMHAVEN', "
            "'DICOMHAVEN'); [s] = DimseSource(a).series(sys.argv[1]); "
            "print(s.NumberOfSeriesRelatedInstances)"
        )
        uid = str(pydicom.dcmread(files[0]).StudyInstanceUID)
        answered = netns.run(sys.executable, "-c", probe, uid, check=True)
        assert int(answered.stdout) == len(files)

        # The default quiet period (300 s) cannot pass during the test: only the count can
        # make the series complete.
        command = [
            sys.executable, "-m", "dicomhaven", "pull", "--site", str(sqlite_site.root),
            "--pacs-host", "127.0.0.1", "--pacs-port", str(DICOM_PORT), "--pacs-ae", ORTHANC_AE,
            "--accession", ACCESSION, "--receive-port", str(RECEIVER_PORT),
            "--drain-seconds", "120", "--json",
        ]  # fmt: skip
        done = netns.run(*command, timeout=PULL_SECONDS)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["complete"] is True
        assert statuses(sqlite_site) == ["released"] * len(files)
        key = keyed(
            sqlite_site.site_key(), "series", str(pydicom.dcmread(files[0]).SeriesInstanceUID)
        )
        with make_sessionmaker(make_engine(sqlite_site.database_url))() as session:
            record = session.get(SeriesRecord, key)
        assert record is not None and (record.expected, record.slices) == (len(files), len(files))
        assert record.decision == "not needed"  # too few slices for a face: released as it is
    finally:
        orthanc.rest("DELETE", f"/studies/{study}")
