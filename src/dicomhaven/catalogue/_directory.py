"""The directory's published cells: counts with small-number suppression (issue 13 item 6).

:func:`publish_directory` counts patients (distinct pseudonyms) and series from the
catalogue index for a fixed set of dimensions and cross-tabs, suppresses every cell whose
patient count is below the threshold, rounds the rest to a multiple of ``rounding`` and
stores the result. Readers (:func:`read_cells`) only ever see these stored cells, never
the index, so two overlapping queries cannot be subtracted to recover a suppressed count:

- a total (a dimension's, or a cross-tab row's margin) is the sum of the *published*
  rounded cells, so ``total - visible cells`` is always 0;
- every published number is a multiple of ``rounding``, so no difference of two of them
  equals a count that is not;
- a row or column of a table with exactly one suppressed cell gets a second
  (complementary) suppression, its smallest visible cell.

Exceptions: :class:`NotPublished`, :class:`NotPublic` (each a :class:`~dicomhaven.errors.DicomHavenError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from dicomhaven.catalogue._index_models import CatalogueSeries
from dicomhaven.catalogue._models import Base
from dicomhaven.errors import DicomHavenError

__all__ = [
    "CROSS_TABS",
    "DIMENSIONS",
    "TOTAL",
    "DirectoryCell",
    "DirectoryView",
    "NotPublic",
    "NotPublished",
    "PublishedCell",
    "publish_directory",
    "read_cells",
    "read_public_cells",
]

#: A directory dimension's name -> the series column it counts.
DIMENSIONS: dict[str, str] = {
    "modality": "modality",
    "body_part": "body_part_code",
    "age_band": "age_band",
    "sex": "sex",
    "study_year": "study_year",
    "manufacturer": "manufacturer",
    "model": "model",
}

#: The two-way tables published (dimension, by); nothing else is ever computed.
CROSS_TABS: tuple[tuple[str, str], ...] = (
    ("modality", "body_part"),
    ("modality", "study_year"),
    ("manufacturer", "model"),
)

#: The ``by_value`` (cross-tab) or ``value`` (single dimension) of a total row.
TOTAL = "*"


class NotPublished(DicomHavenError):
    """A directory query for a combination that is not a published table."""


class NotPublic(DicomHavenError):
    """An anonymous directory query on a site whose directory is for signed-in users."""


class DirectoryCell(Base):
    """One published cell: counts are None when suppressed; never read from the index."""

    __tablename__ = "directory_cells"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dimension: Mapped[str] = mapped_column(String(32), index=True)
    by: Mapped[str] = mapped_column(String(32), index=True)  # "" for a single dimension
    value: Mapped[str] = mapped_column(String(128))
    by_value: Mapped[str] = mapped_column(String(128))
    patients: Mapped[int | None] = mapped_column(Integer)
    series: Mapped[int | None] = mapped_column(Integer)
    threshold: Mapped[int] = mapped_column(Integer)
    rounding: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class PublishedCell:
    value: str
    by_value: str
    patients: int | None  # None: suppressed
    series: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "by_value": self.by_value,
            "patients": self.patients,
            "series": self.series,
        }


@dataclass(frozen=True)
class DirectoryView:
    """A published table and the rules it was published under (both shown on the page)."""

    dimension: str
    by: str | None
    threshold: int
    rounding: int
    cells: tuple[PublishedCell, ...]  # totals have TOTAL as value (or by_value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "by": self.by,
            "threshold": self.threshold,
            "rounding": self.rounding,
            "cells": [c.as_dict() for c in self.cells],
        }


def _round(count: int, rounding: int) -> int:
    return (count + rounding // 2) // rounding * rounding


def _key(value: object) -> str:
    return "" if value is None else str(value)


def _raw(session: Session, columns: Sequence[str]) -> dict[tuple[str, ...], tuple[int, int]]:
    """Raw (patients, series) per combination of ``columns``: only this module reads them."""
    cols = [getattr(CatalogueSeries, c) for c in columns]
    query = select(
        *cols, func.count(func.distinct(CatalogueSeries.pseudonym)), func.count()
    ).group_by(*cols)
    return {
        tuple(_key(v) for v in row[:-2]): (int(row[-2]), int(row[-1]))
        for row in session.execute(query)
    }


def _complement(suppressed: set[tuple[str, ...]], cells: dict[tuple[str, ...], int]) -> None:
    """Suppress a second cell in any line (row or column) with exactly one suppressed cell,
    until none is left: a line's margin and its visible cells then bound two unknowns."""
    axes = len(next(iter(cells))) if cells else 0
    changed = True
    while changed:
        changed = False
        for axis in range(axes):
            lines: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
            for key in cells:
                lines.setdefault(key[:axis] + key[axis + 1 :], []).append(key)
            for members in lines.values():
                hidden = [k for k in members if k in suppressed]
                visible = sorted(
                    (k for k in members if k not in suppressed), key=lambda k: cells[k]
                )
                if len(hidden) == 1 and visible:
                    suppressed.add(visible[0])
                    changed = True


