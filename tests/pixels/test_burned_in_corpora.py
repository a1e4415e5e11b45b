"""Real ultrasounds with identifiers burned in (pydicom-data's ``OBXXXX1A*`` in three
encodings, deid-data's greyscale, colour and 30-frame cine): after the pixels are made
safe, a reading of every frame finds none of the identifiers their headers name, and only
the blanked pixels changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicomhaven.pixels import (
    KnownValues,
    PixelOutcome,
    clean_pixels,
    engine_named,
    find_identifiers,
)
from dicomhaven.pixels._clean import VERIFY_RULES, _images
from dicomhaven.pixels._codec import decode
from dicomhaven.pixels._redact import black_value
from tests.corpora import deid_data_folder, pydicom_data_folder
from tests.peers import require_tool

pytestmark = pytest.mark.integration


def burned_in_files() -> list[Path]:
    files = sorted(pydicom_data_folder().glob("OBXXXX1A*.dcm"))
    files += sorted((deid_data_folder() / "ultrasounds").glob("*.dcm"))
    return files


@pytest.mark.parametrize("path", burned_in_files(), ids=lambda p: p.name)
def test_no_identifier_readable_on_any_frame_after_blanking(path: Path) -> None:
    require_tool("tesseract")
    source = pydicom.dcmread(path)
    known = KnownValues.from_header(source)
    dataset = pydicom.dcmread(path)
    result = clean_pixels(dataset, known, original=source)
    assert result.outcome is PixelOutcome.REDACTED, result.reason
    frames = range(int(dataset.get("NumberOfFrames", 1) or 1))
    reader = engine_named("tesseract")
    for index, image in enumerate(_images(dataset, frames)):
        findings = find_identifiers(reader.read(image), known, rules=VERIFY_RULES)
        assert findings == [], (index + 1, sorted({f.rule.value for f in findings}))
    # Only blanked pixels changed: every changed pixel now holds the black value.
    before, after = decode(source).frames, decode(dataset).frames
    changed = (before != after).any(axis=-1)
    fill = np.array(black_value(dataset, decode(dataset).photometric), dtype=after.dtype)
    assert (after[changed] == fill).all()
