"""The Clean Graphics Option: overlays, curves and graphic annotations kept with their text
cleaned; without it, overlay and curve groups go and annotation text becomes a dummy."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomhaven.deid import deidentify, load_profile
from dicomhaven.identity import ProjectKeys
from tests.deid.conftest import context

KEYS = ProjectKeys("p", bytes(32))
MASTER = "BCDFGHJKLMNP"
NOTE = "Mr Exampleson said 9990001219 see lesion"  # a synthetic name and test NHS number
BITMAP = bytes(range(256)) * 2  # 64 x 64 bits


def annotated_image() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.9999.10"
    ds.PatientName = "EXAMPLESON^EXAMPLE"
    ds.add_new(0x60000010, "US", 64)  # Overlay Rows
    ds.add_new(0x60000011, "US", 64)  # Overlay Columns
    ds.add_new(0x60000022, "LO", NOTE)  # Overlay Description
    ds.add_new(0x60000040, "CS", "G")  # Overlay Type
    ds.add_new(0x60000050, "SS", [1, 1])  # Overlay Origin
    ds.add_new(0x60000100, "US", 1)  # Overlay Bits Allocated
    ds.add_new(0x60000102, "US", 0)  # Overlay Bit Position
    ds.add_new(0x60003000, "OW", BITMAP)  # Overlay Data
    ds.add_new(0x60004000, "LT", NOTE)  # Overlay Comments
    ds.add_new(0x50000022, "LO", NOTE)  # Curve Description
    ds.add_new(0x50003000, "OW", b"\x01\x00\x02\x00")  # Curve Data
    text = Dataset()
    text.UnformattedTextValue = NOTE
    text.AnchorPointAnnotationUnits = "PIXEL"
    text.AnchorPoint = [10.0, 10.0]
    text.AnchorPointVisibility = "Y"
    graphic = Dataset()
    graphic.GraphicAnnotationUnits = "PIXEL"
    graphic.GraphicDimensions = 2
    graphic.NumberOfGraphicPoints = 2
    graphic.GraphicData = [1.0, 1.0, 20.0, 20.0]
    graphic.GraphicType = "POLYLINE"
    annotation = Dataset()
    annotation.GraphicLayer = "MEASURE"
    annotation.TextObjectSequence = Sequence([text])
    annotation.GraphicObjectSequence = Sequence([graphic])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    return ds


def run(tmp_path: Path, options: str) -> Dataset:
    path = tmp_path / "p.yaml"
    path.write_text(f"extends: base\noptions: [{options}]\n")
    ds = annotated_image()
    deidentify(ds, load_profile(path), context(KEYS, MASTER))
    return ds


def test_without_the_option_graphics_go_and_annotation_text_is_a_dummy(tmp_path: Path) -> None:
    ds = run(tmp_path, "")
    assert not any(0x5000 <= e.tag.group <= 0x601E for e in ds)
    (annotation,) = ds.GraphicAnnotationSequence
    assert annotation.TextObjectSequence[0].UnformattedTextValue == "ANONYMOUS"
    assert annotation.GraphicObjectSequence[0].GraphicData == [1.0, 1.0, 20.0, 20.0]
    assert "113103" not in {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}


def test_with_the_option_graphics_stay_and_their_text_is_cleaned(tmp_path: Path) -> None:
    # Unformatted Text Value is cleaned only under Clean Descriptors (Table E.1-1): alone,
    # Clean Graphics keeps the annotation but its text is still a dummy.
    alone = run(tmp_path, "clean_graphics")
    text_object = alone.GraphicAnnotationSequence[0].TextObjectSequence[0]
    assert text_object.UnformattedTextValue == "ANONYMOUS"
    ds = run(tmp_path, "clean_graphics, clean_descriptors")
    assert ds[0x60003000].value == BITMAP  # the bitmap is pixels: the pixel stage checks it
    assert ds[0x50003000].value == b"\x01\x00\x02\x00"
    texts = [
        str(ds[0x60000022].value),
        str(ds[0x60004000].value),
        str(ds[0x50000022].value),
        str(ds.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue),
    ]
    for text in texts:
        assert "Exampleson" not in text and "9990001219" not in text
        assert "see lesion" in text  # cleaned, not blanked
    assert "113103" in {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}