def _table(
    raw: dict[tuple[str, ...], tuple[int, int]], threshold: int, rounding: int
) -> list[tuple[tuple[str, ...], int | None, int | None]]:
    suppressed = {k for k, (patients, _) in raw.items() if patients < threshold}
    _complement(suppressed, {k: p for k, (p, _) in raw.items()})
    return [
        (k, None, None) if k in suppressed else (k, _round(p, rounding), _round(s, rounding))
        for k, (p, s) in sorted(raw.items())
    ]


def publish_directory(session: Session, threshold: int, rounding: int) -> int:
    """Replace the published cells with ones counted now; the number of cells written."""
    if threshold < 2 or rounding < 1:
        raise ValueError(f"threshold >= 2 and rounding >= 1 expected, got {threshold}, {rounding}")
    now = datetime.now(UTC)
    session.execute(delete(DirectoryCell))
    rows: list[DirectoryCell] = []

    def cell(dim: str, by: str, value: str, by_value: str, p: int | None, s: int | None) -> None:
        rows.append(
            DirectoryCell(
                dimension=dim, by=by, value=value, by_value=by_value, patients=p, series=s,
                threshold=threshold, rounding=rounding, published_at=now,
            )
        )  # fmt: skip

    for name, column in DIMENSIONS.items():
        table = _table(_raw(session, [column]), threshold, rounding)
        for (value,), p, s in table:
            cell(name, "", value, "", p, s)
        cell(name, "", TOTAL, "", *_sums(t[1:] for t in table))
    for name, by in CROSS_TABS:
        table = _table(_raw(session, [DIMENSIONS[name], DIMENSIONS[by]]), threshold, rounding)
        margins: dict[str, list[tuple[int | None, int | None]]] = {}
        for (value, by_value), p, s in table:
            cell(name, by, value, by_value, p, s)
            margins.setdefault(value, []).append((p, s))
        for value, counts in margins.items():
            cell(name, by, value, TOTAL, *_sums(counts))
    session.add_all(rows)
    session.flush()
    return len(rows)


def _sums(counts: Any) -> tuple[int, int]:
    """A margin from published cells only: suppressed ones count as nothing."""
    pairs = list(counts)
    return sum(p or 0 for p, _ in pairs), sum(s or 0 for _, s in pairs)


def read_cells(session: Session, dimension: str, by: str | None = None) -> DirectoryView:
    """A published table; :class:`NotPublished` for any other combination or before the
    first publication. Never reads the index."""
    if dimension not in DIMENSIONS or (by is not None and (dimension, by) not in CROSS_TABS):
        tables = list(DIMENSIONS) + [f"{d} by {b}" for d, b in CROSS_TABS]
        raise NotPublished(
            f"the directory publishes {', '.join(tables)}; "
            f"{dimension!r}{f' by {by!r}' if by else ''} is not published"
        )
    rows = session.scalars(
        select(DirectoryCell)
        .where(DirectoryCell.dimension == dimension, DirectoryCell.by == (by or ""))
        .order_by(DirectoryCell.id)
    ).all()
    if not rows:
        raise NotPublished("the directory has not been published yet: run its publish first")
    return DirectoryView(
        dimension, by, rows[0].threshold, rows[0].rounding,
        tuple(PublishedCell(r.value, r.by_value, r.patients, r.series) for r in rows),
    )  # fmt: skip


def read_public_cells(
    session: Session, public: bool, dimension: str, by: str | None = None
) -> DirectoryView:
    """:func:`read_cells` for a caller who has not signed in: only where the site's
    ``directory_public`` setting (passed as ``public``) says the directory is public."""
    if not public:
        raise NotPublic("sign in to browse the directory (directory_public is false)")
    return read_cells(session, dimension, by)
