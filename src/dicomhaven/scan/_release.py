"""``dicomhaven release``: decide again about the copies the release gate holds.

After a data manager trusts a device, or a review changes the rules, the held copies are
scanned again (with the rules as they are now) and released or kept, through the same
:meth:`GateServices.decide` as the pipeline. Each change is one ledger event, so the ledger
stays consistent throughout; an interrupted run leaves every object in a valid status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from dicomhaven.catalogue import LedgerObject, ObjectStatus, make_engine, make_sessionmaker
from dicomhaven.catalogue._scan_models import GateHold
from dicomhaven.ledger import Ledger
from dicomhaven.pipeline import Decision
from dicomhaven.scan._devices import object_kind
from dicomhaven.scan._stage import gate_services, reset_gate_services

if TYPE_CHECKING:
    from dicomhaven.pixels._deface_held import DefaceSummary
    from dicomhaven.site import Site

__all__ = ["ReleaseSummary", "held_counts", "release_held", "render_samples"]


@dataclass
class ReleaseSummary:
    job_id: int
    considered: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    #: The held head series found complete at the end, defaced and offered for release.
    defaced: DefaceSummary | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "job": self.job_id,
            "considered": self.considered,
            "outcomes": dict(self.outcomes),
            "defaced": self.defaced.as_dict() if self.defaced is not None else None,
        }


def held_counts(site: Site) -> dict[str, int]:
    """How many copies the gate holds, by device (read from the catalogue alone: listing
    devices needs neither the vault nor the rules)."""
    from sqlalchemy import func

    with make_sessionmaker(make_engine(site.database_url))() as session:
        rows = session.execute(
            select(GateHold.device_id, func.count()).group_by(GateHold.device_id)
        )
        return {device: count for device, count in rows}


def release_held(
    site_root: Path,
    *,
    device: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReleaseSummary:
    """Scan and decide every held copy (of one device, if given); then deface the held head
    series that are complete (through the same gate, with the trust as it is now)."""
    import pydicom

    from dicomhaven.deid._stream import leading_elements
    from dicomhaven.pipeline._stage import LEADING_TAGS_END
    from dicomhaven.pixels._deface_held import deface_complete
    from dicomhaven.pixels._sampling import held_for_text, series_ends_with_text
    from dicomhaven.site import open_site

    reset_gate_services()  # rules and trust as they are now
    services = gate_services(site_root)
    site = open_site(site_root)
    ledger = Ledger(make_engine(site.database_url))
    job_id = ledger.start_job("release")
    summary = ReleaseSummary(job_id)
    query = (
        select(GateHold, LedgerObject.pseudonym, LedgerObject.intake_path, LedgerObject.status)
        .join(LedgerObject, LedgerObject.id == GateHold.object_id)
        .order_by(GateHold.object_id)
    )
    if device is not None:
        query = query.where(GateHold.device_id == device)
    with services.sessions() as session:
        rows = [(h.object_id, h.device_id, h.path, h.release_reason, p, i, s) for h, p, i, s in session.execute(query)]  # fmt: skip
    try:
        # Plain slices: the first, middle and last held of each series are read before any
        # is released; those showing text stay held, and their kind's trust is revoked.
        quarantined = [r for r in rows if r[6] == ObjectStatus.QUARANTINED.value]
        flagged = series_ends_with_text(site_root, [(r[0], r[1], r[2], r[5]) for r in quarantined], services)  # fmt: skip
        for object_id, device_id, relpath, reason, pseudonym, intake_path, status in rows:
            if status != ObjectStatus.QUARANTINED.value:
                services.unhold(object_id)  # decided since (purged, processed again)
                continue
            summary.considered += 1
            if object_id in flagged:
                ledger.settle(job_id, [Decision(object_id, held_for_text())])
                summary.outcomes[ObjectStatus.QUARANTINED.value] += 1
                continue
            intake_file = site.intake / intake_path
            data = intake_file.read_bytes()
            original = leading_elements(data, LEADING_TAGS_END)
            if original is None:
                original = pydicom.dcmread(intake_file, stop_before_pixels=True, force=True)
            known = services.known(pseudonym, original)
            result = services.scanner.scan_file(
                site_root / "quarantine" / relpath, known, pseudonym=pseudonym, device=device_id
            )
            kind = object_kind(original)  # trust is revoked and given back by kind
            outcome = services.decide(object_id, device_id, relpath, reason, result, kind)
            ledger.settle(job_id, [Decision(object_id, outcome)])
            summary.outcomes[outcome.status.value] += 1
            if progress is not None:
                progress(1)
    finally:
        ledger.finish_job(job_id, summary.as_dict())
    summary.defaced = deface_complete(site)
    return summary


def render_samples(site: Site, device: str, folder: Path, count: int = 5) -> list[Path]:
    """PNG renders of the first frame of up to ``count`` held copies of one device, for the
    data manager who decides whether to trust it (they go where the manager says, as the
    copies in quarantine would)."""
    import warnings

    import pydicom
    from PIL import Image

    from dicomhaven.pixels._clean import _images

    with make_sessionmaker(make_engine(site.database_url))() as session:
        paths = list(
            session.scalars(
                select(GateHold.path)
                .where(GateHold.device_id == device)
                .order_by(GateHold.object_id)
                .limit(count * 4)
            )
        )
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for index, relpath in enumerate(paths):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(site.zone("quarantine") / relpath, force=True)
        if "PixelData" not in dataset:
            continue
        try:
            [image] = _images(dataset, [0])
        except Exception:  # a copy that cannot be displayed is left for the manager to open
            continue
        target = folder / f"{device}-sample-{index + 1:02d}.png"
        Image.fromarray(image).save(target)
        written.append(target)
        if len(written) == count:
            break
    return written
