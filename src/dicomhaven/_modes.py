"""File modes of everything a site holds: owner only, since any zone may hold identifiable
data. A module of its own, with no imports, so the command line can set the umask before
anything else runs without loading the site's machinery."""

from __future__ import annotations

__all__ = ["FILE_MODE", "FOLDER_MODE", "SITE_UMASK"]

FOLDER_MODE = 0o700  # owner only
FILE_MODE = 0o600
SITE_UMASK = 0o077  # what the command line and the pipeline's workers run with
