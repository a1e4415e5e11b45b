"""The ledger's counts, checked: every object accounted for, and (deep) the site's modes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dicomhaven.access import Action
from dicomhaven.catalogue import make_engine
from dicomhaven.services._core import Grant, service

if TYPE_CHECKING:
    from dicomhaven.ledger import LedgerReport
    from dicomhaven.site import Site

__all__ = ["LedgerCheck", "check"]


@dataclass(frozen=True)
class LedgerCheck:
    report: LedgerReport
    rejections: list[tuple[str, int]]  # (reason, objects), commonest first

    @property
    def consistent(self) -> bool:
        return bool(self.report.consistent)

    def as_dict(self) -> dict[str, Any]:
        return self.report.as_dict() | {"reasons": self.rejections}


@service(Action.READ_LEDGER)
def check(grant: Grant, site: Site, deep: bool = False) -> LedgerCheck:
    """Counts by status and the invariant checked; ``deep`` also re-hashes every intake
    file and lists each folder or file of the site open to group or others."""
    from dicomhaven.ledger import Ledger
    from dicomhaven.site import permission_problems

    book = Ledger(make_engine(site.database_url))
    report = book.verify(site.intake, check_content=deep)
    if deep:  # a zone or file open to group or others breaks the restricted zones
        report.problems.extend(permission_problems(site))
    return LedgerCheck(report, book.rejections())
