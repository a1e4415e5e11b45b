"""Pulling with C-GET: the PACS sends the instances back on our own association.

No move destination to configure on the PACS and no listening port on our side, which
suits a PACS behind a firewall that allows one direction only. Queries are C-FIND, as for
C-MOVE (:class:`~dicomhaven.collect.DimseSource`); each instance the PACS sends (a C-STORE
sub-operation, with us in the SCP role) goes into intake and the ledger before we answer
success, exactly as the receiver does (see ``_deliver``).

Handler contract for the C-STORE sub-operations (PS3.4 B.2.3): ``0x0000`` stored (in intake
and the ledger); ``0xA700`` out of resources (the disk or the database failed: not
acknowledged, the count check retries the instance).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelGet,
)

from dicomhaven.collect._deliver import Delivering, Delivery
from dicomhaven.collect._pull import DimseSource, PacsAddress, RetrieveResult, retrieve_query

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = ["GetSource"]

log = logging.getLogger(__name__)

_SUCCESS = 0x0000
_OUT_OF_RESOURCES = 0xA700


class GetSource(Delivering, DimseSource):
    """A PACS reached over DICOM: C-FIND to query, C-GET to retrieve. Use it as a context
    manager: leaving the block finishes the ledger job of what it stored."""

    kind = "get"

    def __init__(
        self,
        address: PacsAddress,
        site: Site,
        *,
        drain_seconds: float = 60.0,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(address, timeout=timeout)
        self._delivery = Delivery(
            site, "pull-get", f"dicom:{address.ae_title}", drain_seconds=drain_seconds
        )

    def _on_store(self, event: Any) -> int:
        try:
            path = event.dataset_path  # set while a receiver of this process runs
            data = Path(path) if path is not None else event.encoded_dataset(include_meta=True)
            receipt = self._delivery.receipt(data)
            self._delivery.record([receipt])
        except Exception as exc:
            log.error("C-GET store failed", extra={"pacs": self.describe(),
                                                   "error": type(exc).__name__})  # fmt: skip
            return _OUT_OF_RESOURCES
        return _SUCCESS

    def retrieve(
        self, study_uid: str, series_uid: str, sop_uids: list[str] | None
    ) -> RetrieveResult:
        query = retrieve_query(study_uid, series_uid, sop_uids)
        ae = AE(ae_title=self.address.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self._timeout
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        roles: list[Any] = []  # we take the SCP role for the storage sub-operations
        for context in StoragePresentationContexts:  # 120 of them: with C-GET, under 128
            assert context.abstract_syntax is not None
            ae.add_requested_context(context.abstract_syntax)
            roles.append(build_role(context.abstract_syntax, scp_role=True))
        assoc = ae.associate(
            self.address.host, self.address.port, ae_title=self.address.ae_title,
            ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )  # fmt: skip
        if not assoc.is_established:
            log.warning("C-GET association failed", extra={"pacs": self.describe()})
            return RetrieveResult("no association")
        last: Dataset | None = None
        try:
            for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
                if status:
                    last = status
        finally:
            if assoc.is_established:
                assoc.release()
        return RetrieveResult.of_final(last)
