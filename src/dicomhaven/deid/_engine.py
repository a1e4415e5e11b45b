"""The header de-identifier: applies a profile to one data set, at every depth.

For each element, in every sequence item at any depth:

1. private elements are removed, except, under the Retain Safe Private Option, those the
   standard lists as safe (Table E.3.10-1) or the profile adds as known safe; a private
   creator stays only while its block keeps an element;
2. Patient ID and Patient's Name become the pseudonym the caller gives;
3. the profile's ``keep`` and ``remove`` lists apply;
4. an attribute named in Table E.1-1 gets its action under the profile's options, combined
   codes resolved by the attribute's Type in the object's IOD (so Type 1 and 2 attributes
   are given dummies or emptied, never deleted);
5. an attribute the table does not name is kept, except that UIDs not defined by the
   standard are remapped, person names are removed (or emptied where the IOD needs them),
   dates follow the date option, free text is cleaned, and public elements of unknown VR
   are removed (they may hide text); URLs and AE titles (UR, AE) are removed at the
   publication level and cleaned at limited access; the parts of a code are kept only
   when they make a recognised code of a known scheme (``_codes``), else cleaned;
6. overlay (60xx) and curve (50xx) groups are removed whole, and the text of graphic
   annotations becomes a dummy, unless the Clean Graphics Option keeps them with their
   text cleaned (the overlay bitmaps are pixels, checked by the pixel stage).

UIDs map to ``2.25.`` UIDs keyed by the project's secret, so the same input UID gives the
same output everywhere and references keep resolving. Dates move by the patient's own
offset. The output records Patient Identity Removed, the method with the profile's hash,
and the standard's codes for the profile and each option; its file meta is rebuilt from an
allow-list and its preamble is zeros.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicomhaven import __version__
from dicomhaven.deid._codes import CODE_PARTS, CODE_TAGS, code_verdict
from dicomhaven.deid._iod import AttributeType, attribute_types, resolve_action
from dicomhaven.deid._profile import PrivateTag, Profile
from dicomhaven.deid._safe_private import SAFE_PRIVATE, SAFE_PRIVATE_SEQUENCES
from dicomhaven.deid._table import Option, attribute_rule, content_item_rules
from dicomhaven.deid._text import TextCleaner
from dicomhaven.errors import UnsafeContent
from dicomhaven.identity import ProjectKeys

__all__ = [
    "HEADERS_ONLY_METHOD",
    "IMPLEMENTATION_CLASS_UID",
    "DeidContext",
    "deidentify",
    "mark_pixels_not_checked",
    "write_dataset",
]

#: The value added to De-identification Method (0012,0063) of every copy whose pixels were
#: not read (``--headers-only``): the copy itself says so, wherever it goes.
HEADERS_ONLY_METHOD = "dicomhaven headers only; pixels not checked"

_IDENTIFYING_KEYWORDS = frozenset(
    {"PatientID", "PatientBirthDate", "PatientAddress", "PatientTelephoneNumbers",
     "AccessionNumber", "InstitutionName", "InstitutionAddress", "StationName",
     "MedicalRecordLocator", "OtherPatientIDs", "RequestedProcedureID", "StudyID"}
)  # fmt: skip
#: Text that names a template or a product, never a person: left uncleaned. The parts of
#: a code (Code Value, Code Meaning, ...) are decided by the code they make (``_codes``).
_CODED_TEXT = frozenset(
    {"ContextIdentifier", "MappingResource", "Manufacturer", "ManufacturerModelName",
     "SoftwareVersions", "SOPClassUID"}
)  # fmt: skip
#: Never made the dummy text of a sequence given a dummy: codes stay codes.
_NOT_DUMMY_TEXT = _CODED_TEXT | CODE_PARTS
#: Names of the patient's own, whose parts are cut from text whatever their length.
_PATIENT_NAMES = frozenset(
    {"PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName"}
)
#: dicomhaven's own implementation, written into every output's file meta. dicomhaven has
#: no registered root of its own, so the UID is under pydicom's (the library it writes
#: with), made once by ``generate_uid(PYDICOM_ROOT_UID, ["dicomhaven implementation
#: class"])``: fixed, and recognised by the residual-PII scanner as the writer's own.
IMPLEMENTATION_CLASS_UID = UID("1.2.826.0.1.3680043.8.498.83043461745194922504371407585034968871")
IMPLEMENTATION_VERSION_NAME = f"DICOMHAVEN_{__version__}".replace(".", "_")[:16]
#: Private values of these VRs, kept as safe, are cleaned as text (and binary ones that
#: turn out to be text): a vendor's "safe" element may still hold a typed name.
_PRIVATE_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN", "AE", "UR", "CS"})
_PRIVATE_BINARY_VRS = frozenset({"OB", "OW", "UN", "OB or OW"})
#: UIDs that identify a registry entry (a coding scheme, a mapping resource), not an object.
_REGISTRY_UIDS = frozenset(
    {"CodingSchemeUID", "MappingResourceUID", "ContextGroupExtensionCreatorUID",
     "TemplateExtensionOrganizationUID", "TemplateExtensionCreatorUID", "ContextUID"}
)  # fmt: skip
_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})
#: Where an SR content item of each value type holds its value.
_CONTENT_VALUE_TAGS = {
    "TEXT": 0x0040A160, "PNAME": 0x0040A123, "DATE": 0x0040A121, "TIME": 0x0040A122,
    "DATETIME": 0x0040A120, "NUM": 0x0040A300, "CODE": 0x0040A168,
}  # fmt: skip
_REFERENCE_VALUE_TYPES = frozenset({"IMAGE", "COMPOSITE", "WAVEFORM", "UIDREF"})
#: Binary values that are pixels: the pixel stage's, not searched for text here.
_PIXEL_KEYWORDS = frozenset(
    {"PixelData", "FloatPixelData", "DoubleFloatPixelData", "OverlayData",
     "SpectroscopyData"}
)  # fmt: skip
#: Runs of printable text inside binary data: single-byte, and UTF-16 little endian.
_TEXT_RUNS = re.compile(rb"[\x20-\x7e]{4,}|(?:[\x20-\x7e]\x00){4,}")
_TYPES_REQUIRED = frozenset(
    {AttributeType.TYPE_1, AttributeType.TYPE_1C, AttributeType.TYPE_2, AttributeType.TYPE_2C}
)
_PATIENT_IDENTITY = frozenset({0x00100010, 0x00100020})
_DUMMIES: dict[str, object] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "PN": "ANONYMOUS",
    "LO": "ANONYMOUS",
    "SH": "ANONYMOUS",
    "ST": "ANONYMOUS",
    "LT": "ANONYMOUS",
    "UT": "ANONYMOUS",
    "UC": "ANONYMOUS",
    "CS": "ANONYMOUS",
    "AE": "ANONYMOUS",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "FL": 0.0,
    "FD": 0.0,
}
#: PS3.16 CID 7050 codes (DCM) for the profile and each option, for De-identification
#: Method Code Sequence.
_METHOD_CODES: dict[Option | None, tuple[str, str]] = {
    None: ("113100", "Basic Application Confidentiality Profile"),
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONGITUDINAL_FULL_DATES: (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
}


@functools.lru_cache(maxsize=8192)
def _keyword(tag: int) -> str:
    return keyword_for_tag(tag)


def _vr(element: object, tag: int) -> str:
    """An element's VR, from the file when it says (explicit VR) or else the dictionary. A
    standard element the file calls UN has its dictionary VR, as pydicom reads it."""
    vr = getattr(element, "VR", None)
    if vr == "UN" and not BaseTag(tag).is_private:
        try:
            return str(dictionary_VR(tag))
        except KeyError:
            return "UN"
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


@dataclass(frozen=True)
class DeidContext:
    """What de-identifying one patient's object needs besides the profile."""

    keys: ProjectKeys  # the project's (or the site's) secret: UIDs and date offsets
    master_pseudonym: str  # whose date offset applies
    pseudonym: str  # what Patient ID and Patient's Name become
    known_values: tuple[str, ...] = field(default_factory=tuple)  # the patient's identifiers

    @property
    def date_offset(self) -> datetime.timedelta:
        return datetime.timedelta(days=self.keys.date_offset_days(self.master_pseudonym))


