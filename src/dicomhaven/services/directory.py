"""The directory (issue 13 item 6): publish suppressed counts, browse the published ones.

A caller who has not signed in has no :data:`Caller`; a face serves them through
:func:`dicomhaven.catalogue._directory.read_public_cells`, which reads the same published
cells only when the site's ``directory_public`` setting allows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomhaven.access import Action
from dicomhaven.services._core import Grant, service

if TYPE_CHECKING:
    from dicomhaven.catalogue._directory import DirectoryView
    from dicomhaven.site import Site

__all__ = ["browse", "publish"]


@service(Action.RUN_PIPELINE, target="directory", reason="directory publish")
def publish(grant: Grant, site: Site) -> int:
    """Recount the directory from the catalogue index under the site's threshold and
    rounding, replacing what was published; the number of cells published."""
    from dicomhaven.catalogue import make_engine, make_sessionmaker
    from dicomhaven.catalogue._directory import publish_directory

    settings = site.settings
    with make_sessionmaker(make_engine(site.database_url)).begin() as session:
        return publish_directory(session, settings.directory_threshold, settings.directory_rounding)


@service(Action.BROWSE_DIRECTORY, target="directory {dimension}")
def browse(grant: Grant, site: Site, dimension: str, by: str | None = None) -> DirectoryView:
    """A published table with the threshold and rounding it was published under; refused
    (``NotPublished``) for a combination that is not published, never computed."""
    from dicomhaven.catalogue import make_engine, make_sessionmaker
    from dicomhaven.catalogue._directory import read_cells

    with make_sessionmaker(make_engine(site.database_url))() as session:
        return read_cells(session, dimension, by)
