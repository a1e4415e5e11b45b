"""Pulling over DICOMweb: QIDO-RS to search, WADO-RS to retrieve (``dicomweb-client``).

The same pull jobs, work items and count check as C-FIND/C-MOVE (see ``_pull``); only the
source differs. There is no receiver in between: each retrieved instance goes through the
receiver's own path, ``receive_bytes`` into intake, then the ledger (one transaction per
batch), and the pipeline runs on it in a background worker process, as for received
objects. An instance the ledger has is never lost: it was in intake first.

QIDO-RS and WADO-RS name studies and series by UID in the URL, and a patient-ID criterion
travels as a query parameter: that is the protocol. These URLs are never logged here
(``requests`` and ``urllib3`` log them only at DEBUG, and the site's log takes only the
``dicomhaven`` logger).
"""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dicomhaven.collect._deliver import Delivering, Delivery
from dicomhaven.collect._pull import RetrieveResult
from dicomhaven.errors import ConfigError, PullError
from dicomhaven.intake import Receipt

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = ["DicomWebSource"]

log = logging.getLogger(__name__)

_STUDY_FIELDS = ("StudyInstanceUID", "StudyDate", "AccessionNumber", "PatientID",
                 "ModalitiesInStudy")  # fmt: skip
_FILTER_KEYS = ("StudyDate", "ModalitiesInStudy", "AccessionNumber", "PatientID")
_BATCH = 32  # instances entered in the ledger per transaction
_PAGE = 1000  # search results asked for at once
_AS_STORED = (("application/dicom", "*"),)  # the transfer syntax the server holds: no transcoding


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(
            f"--dicomweb '{url}': expected the service's base URL, such as "
            "http://pacs:8042/dicom-web"
        )
    if parts.username or parts.password or parts.query:
        raise ConfigError("--dicomweb: give the base URL without credentials or a query")
    return url.rstrip("/")


class DicomWebSource(Delivering):
    """A DICOMweb origin server as a :class:`~dicomhaven.collect.PullSource`.

    Use it as a context manager: leaving the block finishes the ledger job under which the
    instances were recorded, after the pipeline had ``drain_seconds`` to process them (the
    rest end ``failed``, retryable, for ``dicomhaven process``).
    """

    kind = "dicomweb"

    def __init__(
        self,
        url: str,
        site: Site,
        *,
        drain_seconds: float = 60.0,
        timeout: float = 60.0,
        client: Any | None = None,
    ) -> None:
        self._url = _base_url(url)
        self._client = client or DICOMwebClient(self._url, timeout=timeout)
        self._delivery = Delivery(
            site, "pull-dicomweb", f"dicomweb:{urlsplit(self._url).netloc}",
            drain_seconds=drain_seconds,
        )  # fmt: skip

    def describe(self) -> str:
        return self._url

    # -- searching (QIDO-RS) ------------------------------------------------------------------
    def _search(self, what: str, call: Any, **kwargs: Any) -> list[Dataset]:
        """Every result of a search, page by page. dicomweb-client's own ``get_remaining``
        loops for ever on a server that ignores ``offset`` (Orthanc's plugin 1.7 does), so
        paging stops too when a page brings nothing new."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            try:
                page = call(limit=_PAGE, offset=offset, **kwargs)
            except requests.RequestException as exc:
                raise PullError(
                    f"{what}: the DICOMweb service at {self._url} did not answer the search "
                    f"({type(exc).__name__}); check the URL and that the service runs"
                ) from None
            before = len(found)
            for item in page:
                found.setdefault(json.dumps(item, sort_keys=True), item)
            offset += len(page)
            if len(page) < _PAGE or len(found) == before:
                return [Dataset.from_json(item) for item in found.values()]

    def studies(self, query: Dataset) -> list[Dataset]:
        filters = {k: str(query.get(k)) for k in _FILTER_KEYS if query.get(k)}
        return self._search(
            "study search", self._client.search_for_studies,
            fields=list(_STUDY_FIELDS), search_filters=filters,
        )  # fmt: skip

    def series(self, study_uid: str) -> list[Dataset]:
        return self._search(
            "series search", self._client.search_for_series, study_instance_uid=study_uid,
            fields=["SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances"],
        )  # fmt: skip

    def instances(self, study_uid: str, series_uid: str) -> list[str]:
        found = self._search(
            "instance search", self._client.search_for_instances,
            study_instance_uid=study_uid, series_instance_uid=series_uid,
            fields=["SOPInstanceUID"],
        )  # fmt: skip
        return [str(i.get("SOPInstanceUID", "")).strip("\x00 ") for i in found]

    # -- retrieving (WADO-RS) -----------------------------------------------------------------
    def retrieve(
        self, study_uid: str, series_uid: str, sop_uids: list[str] | None
    ) -> RetrieveResult:
        batch: list[Receipt] = []
        stored = failed = 0

        def commit() -> None:
            nonlocal stored
            self._delivery.record(batch)
            stored += len(batch)
            batch.clear()

        try:
            for dataset in self._datasets(study_uid, series_uid, sop_uids):
                buffer = io.BytesIO()
                pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
                batch.append(self._delivery.receipt(buffer.getvalue()))
                if len(batch) >= _BATCH:
                    commit()
        except (requests.RequestException, InvalidDicomError, ValueError) as exc:
            failed += 1
            log.warning("DICOMweb retrieve failed", extra={"source": self.describe(),
                                                           "error": type(exc).__name__})  # fmt: skip
            status = f"failed ({type(exc).__name__})"
        else:
            status = "ok"
        finally:
            commit()
        return RetrieveResult(status, completed=stored, failed=failed)

    def _datasets(self, study_uid: str, series_uid: str, sop_uids: list[str] | None) -> Any:
        if sop_uids is None:
            yield from self._client.iter_series(study_uid, series_uid, media_types=_AS_STORED)
            return
        for uid in sop_uids:
            yield self._client.retrieve_instance(study_uid, series_uid, uid, media_types=_AS_STORED)
