"""Fixtures for collection tests against a real PACS: Orthanc in a private network namespace,
loaded once per session with a small synthetic hospital."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomhaven.synth import generate_site
from tests.orthanc import Modality, Netns, Orthanc, PeerUnavailable, orthanc_server
from tests.peers import missing_peer

RECEIVER_AE = "DICOMHAVEN"
RECEIVER_PORT = 11112  # inside the namespace: private, so a fixed port is safe
PACS_PATIENTS = 3
PACS_SEED = 7


@pytest.fixture(scope="session")
def netns() -> Iterator[Netns]:
    """A private network namespace (needs root: CI runs as root)."""
    try:
        space = Netns()
    except PeerUnavailable as exc:
        missing_peer(str(exc))
        raise  # not reached: missing_peer skips or fails
    try:
        yield space
    finally:
        space.close()


@pytest.fixture(scope="session")
def pacs_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The synthetic hospital the PACS holds: 3 patients, 7 studies, 55 instances."""
    root = tmp_path_factory.mktemp("pacs-hospital")
    generate_site(root, patients=PACS_PATIENTS, seed=PACS_SEED)
    return sorted((root / "export").rglob("*.dcm"))


@pytest.fixture(scope="session")
def orthanc(
    netns: Netns, pacs_files: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Orthanc]:
    """Orthanc as the hospital PACS, holding ``pacs_files``. It knows one modality, our
    receiver (AE, host and port), which may query and retrieve; nobody else may."""
    modalities = {"dicomhaven": Modality(RECEIVER_AE, RECEIVER_PORT)}
    try:
        with orthanc_server(netns, tmp_path_factory.mktemp("orthanc"), modalities) as server:
            assert server.upload(pacs_files) == len(pacs_files)
            yield server
    except PeerUnavailable as exc:
        missing_peer(str(exc))