def _shift_date(value: str, offset: datetime.timedelta) -> str:
    """Move a DA or DT value, or a range of them (``A-B``, either end open), by ``offset``;
    "" when any part cannot be read. A DT's ``-HHMM`` time zone is not a range."""
    start, dash, end = value.partition("-")
    if dash and (end == "" or len(end) >= 8):
        parts = (start, end)
        moved = [_shift_one(part, offset) if part else "" for part in parts]
        if any(part and not new for part, new in zip(parts, moved, strict=True)):
            return ""
        return "-".join(moved)
    return _shift_one(value, offset)


def _shift_one(value: str, offset: datetime.timedelta) -> str:
    try:
        day = datetime.datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return ""
    return (day + offset).strftime("%Y%m%d") + value[8:]


@dataclass
class _Run:
    profile: Profile
    ctx: DeidContext
    types: Mapping[tuple[str, ...], AttributeType]
    cleaner: TextCleaner
    options: frozenset[Option]
    decisions: dict[tuple[tuple[str, ...], int, str, str], tuple[str, tuple[str, ...]]] = field(
        default_factory=dict
    )

    def safe_private(self, key: PrivateTag) -> bool:
        if Option.RETAIN_SAFE_PRIVATE not in self.options:
            return False
        return (
            key in SAFE_PRIVATE or key in SAFE_PRIVATE_SEQUENCES or key in self.profile.safe_private
        )

    def uid(self, value: str) -> str:
        if Option.RETAIN_UIDS in self.options or value in UID_dictionary:
            return value
        return self.ctx.keys.uid(value)

    def uid_of(self, keyword: str) -> Callable[[str], str]:
        """How to map a UID held by ``keyword``: class UIDs and registry UIDs (a coding
        scheme's OID, say) name no instance and stay as they are."""
        if keyword.endswith("ClassUID") or keyword in _REGISTRY_UIDS:
            return lambda value: value
        return self.uid

    def dummy(self, element: DataElement) -> object:
        if element.VR == "UI":
            return self.uid(str(element.value)) if element.value else self.ctx.keys.uid("dummy")
        if element.VR in ("PN",) and element.tag in _PATIENT_IDENTITY:
            return self.ctx.pseudonym
        return _DUMMIES.get(element.VR)

    def date(self, element: DataElement) -> object:
        """Dates under the date options: moved, kept, or emptied."""
        if Option.RETAIN_LONGITUDINAL_FULL_DATES in self.options:
            return element.value
        if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in self.options:
            if element.VR in ("DA", "DT"):
                return self._map_values(element, lambda v: _shift_date(v, self.ctx.date_offset))
            return element.value  # a time of day is not moved by whole days
        return None

    def clean(self, element: DataElement) -> object:
        if element.VR in ("DA", "DT", "TM"):
            return self.date(element)
        if (element.VR in _TEXT_VRS or element.VR in ("AE", "UR")) and (
            element.keyword not in _CODED_TEXT
        ):
            return self._map_values(element, self.cleaner.clean)
        if element.VR == "PN":
            return None
        if element.VR == "UI":
            return self._map_values(element, self.uid_of(element.keyword))
        return element.value

    @staticmethod
    def _map_values(element: DataElement, fn: Callable[[str], str]) -> object:
        value = element.value
        if value is None or value == "":
            return value
        if element.VM > 1:
            return [fn(str(v)) for v in value]
        return fn(str(value))

    def clean_private(self, dataset: Dataset, tag: BaseTag) -> None:
        """A private value kept as safe, cleaned as public text is: text VRs, and binary
        values that are text; a binary value that is not text but hides a known value of
        the patient's is removed (no IOD requires a private element). A value read as UN
        is cleaned as the bytes it is, not as a private dictionary's VR would read it."""
        item: object = dataset.get_item(tag)  # a RawDataElement while not yet converted
        if isinstance(item, RawDataElement) and item.VR in (None, "UN"):
            value: object = item.value
            element = None
        else:
            element = dataset[tag]
            value = element.value
        if isinstance(value, bytes):
            cleaned = self._clean_bytes(value)
            if cleaned is None:
                del dataset[tag]
            elif cleaned is not value:
                if element is None:
                    dataset[tag] = DataElement(tag, "UN", cleaned)
                else:
                    element.value = cleaned
        elif element is not None and element.VR in _PRIVATE_TEXT_VRS:
            element.value = self._map_values(element, self.cleaner.clean)

    def _clean_bytes(self, value: bytes) -> bytes | None:
        """``value`` cleaned if it is text (itself if nothing was cut), None to remove it."""
        text = _as_text(value)
        if text is None:
            return None if self._hides_text(value) else value
        cleaned = self.cleaner.clean(text)
        if cleaned == text:
            return value
        data = cleaned.encode("latin-1", "replace")
        return data + b" " * (len(data) % 2)

    def type_of(self, path: tuple[str, ...]) -> AttributeType | None:
        return self.types.get(path)

    def walk(self, dataset: Dataset, path: tuple[str, ...], skip: int | None = None) -> None:
        """Apply the profile to every element of ``dataset`` (but ``skip``, already done)."""
        # Decide from the tag and VR alone, on the element as read (pydicom converts a value
        # only when it is touched): most elements of a large report are kept, and keeping
        # them unconverted also writes them back byte for byte.
        creators: list[BaseTag] = []
        verdict: Mapping[str, str] | None = None  # what the code this item is changes
        for tag in list(dataset.keys()):
            if tag == skip:
                continue
            vr = _vr(dataset.get_item(tag), tag)
            creator = ""
            if tag.is_private and Option.RETAIN_SAFE_PRIVATE in self.options:
                if tag.is_private_creator:
                    creators.append(tag)  # kept while its block keeps an element: see below
                    continue
                creator = _creator(dataset, tag)
            # A report repeats the same paths thousands of times: decide each once per run.
            key = (path, tag, vr, creator)
            cached = self.decisions.get(key)
            if cached is None:
                keyword = _keyword(tag) or _private_name(tag, creator)
                here = (*path, keyword)
                cached = self.decisions[key] = (self.decide(tag, vr, keyword, here, creator), here)
            action, here = cached
            if action == "Q":  # a part of a code: as the code it makes says
                if verdict is None:
                    verdict = _code_verdict(dataset)
                action = verdict.get(here[-1], "K")
            if action == "K" and vr != "SQ":
                continue
            if action == "X":
                del dataset[tag]
                continue
            if action == "T":  # before ``dataset[tag]`` reads it with a private dictionary
                self.clean_private(dataset, tag)
                continue
            self.apply(dataset, dataset[tag], action, here)
        for tag in creators:
            block = tag.element << 8
            first = (tag.group << 16) | block
            if not any(first <= t <= first + 0xFF for t in dataset.keys()):  # noqa: SIM118
                del dataset[tag]

    def decide(
        self, tag: BaseTag, vr: str, keyword: str, here: tuple[str, ...], creator: str = ""
    ) -> str:
        if tag.is_private:
            if not self.safe_private((creator, tag.group, tag.element & 0xFF)):
                return "X"
            # Safe, so kept; but a UID is still remapped (references must keep resolving)
            # and a date still follows the date option.
            if vr == "UI":
                return "U"
            if vr in _PRIVATE_TEXT_VRS or vr in _PRIVATE_BINARY_VRS:
                return "T"  # text is cleaned like public text
            return "C" if vr in ("DA", "DT", "SQ") else "K"
        if tag in _PATIENT_IDENTITY and len(here) == 1:
            return "P"
        if keyword in self.profile.remove:
            return "X"
        if keyword in self.profile.keep or keyword in _CODED_TEXT:
            return "K"
        if keyword in CODE_PARTS:
            return "Q"
        if keyword == "PatientAge" and self.profile.band_ages:
            return "A"
        rule = attribute_rule(int(tag))
        if rule is not None:
            kind = self.type_of(here)
            action = resolve_action(rule.action(self.options), kind)
            # The table says remove, but this object's IOD needs the attribute: keep it
            # valid with a dummy (Type 1) or an empty value (Type 2) instead.
            if action == "X" and kind in (AttributeType.TYPE_1, AttributeType.TYPE_1C):
                return "D"
            if action == "X" and kind in (AttributeType.TYPE_2, AttributeType.TYPE_2C):
                return "Z"
            return action
        if vr == "UN":
            return "X"
        if vr in ("UR", "AE"):
            # An address or AE title the table does not name (Retrieve URL, Contact URI, an
            # unknown public element): gone at both levels (emptied or dummied where the IOD
            # needs it). It names a machine of the sender's network, which no research use
            # needs and the scanner fails; cleaning would leave the host name.
            kind = self.type_of(here)
            if kind in (AttributeType.TYPE_1, AttributeType.TYPE_1C):
                return "D"
            return "Z" if kind in (AttributeType.TYPE_2, AttributeType.TYPE_2C) else "X"
        if vr == "PN":
            kind = self.type_of(here)
            if kind in (AttributeType.TYPE_1, AttributeType.TYPE_1C):
                return "D"
            return "Z" if kind in (AttributeType.TYPE_2, AttributeType.TYPE_2C) else "X"
        if vr in ("DA", "DT") or vr in _TEXT_VRS or vr == "UI" or vr == "SQ":
            return "C"
        if vr in ("OB", "OW", "OB or OW") and keyword not in _PIXEL_KEYWORDS:
            return "B"  # binary, but it may hide text
        return "K"

    def content_item(self, item: Dataset, path: tuple[str, ...]) -> bool:
        """Clean one SR content item by its concept name (Table E.3.4-1); False to drop it.

        References (IMAGE, COMPOSITE, WAVEFORM, UIDREF) are kept whatever the table says:
        their UIDs are remapped with the project's key like every other UID, so they still
        resolve and identify nothing. A combined code (X/D) takes its dummy, which keeps
        the report's template whole.
        """
        names = item.get("ConceptNameCodeSequence")
        rule = None
        if names:
            name = names[0]
            key = (str(name.get("CodingSchemeDesignator", "")), str(name.get("CodeValue", "")))
            rule = content_item_rules().get(key)
        value_type = str(item.get("ValueType", ""))
        if rule is None or value_type in _REFERENCE_VALUE_TYPES:
            self.walk(item, path)
            return True
        action = rule.action(self.options).split("/")[-1]
        if action == "X":
            return False
        value_tag = _CONTENT_VALUE_TAGS.get(value_type)
        element = item.get(value_tag) if value_tag is not None else None
        if element is None or action == "K":
            self.walk(item, path, skip=value_tag if action == "K" else None)
            return True
        if action == "D":
            element.value = _DUMMIES.get(element.VR)
        elif action == "C":
            element.value = self.clean(element)
        self.walk(item, path, skip=value_tag)
        return True

    def apply(
        self, dataset: Dataset, element: DataElement, action: str, here: tuple[str, ...]
    ) -> None:
        if element.VR == "SQ":
            if action == "Z":
                element.value = Sequence([])
                return
            if here[-1] == "ContentSequence" and Option.CLEAN_STRUCTURED_CONTENT in self.options:
                element.value = Sequence([i for i in element.value if self.content_item(i, here)])
            else:
                for item in element.value:
                    self.walk(item, here)
                    if action == "D":
                        _dummy_text(item)
            if not element.value and self.type_of(here) is AttributeType.TYPE_3:
                # An empty optional sequence says nothing, and some validators read a
                # zero-item sequence as a broken one: leave it out.
                del dataset[element.tag]
            return
        if action == "P":
            element.value = self.ctx.pseudonym
        elif action == "Z":
            element.value = None  # a zero-length value
        elif action == "D":
            element.value = self.dummy(element)
        elif action == "U":
            element.value = self._map_values(element, self.uid_of(element.keyword))
        elif action == "C":
            element.value = self.clean(element)
        elif action == "A":
            element.value = _band_age(str(element.value or ""), self.profile.band_ages)
        elif action == "N":
            element.value = self._map_values(element, self.cleaner.clean_known)
        elif action == "T":
            self.clean_private(dataset, element.tag)
        elif action == "B" and self.hides_text(element):
            if self.type_of(here) in _TYPES_REQUIRED:
                raise UnsafeContent(
                    f"{element.keyword or element.tag} holds identifying text inside binary "
                    "data that its IOD requires: it cannot be removed"
                )
            del dataset[element.tag]
        # "K", and "B" with nothing found: keep as it is.

    def hides_text(self, element: DataElement) -> bool:
        """Whether a binary value holds, as plain or UTF-16 text, a known value of the
        patient's or an NHS or CHI number: a vendor's blob with the patient's name in it."""
        value = element.value
        return isinstance(value, bytes) and self._hides_text(value)

    def _hides_text(self, value: bytes) -> bool:
        runs = _TEXT_RUNS.findall(value)
        return any(
            self.cleaner.finds_identifier(run.replace(b"\x00", b"").decode("ascii")) for run in runs
        )


