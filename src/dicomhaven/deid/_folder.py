"""De-identifying a folder of files outside the pipeline (``dicomhaven deid IN OUT``).

Each readable file's patient is found in the vault (created there if new), its headers are
de-identified with the chosen profile, and it is written as
``OUT/<pseudonym>/<study UID>/<SOP Instance UID>.dcm`` — names made only of the pseudonym
and new UIDs. Pixel data passes through untouched: this is the header stage only, so the
summary counts files whose pixels (or overlays, or encapsulated documents) may still hold
burned-in text.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from dicomhaven.collect import read_files
from dicomhaven.deid._engine import DeidContext, deidentify, write_dataset
from dicomhaven.deid._layers import ProfileLayers
from dicomhaven.deid._stage import unchecked_content
from dicomhaven.deid._stream import leading_elements, rewrite_bytes, write_bytes
from dicomhaven.errors import ConfigError, UnsafeContent
from dicomhaven.identity import SITE_PROJECT
from dicomhaven.identity._stage import known_values, project_keys, resolve_patient
from dicomhaven.intake import ParsedObject, parse_object
from dicomhaven.site import Site

__all__ = ["DeidSummary", "deidentify_paths"]


@dataclass
class DeidSummary:
    files: int = 0
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input path, reason)
    burned_in_unknown: int = 0  # written, but pixels not yet checked for burned-in text
    statuses: Counter[str] = field(default_factory=Counter)
    #: One line per file: input path, "written" or "skipped", and the output (relative to
    #: OUT, made of the pseudonym and new UIDs only) or the reason.
    results: list[tuple[str, str, str]] = field(default_factory=list)
    profiles: Counter[str] = field(default_factory=Counter)  # composed profile's sha256 → files

    def skip(self, path: Path, reason: str) -> None:
        self.skipped.append((str(path), reason))
        self.results.append((str(path), "skipped", reason))

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "written": self.written,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "pixels_not_checked": self.burned_in_unknown,
            "profiles": dict(self.profiles),
            "results": [
                {"path": p, "status": s, ("output" if s == "written" else "reason"): d}
                for p, s, d in self.results
            ],
        }


def _context(site: Site, header: pydicom.Dataset, project: str) -> tuple[DeidContext, str] | str:
    """The de-identification context of a header's patient, or why there is none."""
    resolution = resolve_patient(site.root, header)
    if resolution.pseudonym is None:
        return resolution.problem or "no patient identifier"
    master = resolution.pseudonym
    keys = project_keys(site.root, project)
    pseudonym = master if project == SITE_PROJECT else keys.pseudonym(master)
    return DeidContext(keys, master, pseudonym, known_values(site.root, master)), pseudonym


#: The last top-level tag the patient's context and the profile's layers need: the patient
#: module (group 0010) and the device attributes (Software Versions is (0018,1020)).
_CONTEXT_TAGS_END = 0x0018FFFF


def _on_bytes(
    site: Site,
    path: Path,
    data: bytes,
    out: Path,
    profiles: ProfileLayers,
    project: str,
    summary: DeidSummary,
) -> bool:
    """De-identify ``data`` on its bytes (see :mod:`dicomhaven.deid._stream`): the header is
    read only as far as the patient and the device, kept elements are copied, not parsed.
    False when the byte path declines, and the caller reads the file with pydicom."""
    header = leading_elements(data, _CONTEXT_TAGS_END)
    if header is None:
        return False
    found = _context(site, header, project)
    if isinstance(found, str):
        return False  # the pydicom path says why, in its own words
    context, pseudonym = found
    profile = profiles.for_header(header)
    rewritten = rewrite_bytes(data, profile, context)
    if rewritten is None or not rewritten.study_instance_uid or not rewritten.sop_instance_uid:
        return False
    target = out / pseudonym / rewritten.study_instance_uid / f"{rewritten.sop_instance_uid}.dcm"
    write_bytes(rewritten.parts, target)
    summary.written += 1
    summary.profiles[profile.sha256] += 1
    summary.results.append((str(path), "written", str(target.relative_to(out))))
    if unchecked_content(rewritten.top_level_tags) is not None:
        summary.burned_in_unknown += 1
    return True


def deidentify_paths(
    site: Site,
    paths: Sequence[Path],
    out: Path,
    profiles: ProfileLayers,
    *,
    project: str = SITE_PROJECT,
    progress: Callable[[int], None] | None = None,
) -> DeidSummary:
    """De-identify every readable DICOM file under ``paths`` into ``out``."""
    summary = DeidSummary()
    for path, data in read_files(paths, progress):
        summary.files += 1
        if isinstance(data, str):
            summary.skip(path, data)
            continue
        if _on_bytes(site, path, data, out, profiles, project, summary):
            continue
        parsed = parse_object(data)
        if not isinstance(parsed, ParsedObject):
            summary.skip(path, parsed.reason)
            continue
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        found = _context(site, dataset, project)
        if isinstance(found, str):
            summary.skip(path, found)
            continue
        context, pseudonym = found
        profile = profiles.for_header(dataset)
        try:
            deidentify(dataset, profile, context)
            target = (
                out / pseudonym / str(dataset.StudyInstanceUID) / f"{dataset.SOPInstanceUID}.dcm"
            )
            write_dataset(dataset, target)
        except (ConfigError, OSError):
            raise
        except UnsafeContent as exc:  # names the attribute, never the value
            summary.skip(path, str(exc))
            continue
        except Exception as exc:  # the text may quote a value: keep only the type
            summary.skip(path, f"could not be de-identified ({type(exc).__name__})")
            continue
        summary.written += 1
        summary.profiles[profile.sha256] += 1
        summary.results.append((str(path), "written", str(target.relative_to(out))))
        if unchecked_content(dataset) is not None:
            summary.burned_in_unknown += 1
    return summary
