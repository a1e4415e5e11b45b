"""Worked examples of the de-identification options, made by the real engine.

    python scripts/option_examples.py                        # every option's example block
    python scripts/option_examples.py --option retain_uids   # one option's block
    python scripts/option_examples.py --write                # rewrite the blocks in docs/options/
    python scripts/option_examples.py --check                # exit 1 if a page's block is stale

For each option in :data:`EXAMPLES`, a small synthetic CT image (obviously fake values only)
is de-identified twice: with the ``base`` profile (the Basic Application Level
Confidentiality Profile alone), and with ``base`` plus the option. A fixed example secret
makes the new UIDs and the date offset the same on every run. The block between
``<!-- example:start -->`` and ``<!-- example:end -->`` in ``docs/options/<option>.md`` is
this script's output; ``tests/deid/test_option_docs.py`` fails when a page and the engine
disagree.

To document another option: add an :class:`Example` to :data:`EXAMPLES` (the input values
it needs, and the rows to show), create ``docs/options/<option-with-dashes>.md`` with the two
markers under ``## Worked example``, link it from ``docs/options/README.md``, and run
``--write``. A row is a keyword, a tag (a private one is shown with its creator) or a path
through sequences; ``build`` adds what a keyword → value map cannot say (a private block, a
nested item), as the Retain UIDs example does for its referenced image.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from dicomhaven.deid import DeidContext, Option, Profile, deidentify, load_profile
from dicomhaven.identity import ProjectKeys

DOCS = Path(__file__).resolve().parents[1] / "docs" / "options"
START = "<!-- example:start -->"
END = "<!-- example:end -->"

#: Fixed, and used for nothing but these examples: the outputs must not change between runs.
SECRET = b"dicomhaven worked examples only!"
KEYS = ProjectKeys("docs-example", SECRET)
MASTER = "BCDFGHJKLMNP"  # the example patient's master pseudonym
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

#: Every example starts from this image. The UIDs are under the made-up root 1.2.3.4; the
#: NHS number is in the 999 test range (valid check digit, issued to nobody).
COMMON: Mapping[str, object] = {
    "SOPClassUID": CT_IMAGE_STORAGE,
    "SOPInstanceUID": "1.2.3.4.1.1.1",
    "StudyInstanceUID": "1.2.3.4.1",
    "SeriesInstanceUID": "1.2.3.4.1.1",
    "FrameOfReferenceUID": "1.2.3.4.1.2",
    "Modality": "CT",
    "PatientName": "EXAMPLE^PATIENT",
    "PatientID": "9990001235",
}

#: A row of the table: a keyword or tag at the top level, or a path of them through
#: sequences (the first item of each sequence is followed, or the SR content item whose
#: concept name has the meaning given as ``"@Meaning"``).
Row = str | int | tuple[str | int, ...]
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
_KINDS = {"CT": "CT image", "SR": "structured report"}


@dataclass(frozen=True)
class Example:
    """One option's worked example: what to add to the common image, and what to show."""

    option: Option
    attributes: Mapping[str, object] = field(default_factory=dict)  # keyword → input value
    rows: tuple[Row, ...] = ()  # shown after the attributes' own keywords
    build: Callable[[Dataset], None] | None = None  # for input a keyword map cannot say


def _referenced_image(ds: Dataset) -> None:
    item = Dataset()
    item.ReferencedSOPClassUID = CT_IMAGE_STORAGE
    item.ReferencedSOPInstanceUID = "1.2.3.4.1.1.2"  # another image of the same series
    ds.ReferencedImageSequence = Sequence([item])


_DATES: Mapping[str, object] = {
    "StudyDate": "20240307",
    "StudyTime": "093000",
    "SeriesDate": "20240307",
    "AcquisitionDateTime": "20240307093512",
    "PatientBirthDate": "19700101",
}


def _private_blocks(ds: Dataset) -> None:
    acquisition = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    acquisition.add_new(0x23, "DS", "1.375")  # Table E.3.10-1 lists it as safe
    acquisition.add_new(0x02, "SL", 1024)  # not listed
    other = ds.private_block(0x0029, "EXAMPLE VENDOR 1.0", create=True)
    other.add_new(0x01, "LO", "EXAMPLE^PATIENT ward 7")