def _dummy_text(dataset: Dataset) -> None:
    """A sequence given a dummy (Graphic Annotation Sequence without the Clean Graphics
    Option) keeps its structure and geometry, but every text it holds, at any depth, becomes
    the dummy text: annotations drawn on an image are where a name is typed."""
    for tag in dataset.keys():  # noqa: SIM118 -- iterating a Dataset converts every element
        vr = _vr(dataset.get_item(tag), tag)
        if vr == "SQ":
            for item in dataset[tag].value:
                _dummy_text(item)
        elif vr in _TEXT_VRS and _keyword(tag) not in _NOT_DUMMY_TEXT:
            element = dataset[tag]
            if element.value:
                element.value = _DUMMIES[vr]


def _as_text(value: bytes) -> str | None:
    """A binary value as text, if it is text (printable Latin-1, ignoring padding)."""
    text = value.decode("latin-1").rstrip("\0 ")
    if not text or not all(c.isprintable() or c in "\r\n\t" for c in text):
        return None
    return text


def _code_verdict(dataset: Dataset) -> Mapping[str, str]:
    """What the code held by ``dataset`` (a code sequence's item) changes of its parts, read
    before any part is changed."""
    found = {}
    for tag, keyword in CODE_TAGS.items():
        element = dataset.get(tag)
        found[keyword] = "" if element is None or element.value is None else str(element.value)
    return code_verdict(
        found["CodingSchemeDesignator"],
        found["CodeValue"] or found["LongCodeValue"] or found["URNCodeValue"],
        found["CodeMeaning"],
    )


