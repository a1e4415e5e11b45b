"""The catalogue of released objects: rebuilt from ``store/``, the copies themselves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dicomhaven.access import Action
from dicomhaven.services._core import Grant, service

if TYPE_CHECKING:
    from dicomhaven.site import Site

__all__ = ["CatalogueRebuild", "rebuild_catalogue"]

#: Called after each file with (files done, files in all).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CatalogueRebuild:
    files: int
    instances: int
    series: int
    studies: int
    failed: dict[str, int] = field(default_factory=dict)  # kind of failure -> files

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "instances": self.instances,
            "series": self.series,
            "studies": self.studies,
            "failed": self.failed,
        }


@service(Action.RUN_PIPELINE, target="catalogue", reason="catalogue rebuild")
def rebuild_catalogue(
    grant: Grant, site: Site, progress: Progress | None = None
) -> CatalogueRebuild:
    """Empty the index and refill it from every copy in ``store/``, in one transaction
    (readers see the old index until the new one is whole). A copy that cannot be read is
    counted by the kind of its failure, never named by a value from it."""
    import pydicom
    from sqlalchemy import func, select

    from dicomhaven.catalogue import (
        CatalogueInstance,
        CatalogueSeries,
        CatalogueStudy,
        make_engine,
        make_sessionmaker,
    )
    from dicomhaven.catalogue._query import clear_catalogue, index_copy

    store = site.root / "store"
    files = sorted(p for p in store.rglob("*") if p.is_file()) if store.is_dir() else []
    failed: dict[str, int] = {}
    sessions = make_sessionmaker(make_engine(site.database_url))
    with sessions.begin() as session:
        clear_catalogue(session)
        for done, path in enumerate(files, 1):
            try:
                header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
                with session.begin_nested():
                    index_copy(session, header, path.relative_to(store).as_posix())
            except Exception as exc:  # a bad copy is counted; the rest are indexed
                failed[type(exc).__name__] = failed.get(type(exc).__name__, 0) + 1
            if progress is not None:
                progress(done, len(files))
        counts = [
            session.scalar(select(func.count()).select_from(m)) or 0
            for m in (CatalogueInstance, CatalogueSeries, CatalogueStudy)
        ]
    instances, series, studies = counts
    return CatalogueRebuild(len(files), instances, series, studies, failed)
