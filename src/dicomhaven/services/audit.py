"""The hash-chained audit log: its chain checked, and its newest entries read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dicomhaven.access import Action, AuditLog, AuditProblem
from dicomhaven.catalogue import make_engine
from dicomhaven.services._core import Grant, service

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = ["ChainCheck", "show", "verify"]


@dataclass(frozen=True)
class ChainCheck:
    """Every break in the chain, by entry number (no entry's content)."""

    problems: list[AuditProblem]

    @property
    def intact(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"intact": self.intact, "problems": [p.__dict__ for p in self.problems]}


@service(Action.VERIFY_AUDIT)
def verify(grant: Grant, site: Site) -> ChainCheck:
    """Recompute the chain: an entry changed, inserted or removed is named by its number."""
    return ChainCheck(AuditLog(make_engine(site.database_url)).verify())


@service(Action.READ_AUDIT, target="audit log")
def show(grant: Grant, site: Site, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, oldest first (this reading is the newest of them)."""
    entries = AuditLog(make_engine(site.database_url)).entries(limit)
    return [
        {"id": e.id, "at": e.at, "actor": e.actor, "role": e.role, "action": e.action,
         "target": e.target, "reason": e.reason, "outcome": e.outcome}
        for e in entries
    ]  # fmt: skip