def _band_age(value: str, width: int) -> str:
    """A Patient's Age as the lower bound of its ``width``-year band, in years; ages of 90 or
    more as ``090Y`` (few people are that old, so an exact age narrows them down); "" when
    unreadable. Ages in days, weeks or months are under a year: ``000Y``."""
    match = re.fullmatch(r"(\d{3})([DWMY])", value.strip())
    if match is None:
        return ""
    years = int(match.group(1)) if match.group(2) == "Y" else 0
    if years >= 90:
        return "090Y"
    return f"{years - years % width:03d}Y"


def _creator(dataset: Dataset, tag: BaseTag) -> str:
    """The private creator of a private data element, or "" if its block has none."""
    element = dataset.get((tag.group << 16) | (tag.element >> 8))
    if element is None or not isinstance(element.value, str | bytes):
        return ""
    value = element.value.decode("latin-1") if isinstance(element.value, bytes) else element.value
    return value.strip(" \0")


def _private_name(tag: BaseTag, creator: str) -> str:
    """A path step for a private element, as TCIA's knowledge base writes one."""
    return f'({tag.group:04X},"{creator}",{tag.element & 0xFF:02X})'


#: Values that stop being cut from free text when an option retains them.
_RETAINED_BY = {
    Option.RETAIN_INSTITUTION_IDENTITY: frozenset({"InstitutionName", "InstitutionAddress"}),
    Option.RETAIN_DEVICE_IDENTITY: frozenset({"StationName"}),
}


