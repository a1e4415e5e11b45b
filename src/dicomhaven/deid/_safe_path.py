"""The safe path for one object: identity and consent, headers, pixels, the independent scan.

``dicomhaven deid`` and ``dicomhaven redact`` run these steps on each file of a folder (see
:mod:`dicomhaven.deid._folder`); each step is a function of one object and the run's
:class:`SafePath`, so the pipeline's stages can call the same pieces:

1. :func:`identify`: the master pseudonym from the vault (:func:`resolve_patient`, as the
   identity stage does) and the consent register: a withdrawn patient goes no further.
2. :func:`deidentify_headers`: the header engine, on the bytes first
   (:func:`~dicomhaven.deid._stream.rewrite_bytes`) and with pydicom when the byte path
   declines.
3. :func:`clean_image`: :func:`~dicomhaven.pixels.clean_pixels` (triage on the header as
   received, OCR, blanking, verification); overlays and encapsulated documents, which
   nothing reads yet, hold the object. Head CT and MR slices wait for their series
   (:func:`head_slice`) and are defaced as a volume by the folder run.
4. :func:`scan_copy`: the residual-PII scanner reads the written copy from disk, on its
   own, with the rules of the chosen level; a failure holds the copy.

A :class:`Hold` names the step and says why in our own words, never with a value.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataset import Dataset

from dicomhaven.deid._engine import (
    HEADERS_ONLY_METHOD,
    DeidContext,
    deidentify,
    mark_pixels_not_checked,
)
from dicomhaven.deid._layers import ProfileLayers
from dicomhaven.deid._stage import unchecked_content
from dicomhaven.deid._stream import Rewritten, rewrite_bytes
from dicomhaven.errors import ConfigError, DicomHavenError, DiskFull, UnsafeContent
from dicomhaven.identity import SITE_PROJECT
from dicomhaven.scan._rules import Action
from dicomhaven.scan._scanner import Scanner, ScanResult

if TYPE_CHECKING:  # the pixel step is imported when it runs: --headers-only never reads pixels
    from dicomhaven.pixels._clean import PixelPolicy, PixelResult
    from dicomhaven.pixels._templates import TemplateStore

__all__ = [
    "CONSENT_WITHDRAWN",
    "HEADERS_ONLY_METHOD",
    "Hold",
    "Identity",
    "PixelCheck",
    "SafePath",
    "ScanScope",
    "Step",
    "clean_image",
    "deidentify_headers",
    "head_slice",
    "identify",
    "keyed_name",
    "mark_pixels_not_checked",
    "read_dataset",
    "scan_copy",
]

CONSENT_WITHDRAWN = "consent withdrawn"
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


class Step(StrEnum):
    """Where on the safe path an object stopped."""

    READ = "read"
    IDENTITY = "identity"
    HEADERS = "headers"
    PIXELS = "pixels"
    DEFACE = "deface"
    SCAN = "scan"
    WRITE = "write"  # the copy cannot be written, or its name in OUT holds another copy


class PixelCheck(StrEnum):
    """Whether the pixels are made safe, or only marked as not checked."""

    CHECKED = "checked"  # triage, OCR, blanking, verification; head volumes defaced
    HEADERS_ONLY = "headers-only"  # pixels never read; every copy marked as not checked


class ScanScope(StrEnum):
    """What of a copy the independent scan judges."""

    WHOLE = "whole"  # every element (deid)
    PIXELS = "pixels"  # only what OCR reads in the pixels (redact: the headers are kept)


@dataclass(frozen=True)
class Hold:
    """Why an object was not written to OUT: the step, our own words, and the scan's
    findings as shapes and rule ids (never values)."""

    step: Step
    reason: str
    findings: tuple[dict[str, str], ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"stage": self.step.value, "reason": self.reason, "findings": list(self.findings)}


@dataclass(frozen=True)
class Identity:
    """A header's patient: the master pseudonym, the project's, and the header engine's
    context (None when the header step is skipped)."""

    master: str
    pseudonym: str
    context: DeidContext | None


@dataclass
class SafePath:
    """One run's settings and services: what every step needs besides the object."""

    site_root: Path
    site_key: bytes
    scanner: Scanner
    #: The header engine's profiles; None skips the header step (``redact``).
    profiles: ProfileLayers | None
    project: str = SITE_PROJECT
    pixels: PixelCheck = PixelCheck.CHECKED
    policy: PixelPolicy | None = None
    templates: TemplateStore | None = None
    scope: ScanScope = ScanScope.WHOLE

    @classmethod
    def for_site(
        cls,
        site_root: Path,
        *,
        profiles: ProfileLayers | None,
        project: str = SITE_PROJECT,
        pixels: PixelCheck = PixelCheck.CHECKED,
        policy: PixelPolicy | None = None,
        templates: TemplateStore | None = None,
    ) -> SafePath:
        """The run's services from the site: the scanner is the release gate's (the site's
        review decisions and rule files), at the level of the chosen profile."""
        from dicomhaven.scan._rules import load_rules
        from dicomhaven.scan._stage import gate_services
        from dicomhaven.site import open_site

        site = open_site(site_root)
        if profiles is None:  # redact: only what OCR reads in the pixels is judged
            level = "limited-access"
            ocr, scope = pixels is PixelCheck.CHECKED, ScanScope.PIXELS
        else:
            level = profiles.base.level
            ocr = site.settings.scan_pixels and pixels is PixelCheck.CHECKED
            scope = ScanScope.WHOLE
        rule_files = [p for p in gate_services(site.root).rule_files if p.exists()]
        scanner = Scanner(load_rules(rule_files, level=level), ocr=ocr)
        return cls(
            site_root=site.root,
            site_key=site.site_key(),
            scanner=scanner,
            profiles=profiles,
            project=project,
            pixels=pixels,
            policy=_site_policy(policy, site.settings.max_pixel_bytes, pixels),
            templates=templates,
            scope=scope,
        )