def _annotated(ds: Dataset) -> None:
    ds.add_new(0x60000010, "US", 8)  # Overlay Rows
    ds.add_new(0x60000011, "US", 8)  # Overlay Columns
    ds.add_new(0x60000022, "LO", "Marked by Dr Ann Sample")  # Overlay Description
    ds.add_new(0x60000040, "CS", "G")  # Overlay Type
    ds.add_new(0x60000050, "SS", [1, 1])  # Overlay Origin
    ds.add_new(0x60000100, "US", 1)  # Overlay Bits Allocated
    ds.add_new(0x60000102, "US", 0)  # Overlay Bit Position
    ds.add_new(0x60003000, "OW", bytes(8))  # Overlay Data
    text = Dataset()
    text.UnformattedTextValue = "EXAMPLE PATIENT: lesion 12 mm"
    text.AnchorPointAnnotationUnits = "PIXEL"
    text.AnchorPoint = [4.0, 4.0]
    text.AnchorPointVisibility = "N"
    annotation = Dataset()
    annotation.GraphicLayer = "MEASURE"
    annotation.TextObjectSequence = Sequence([text])
    ds.GraphicAnnotationSequence = Sequence([annotation])


def _content_item(value_type: str, code: str, meaning: str, **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = value_type
    name = Dataset()
    name.CodeValue = code
    name.CodingSchemeDesignator = "DCM"
    name.CodeMeaning = meaning
    item.ConceptNameCodeSequence = Sequence([name])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _report(ds: Dataset) -> None:
    ds.SOPClassUID = ENHANCED_SR
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    image = Dataset()
    image.ReferencedSOPClassUID = CT_IMAGE_STORAGE
    image.ReferencedSOPInstanceUID = "1.2.3.4.1.1.1"
    ds.ContentSequence = Sequence(
        [
            _content_item("TEXT", "121022", "Accession Number", TextValue="EXAMPLE-ACC-1"),
            _content_item("PNAME", "121008", "Person Observer Name", PersonName="OBSERVER^ANN"),
            _content_item(
                "TEXT", "121016", "Device Observer Serial Number", TextValue="SN-EXAMPLE-0001"
            ),
            _content_item("TEXT", "121106", "Comment", TextValue="EXAMPLE PATIENT: no change"),
            _content_item("DATETIME", "111526", "DateTime Started", DateTime="20240307093512"),
            _content_item(
                "IMAGE", "113795", "Acquired Image", ReferencedSOPSequence=Sequence([image])
            ),
        ]
    )


EXAMPLES: tuple[Example, ...] = (
    Example(
        Option.RETAIN_SAFE_PRIVATE,
        rows=(0x00191023, 0x00191002, 0x00291001),
        build=_private_blocks,
    ),
    Example(
        Option.RETAIN_UIDS,
        rows=(
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "SOPInstanceUID",
            "FrameOfReferenceUID",
            ("ReferencedImageSequence", "ReferencedSOPInstanceUID"),
        ),
        build=_referenced_image,
    ),
    Example(
        Option.RETAIN_DEVICE_IDENTITY,
        attributes={
            "StationName": "EXAMPLE-CT01",
            "StationAETitle": "EXAMPLECT01",
            "DeviceSerialNumber": "SN-EXAMPLE-0001",
            "GantryID": "GANTRY-EXAMPLE",
            "DateOfLastCalibration": "20240102",
        },
    ),
    Example(
        Option.RETAIN_INSTITUTION_IDENTITY,
        attributes={
            "InstitutionName": "Example General Hospital",
            "InstitutionAddress": "1 Example Road, Exampletown ZZ99 9ZZ",
            "InstitutionalDepartmentName": "Radiology",
        },
    ),
    Example(
        Option.RETAIN_PATIENT_CHARACTERISTICS,
        attributes={
            "PatientSex": "F",
            "PatientAge": "047Y",
            "PatientSize": "1.62",
            "PatientWeight": "58",
            "SmokingStatus": "NO",
            "Allergies": "Penicillin, noted 07/03/2024",
        },
    ),
    Example(
        Option.RETAIN_LONGITUDINAL_FULL_DATES,
        attributes=_DATES,
        rows=("LongitudinalTemporalInformationModified",),
    ),
    Example(
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
        attributes=_DATES,
        rows=("LongitudinalTemporalInformationModified",),
    ),
    Example(
        Option.CLEAN_DESCRIPTORS,
        attributes={
            "ReferringPhysicianName": "REFERRER^EXAMPLE",
            "StudyDescription": "CT CHEST ABDO PELVIS - EXAMPLE PATIENT",
            "SeriesDescription": "AX 1.25mm SOFT TISSUE",
            "ImageComments": "Reviewed by Dr Ann Sample on 07/03/2024",
            "AdditionalPatientHistory": "Referred by Referrer; NHS 999 000 1235; tel 01632 960001",
        },
    ),
    Example(
        Option.CLEAN_STRUCTURED_CONTENT,
        rows=(
            ("ContentSequence", "@Accession Number", "TextValue"),
            ("ContentSequence", "@Person Observer Name", "PersonName"),
            ("ContentSequence", "@Device Observer Serial Number", "TextValue"),
            ("ContentSequence", "@Comment", "TextValue"),
            ("ContentSequence", "@DateTime Started", "DateTime"),
            (
                "ContentSequence",
                "@Acquired Image",
                "ReferencedSOPSequence",
                "ReferencedSOPInstanceUID",
            ),
        ),
        build=_report,
    ),
    Example(
        Option.CLEAN_GRAPHICS,
        rows=(
            0x60000022,
            0x60003000,
            ("GraphicAnnotationSequence", "TextObjectSequence", "UnformattedTextValue"),
        ),
        build=_annotated,
    ),
)


def example_for(option: Option) -> Example:
    for example in EXAMPLES:
        if example.option is option:
            return example
    raise KeyError(f"no worked example for {option.value}: add one to EXAMPLES")


def page_path(option: Option) -> Path:
    return DOCS / f"{option.value.replace('_', '-')}.md"


def source_dataset(example: Example) -> Dataset:
    ds = Dataset()
    for keyword, value in {**COMMON, **example.attributes}.items():
        setattr(ds, keyword, value)
    if example.build is not None:
        example.build(ds)
    return ds


def with_option(base: Profile, option: Option) -> Profile:
    return dataclasses.replace(base, name=f"base+{option.value}", options=frozenset({option}))


def _tag(step: str | int) -> BaseTag:
    tag = tag_for_keyword(step) if isinstance(step, str) else step
    if tag is None:
        raise ValueError(f"{step!r} is not a DICOM keyword: fix the row in EXAMPLES")
    return Tag(tag)


def _meaning(item: Dataset) -> str:
    names = item.get("ConceptNameCodeSequence")
    return str(names[0].get("CodeMeaning", "")) if names else ""


def _item(element: DataElement, step: str | int | None) -> Dataset | None:
    """The item a path goes on through: the first, or the SR content item named ``@Meaning``."""
    if element.VR != "SQ" or not element.value:
        return None
    if isinstance(step, str) and step.startswith("@"):
        return next((i for i in element.value if _meaning(i) == step[1:]), None)
    return element.value[0]


def _find(ds: Dataset, row: Row) -> DataElement | None:
    steps = [s for s in (row if isinstance(row, tuple) else (row,))]
    current: Dataset | None = ds
    for number, step in enumerate(steps):
        if isinstance(step, str) and step.startswith("@"):
            continue  # chose the item, below
        tag = _tag(step)
        if current is None or tag not in current:
            return None
        element = current[tag]
        if number == len(steps) - 1:
            return element
        current = _item(element, steps[number + 1])
    return None


def _label(ds: Dataset | None, row: Row) -> str:
    """Keyword and tag of each step; a private step as TCIA writes it, with its creator."""
    steps = row if isinstance(row, tuple) else (row,)
    parts = []
    for number, step in enumerate(steps):
        if isinstance(step, str) and step.startswith("@"):
            parts.append(f"“{step[1:]}”")
            continue
        tag = _tag(step)
        if tag.is_private:
            creator = ds.get(Tag(tag.group, tag.element >> 8)) if ds is not None else None
            name = str(creator.value).strip() if creator is not None else "?"
            parts.append(f'({tag.group:04X},"{name}",{tag.element & 0xFF:02X})')
        else:
            parts.append(f"{keyword_for_tag(tag)} ({tag.group:04X},{tag.element:04X})")
        element = ds.get(tag) if ds is not None else None
        following = steps[number + 1] if number + 1 < len(steps) else None
        ds = _item(element, following) if element is not None else None
    return " › ".join(parts)


def _show(element: DataElement | None, missing: str) -> str:
    if element is None:
        return missing
    value = element.value
    if element.VR == "SQ":
        return f"*{len(value)} item{'s' if len(value) != 1 else ''}*"
    if value is None or value == "" or value == []:
        return "*empty*"
    if isinstance(value, bytes):
        return f"*{len(value)} bytes*"
    text = "\\".join(str(v) for v in value) if element.VM > 1 else str(value)
    return "`" + text.replace("|", "\\|") + "`"


def example_block(option: Option) -> str:
    """The generated text that goes between the markers on the option's page."""
    example = example_for(option)
    base = load_profile("base")
    context = DeidContext(keys=KEYS, master_pseudonym=MASTER, pseudonym=KEYS.pseudonym(MASTER))
    source = source_dataset(example)
    without = copy.deepcopy(source)
    deidentify(without, base, context)
    chosen = copy.deepcopy(source)
    deidentify(chosen, with_option(base, option), context)
    rows: list[Row] = [*example.attributes, *example.rows]
    lines = [
        "<!-- generated by scripts/option_examples.py: edit the script, then run it with"
        " --write -->",
        "",
        f"A synthetic {_KINDS.get(str(source.Modality), 'object')} of `EXAMPLE^PATIENT`, de-identified with the `base` profile"
        f" and with `base` plus `{option.value}`, under a fixed example secret (this"
        f" patient's date offset: {context.date_offset.days} days).",
        "",
        f"| Attribute | Input | `base` | `base` + `{option.value}` |",
        "|---|---|---|---|",
    ]
    for row in dict.fromkeys(rows):
        before, *after = (_find(ds, row) for ds in (source, without, chosen))
        gone = "*absent*" if before is None else "*removed*"
        cells = [_show(before, "*absent*"), *(_show(c, gone) for c in after)]
        lines.append(f"| {_label(source, row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def page_block(text: str) -> str | None:
    """The text between the markers of a page, or None when the page has no markers."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start + len(START) : end].strip("\n")


def rewrite(text: str, block: str) -> str:
    start, end = text.find(START), text.find(END)
    return text[: start + len(START)] + "\n" + block + "\n" + text[end:]


def _option(name: str) -> Option:
    known = ", ".join(e.option.value for e in EXAMPLES)
    try:
        option = Option(name.replace("-", "_"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown option {name!r}; examples: {known}") from None
    if option not in {e.option for e in EXAMPLES}:
        raise argparse.ArgumentTypeError(
            f"no worked example for {option.value} yet: add an Example to EXAMPLES"
        )
    return option


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--option", type=_option, help="only this option (e.g. retain_uids)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the docs pages' blocks")
    mode.add_argument("--check", action="store_true", help="exit 1 if a page's block is stale")
    args = parser.parse_args(argv)
    options = [args.option] if args.option else [e.option for e in EXAMPLES]
    stale = []
    for option in options:
        block = example_block(option)
        if not (args.write or args.check):
            if len(options) > 1:
                print(f"### {option.value}\n")
            print(block + "\n")
            continue
        path = page_path(option)
        if not path.exists():
            raise SystemExit(f"{path} does not exist: create it with {START} and {END}")
        text = path.read_text(encoding="utf-8")
        if page_block(text) is None:
            raise SystemExit(f"{path}: add {START} and {END} under '## Worked example'")
        if page_block(text) == block:
            continue
        stale.append(path)
        if args.write:
            path.write_text(rewrite(text, block), encoding="utf-8")
            print(f"rewrote {path}")
    if args.check and stale:
        for path in stale:
            print(f"{path}: stale; run scripts/option_examples.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