def _identifying_values(
    dataset: Dataset, retained: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """Every person name and patient identifier the header carries, at any depth, with the
    keyword that held it: values to cut from free text (a clinician named in Referring
    Physician's Name is also cut from Additional Patient History). Only those elements and
    sequences are converted."""
    found: list[tuple[str, str]] = []
    for tag in dataset.keys():  # noqa: SIM118 -- iterating a Dataset converts every element
        vr = _vr(dataset.get_item(tag), tag)
        if vr == "SQ":
            for item in dataset[tag].value:
                found.extend(_identifying_values(item, retained))
        elif vr == "PN" or (
            _keyword(tag) in _IDENTIFYING_KEYWORDS and _keyword(tag) not in retained
        ):
            element = dataset[tag]
            if element.value:
                values = element.value if element.VM > 1 else [element.value]
                found.extend((_keyword(tag), str(v)) for v in values)
    return found


def _cleaner(known: Iterable[str], found: Iterable[tuple[str, str]]) -> TextCleaner:
    """The free-text cleaner for one object: the vault's known values (a value in person
    name form, with ``^``, is the patient's own name) and the header's (those of the
    patient's name attributes are the patient's own name)."""
    values: list[str] = []
    names: list[str] = []
    for value in known:
        (names if "^" in value else values).append(value)
    for keyword, value in found:
        (names if keyword in _PATIENT_NAMES else values).append(value)
    return TextCleaner.for_values(values, names)


def _remove_graphics_groups(dataset: Dataset) -> None:
    """Remove whole overlay (60xx) and curve (50xx) groups: without the Clean Graphics
    Option, Table E.1-1 removes their data, and an overlay plane left without its data is an
    invalid module."""
    for tag in list(dataset.keys()):
        group = tag.group
        if (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E) and group % 2 == 0:
            del dataset[tag]


def _mark(dataset: Dataset, profile: Profile) -> None:
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = (
        f"dicomhaven {__version__} profile {profile.name} sha256:{profile.sha256[:16]}"
    )[:64]
    codes = Sequence()
    for option in (None, *sorted(profile.options)):
        value, meaning = _METHOD_CODES[option]
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    dataset.DeidentificationMethodCodeSequence = codes
    if Option.RETAIN_LONGITUDINAL_FULL_DATES in profile.options:
        dataset.LongitudinalTemporalInformationModified = "UNMODIFIED"
    elif Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in profile.options:
        dataset.LongitudinalTemporalInformationModified = "MODIFIED"
    else:
        dataset.LongitudinalTemporalInformationModified = "REMOVED"


def mark_pixels_not_checked(dataset: Dataset) -> None:
    """Say in the copy itself that its pixels were not read (``--headers-only``): a value
    of De-identification Method, and Burned In Annotation not claimed to be NO."""
    current = dataset.get("DeidentificationMethod")
    values = [str(v) for v in current] if isinstance(current, MultiValue) else []
    if current is not None and not isinstance(current, MultiValue) and str(current):
        values = [str(current)]
    if HEADERS_ONLY_METHOD not in values:
        values.append(HEADERS_ONLY_METHOD)
    dataset.DeidentificationMethod = values if len(values) > 1 else values[0]
    if str(dataset.get("BurnedInAnnotation", "")).upper() == "NO":
        del dataset.BurnedInAnnotation  # unknown: nobody looked


def deidentify(dataset: Dataset, profile: Profile, ctx: DeidContext) -> None:
    """De-identify ``dataset`` in place (its file meta too, when it has one)."""
    sop_class = str(dataset.get("SOPClassUID", ""))
    # Every name and patient identifier the header itself carries, at any depth, is a value
    # to cut from free text: a clinician named in Referring Physician's Name is also cut
    # from Additional Patient History.
    retained = frozenset().union(*(_RETAINED_BY.get(o, frozenset()) for o in profile.options))
    run = _Run(
        profile=profile,
        ctx=ctx,
        types=attribute_types(sop_class),
        cleaner=_cleaner(ctx.known_values, _identifying_values(dataset, retained)),
        options=profile.options,
    )
    if Option.CLEAN_GRAPHICS not in profile.options:
        _remove_graphics_groups(dataset)
    run.walk(dataset, ())
    _mark(dataset, profile)
    meta = getattr(dataset, "file_meta", None)
    if isinstance(dataset, FileDataset) and dataset.preamble is not None:
        # The preamble is the sender's to fill (a TIFF header, or anything at all): never
        # copied. An output is not a dual-personality TIFF file. (Read without one, it is
        # written without one, or with zeros where the file format is enforced.)
        dataset.preamble = bytes(128)
    # Only a real file meta group is rebuilt: a data set read without one stays without.
    if isinstance(dataset, FileDataset) and meta is not None and "TransferSyntaxUID" in meta:
        sop_instance = dataset.SOPInstanceUID if "SOPInstanceUID" in dataset else None
        dataset.file_meta = rebuilt_file_meta(meta, sop_instance)
    elif isinstance(meta, Dataset):  # a partial one: at least nothing of the sender's
        for tag in list(meta.keys()):
            if _keyword(tag) not in (*_META_KEPT, "FileMetaInformationVersion"):
                del meta[tag]


#: The file meta elements an output carries: nothing else of the sender's (AE titles,
#: presentation addresses, RTV identifiers, private information) is ever copied.
_META_KEPT = ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")


def rebuilt_file_meta(meta: Dataset, sop_instance_uid: object | None) -> FileMetaDataset:
    """The file meta of a de-identified object, built from an allow-list: the version, the
    Media Storage SOP Class and (the new) Instance UID, the transfer syntax (deflated data
    written inflated: the same data set, losslessly, in the plain syntax) and dicomhaven's
    own implementation class UID and version name."""
    rebuilt = FileMetaDataset()
    rebuilt.FileMetaInformationGroupLength = 0  # pydicom's writer works out the length
    rebuilt.FileMetaInformationVersion = b"\x00\x01"
    for keyword in _META_KEPT:
        if keyword in meta:
            rebuilt[keyword] = meta[keyword]
    if sop_instance_uid is not None:
        rebuilt.MediaStorageSOPInstanceUID = UID(str(sop_instance_uid))
    if rebuilt.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        rebuilt.TransferSyntaxUID = ExplicitVRLittleEndian
    rebuilt.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    rebuilt.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return rebuilt


def write_dataset(dataset: Dataset, target: Path) -> None:
    """Write atomically (a partial file, then a rename).

    Elements left as read are written back as read; a few real files (an implicit VR data
    set that declares explicit VR, say) cannot be written that way, so on failure every
    element is converted and the write tried once more.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    if isinstance(dataset, FileDataset) and dataset.preamble is not None:
        dataset.preamble = bytes(128)  # never the sender's: see ``deidentify``
    try:
        try:
            dataset.save_as(partial, enforce_file_format=True)
        except OSError:
            raise
        except Exception:
            for _ in dataset.iterall():
                pass
            dataset.save_as(partial, enforce_file_format=True)
    except BaseException:
        partial.unlink(missing_ok=True)  # no half-written copy is left behind
        raise
    partial.replace(target)