def _site_policy(
    policy: PixelPolicy | None, max_pixel_bytes: int, pixels: PixelCheck
) -> PixelPolicy | None:
    """The pixel policy with the site's limit on pixel bytes; none when pixels are not read."""
    if pixels is PixelCheck.HEADERS_ONLY:
        return policy
    from dicomhaven.pixels._clean import PixelPolicy

    return replace(policy or PixelPolicy(), max_pixel_bytes=max_pixel_bytes)


def keyed_name(site_key: bytes, value: str) -> str:
    """A name for a file that has no new UIDs: a keyed hash (HMAC-SHA256 with the site key)
    of a value that may identify, as intake names its files."""
    return hmac.new(site_key, value.encode(), hashlib.sha256).hexdigest()[:40]


def identify(path: SafePath, header: Dataset) -> Identity | Hold:
    """The header's patient from the vault, unless they withdrew consent."""
    from dicomhaven.identity._stage import (
        consent_excluded,
        known_values,
        project_keys,
        resolve_patient,
    )

    resolution = resolve_patient(path.site_root, header)
    if resolution.pseudonym is None:
        return Hold(Step.IDENTITY, resolution.problem or "no patient identifier")
    master = resolution.pseudonym
    # The identity stage's own register (asked once per patient during a folder run).
    if consent_excluded(path.site_root, master):
        return Hold(Step.IDENTITY, CONSENT_WITHDRAWN)
    keys = project_keys(path.site_root, path.project)
    pseudonym = master if path.project == SITE_PROJECT else keys.pseudonym(master)
    if path.profiles is None:
        return Identity(master, pseudonym, None)
    known = known_values(path.site_root, master)
    return Identity(master, pseudonym, DeidContext(keys, master, pseudonym, known))


def read_dataset(data: bytes) -> Dataset:
    """``data`` read whole by pydicom, holding no reference to it.

    A data set read from a buffer keeps the buffer (for deferred reads, which this never
    makes), and with it the file's bytes: a second copy of a large image for as long as
    the data set lives."""
    dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    dataset.buffer = None
    return dataset


