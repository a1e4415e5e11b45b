"""Reading the answer key's tag paths back out of a pydicom dataset, and walking every element.

A tag path is ``(gggg,eeee)`` steps joined by ``/``, each sequence step carrying an item
index, e.g. ``(0040,0275)[0]/(0008,0050)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

_STEP = re.compile(r"^\(([0-9A-F]{4}),([0-9A-F]{4})\)(?:\[(\d+)\])?$")


def _parse(step: str) -> tuple[int, int | None]:
    match = _STEP.match(step)
    if match is None:
        raise ValueError(f"not a tag path step: {step!r}")
    group, element, index = match.groups()
    return int(group + element, 16), None if index is None else int(index)


def resolve(dataset: Dataset, location: str) -> DataElement:
    """The element a tag path names."""
    node = dataset
    *items, last = location.split("/")
    for step in items:
        tag, index = _parse(step)
        assert index is not None, f"sequence step without an item index: {step}"
        node = node[tag].value[index]
    tag, index = _parse(last)
    assert index is None, f"last step must name an element: {last}"
    return node[tag]


def as_text(element: DataElement) -> str:
    """An element's value as text; bytes (OB, UN) are read as Latin-1."""
    value = element.value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if element.VM > 1 and not isinstance(value, str):
        return "\\".join(str(v) for v in value)
    return str(value)


def walk(dataset: Dataset, prefix: str = "") -> Iterator[tuple[str, DataElement]]:
    """Every non-sequence element with its tag path, into nested items, pixel data excluded."""
    for element in dataset:
        step = f"({element.tag.group:04X},{element.tag.element:04X})"
        if element.VR == "SQ":
            for i, item in enumerate(element.value):
                yield from walk(item, f"{prefix}{step}[{i}]/")
        elif element.tag not in {0x7FE00010, 0x60003000}:
            yield f"{prefix}{step}", element
