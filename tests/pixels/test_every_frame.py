"""Every frame of a clip is read and every frame written is verified: a name typed on one
frame in the middle of a loop (not the first, middle or last) is found and blanked, and
what the verifier reads after the detector missed it is blanked in another round."""

from __future__ import annotations

import datetime

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage

from dicomhaven.pixels import KnownValues, PixelOutcome, PixelPolicy, clean_pixels
from dicomhaven.pixels._clean import _frames_to_read
from tests.peers import require_tool

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
NAME = "ZZTEST CANARY"
#: Where the name is drawn (x, y) and the box it fills: measured from the pixels set.
AT = (40, 120)
FRAMES = 9
NAMED_FRAME = 2  # the clip reads today 0, 4 and 8: frame 2 is never seen
KNOWN = KnownValues(("ZZTEST^CANARY",), ("ZZ0000001",), (datetime.date(1950, 1, 2),))


def clip() -> tuple[Dataset, tuple[int, int, int, int]]:
    """A 9-frame greyscale 'ultrasound' loop with the name on one middle frame only, and
    the box (x0, y0, x1, y1) its letters cover."""
    base = Image.new("L", (320, 240), 0)
    ImageDraw.Draw(base).ellipse((150, 60, 300, 220), fill=90)  # something to look at
    named = base.copy()
    ImageDraw.Draw(named).text(AT, NAME, fill=255, font=ImageFont.truetype(FONT, 18))
    ink: npt.NDArray[np.bool_] = np.asarray(named) != np.asarray(base)
    ys, xs = np.nonzero(ink)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    frames = [np.asarray(named if f == NAMED_FRAME else base, np.uint8) for f in range(FRAMES)]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.9999.12.1"
    ds.Modality = "US"
    ds.PatientName, ds.PatientID = "ZZTEST^CANARY", "ZZ0000001"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 240, 320, FRAMES
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.stack(frames).tobytes()
    return ds, box


def blanked(ds: Dataset, box: tuple[int, int, int, int], frame: int) -> bool:
    x0, y0, x1, y1 = box
    return bool((ds.pixel_array[frame, y0:y1, x0:x1] == 0).all())


def test_a_name_on_one_middle_frame_is_blanked() -> None:
    require_tool("tesseract")
    ds, box = clip()
    assert NAMED_FRAME not in _frames_to_read(FRAMES, 3)  # what a three-frame reading sees
    result = clean_pixels(ds, KNOWN, original=ds)
    assert result.outcome is PixelOutcome.REDACTED, result.reason
    assert blanked(ds, box, NAMED_FRAME)


def test_what_the_verifier_reads_on_a_frame_the_detector_skipped_is_blanked() -> None:
    """The detector reads one frame only; the verifier reads every frame, finds the name,
    and it is blanked in another round instead of the image being held."""
    require_tool("tesseract")
    ds, box = clip()
    result = clean_pixels(ds, KNOWN, original=ds, policy=PixelPolicy(frames_to_read=1))
    assert result.outcome is PixelOutcome.REDACTED, result.reason
    assert "found by the verifier" in result.reason
    assert blanked(ds, box, NAMED_FRAME)


def test_no_verifying_round_holds_what_the_verifier_reads() -> None:
    require_tool("tesseract")
    ds, _ = clip()
    policy = PixelPolicy(frames_to_read=1, verify_rounds=0)
    result = clean_pixels(ds, KNOWN, original=ds, policy=policy)
    assert result.outcome is PixelOutcome.HELD
    assert f"frame {NAMED_FRAME + 1}" in result.reason


@pytest.mark.parametrize("bad", [{"frames_to_read": 0}, {"verify_rounds": -1}])
def test_a_policy_refuses_values_it_cannot_honour(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        PixelPolicy(**bad)  # type: ignore[arg-type]