def deidentify_headers(
    path: SafePath, data: bytes, header: Dataset, identity: Identity
) -> tuple[Dataset | Rewritten, str] | Hold:
    """The object with its headers de-identified, and the composed profile's sha256.

    On the bytes when the byte path can be exact; an object with pixel data, overlays or
    a document comes back as a data set (the pixel step and the marking work on one),
    unless its pixels are not read and the bytes are marked as not checked already
    (``Rewritten.pixels_not_checked``)."""
    if path.profiles is None or identity.context is None:
        raise ConfigError("the header step needs a profile")
    profile = path.profiles.for_header(header)
    # --headers-only: a copy with pixels is marked as not checked on the bytes too (only
    # if that gives the bytes pydicom would write; else it is read and marked below)
    mark_if = _has_unchecked if path.pixels is PixelCheck.HEADERS_ONLY else None
    rewritten = rewrite_bytes(data, profile, identity.context, mark_if=mark_if)
    if rewritten is not None and rewritten.study_instance_uid and rewritten.sop_instance_uid:
        if rewritten.pixels_not_checked or unchecked_content(rewritten.top_level_tags) is None:
            return rewritten, profile.sha256
        return read_dataset(rewritten.data), profile.sha256
    dataset = read_dataset(data)
    try:
        deidentify(dataset, profile, identity.context)
    except UnsafeContent as exc:  # names the attribute, never the value
        return Hold(Step.HEADERS, str(exc))
    except (ConfigError, OSError):
        raise
    except Exception as exc:  # the text may quote a value: keep only the type
        return Hold(Step.HEADERS, f"could not be de-identified ({type(exc).__name__})")
    if "StudyInstanceUID" not in dataset or "SOPInstanceUID" not in dataset:
        return Hold(Step.HEADERS, "no Study or SOP Instance UID to name the copy by")
    return dataset, profile.sha256


def _has_unchecked(top_level_tags: frozenset[int]) -> bool:
    return unchecked_content(top_level_tags) is not None


def head_slice(original: Dataset, copy: Dataset) -> str | None:
    """Why an image must be decided with its series (a head CT or MR slice: the
    pixel stage's :data:`~dicomhaven.pixels.AWAITS_DEFACING`) or held (a picture rendered
    from a head), judged on the header as received; None for any other object. ``copy``
    is the data set with its pixels (``original`` was read without them)."""
    from dicomhaven.pixels._stage import head_volume_slice

    if not _has_pixels(copy):
        return None
    return head_volume_slice(original)


def _has_pixels(header: Dataset) -> bool:
    return bool(set(header.keys()) & _PIXEL_TAGS)


def clean_image(
    path: SafePath, dataset: Dataset, original: Dataset, identity: Identity
) -> PixelResult | Hold | None:
    """Make ``dataset``'s pixels safe in place (None: it has none), or say why not.

    Triage is decided on ``original``, the header as received: de-identification removes
    the descriptions that say an image is a screen or a dose sheet. Pixels the step fails
    on (a decoder's error on an odd file) hold the copy: one file does not end the run."""
    from dicomhaven.pixels._clean import PixelOutcome, clean_pixels
    from dicomhaven.pixels._stage import patient_known_values

    tags = set(dataset.keys())
    other = unchecked_content(tags - _PIXEL_TAGS)
    if other is not None:  # overlays (Clean Graphics kept them), encapsulated documents
        return Hold(Step.PIXELS, f"{other} is not read by the pixel step")
    if not tags & _PIXEL_TAGS:
        return None
    known = patient_known_values(path.site_root, identity.master)
    try:
        result = clean_pixels(
            dataset,
            known,
            original=original,
            policy=path.policy,
            templates=path.templates,
            trusted_device=False,  # the device gate does not apply: no header NO is believed
        )
    except (ConfigError, DiskFull):
        raise  # the run's problem, not the file's
    except DicomHavenError as exc:  # our own words, never a value
        return Hold(Step.PIXELS, f"the pixels could not be made safe: {exc}")
    except Exception as exc:  # a library's text may quote a value: keep only the type
        return Hold(Step.PIXELS, f"the pixels could not be read ({type(exc).__name__})")
    if result.outcome is PixelOutcome.HELD:
        return Hold(Step.PIXELS, result.reason)
    return result


def scan_copy(
    path: SafePath, copy: Path, original: Dataset, identity: Identity
) -> tuple[ScanResult, Hold | None]:
    """Scan the written copy on its own (read from disk, with pydicom and the raw element
    walk, never the engine's byte path) for the patient's values and every rule."""
    from dicomhaven.scan._stage import gate_services

    known = gate_services(path.site_root).known(identity.master, original)
    result = path.scanner.scan_file(copy, known, pseudonym=identity.pseudonym)
    if path.scope is ScanScope.PIXELS:
        kept = [f for f in result.findings if f.keyword == "PixelData"]
        result = ScanResult(
            findings=kept,
            suppressions=result.suppressions,
            ocr_read=result.ocr_read,
            error=result.error,
        )
    if not result.failed:
        return result, None
    findings = tuple(
        {k: v for k, v in f.as_dict().items()} for f in result.findings if f.action is Action.FAIL
    )
    return result, Hold(Step.SCAN, f"scan failed: {result.reasons()}", findings)
