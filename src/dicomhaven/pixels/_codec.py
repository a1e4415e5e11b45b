"""Decode stored Pixel Data to one array shape, and write an array back truthfully.

Decoding goes through pydicom's pixel backends (the pylibjpeg plugins and pyjpegls for
compressed data). Writing back follows one rule: the file must not claim a compression its
pixels no longer have, and the written pixels must decode to exactly the array given.

* Native (uncompressed, deflated) data is written in the same transfer syntax, in the same
  layout (planar configuration, YBR_FULL_422 subsampling, 1-bit packing, big endian).
* RLE Lossless, JPEG-LS Lossless and JPEG 2000 Lossless are re-encoded in the same syntax
  with pydicom's encoders when they accept the image, and the result is decoded again and
  compared before it is kept.
* Everything else (JPEG baseline/extended/lossless, JPEG-LS near-lossless, JPEG 2000,
  HTJ2K, and any re-encoding pydicom refuses) is written as Explicit VR Little Endian.
  Lossy data is never compressed again: a second lossy pass would change pixels outside
  the regions. Its Lossy Image Compression stays "01" with its ratio and method.

Every write is verified by decoding the new Pixel Data and comparing it with the array.

Nothing is decoded before :func:`check_declared_size` has passed: a file of a few kilobytes
can declare 60000 x 60000 pixels, and a decoder allocates what the header declares before it
finds the data missing (7.4 GB and 23 s for one such file). The check compares the size the
header declares with the limit in force (the site's ``max_pixel_bytes``, set for a block of
work with :func:`pixel_limit`), and the size each compressed frame's own header declares
(JPEG SOF, JPEG-LS SOF55, JPEG 2000 SIZ) with Rows, Columns and Samples per Pixel: a decoder
trusts its codestream, not the DICOM header. :func:`decode` is the one way in to a decoder.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_fragmented_frames, generate_frames
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import get_encoder
from pydicom.pixels.utils import get_nr_frames, pack_bits
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    AllTransferSyntaxes,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000TransferSyntaxes,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)

from dicomhaven.errors import UnsafeContent
from dicomhaven.settings import MAX_PIXEL_BYTES_DEFAULT

__all__ = [
    "DECLARED_SIZE_CHECK",
    "DeclaredSizeError",
    "Decoded",
    "RedactionError",
    "WriteBack",
    "check_declared_size",
    "declared_pixel_bytes",
    "decode",
    "describe_layout",
    "lut_header",
    "pixel_limit",
    "transfer_syntax",
    "write_back",
]


class RedactionError(UnsafeContent):
    """The pixel data cannot be redacted as asked (unsupported encoding, a region outside
    the image, a write that does not decode back): the object must be held, not released.
    The message names attributes and transfer syntaxes, never a value read from the file."""


#: How every reason this check gives begins: a held object's reason names the check.
DECLARED_SIZE_CHECK = "declared size check"


class DeclaredSizeError(RedactionError):
    """The pixel data declare more than may be decoded, or a compressed frame's own header
    declares another size than the DICOM header: held without decoding. The message names
    the attributes and the limit, never a value read from the file."""


class WriteBack(enum.Enum):
    """How the redacted pixels were written back into the data set."""

    NATIVE = "native"
    """Uncompressed (or deflated) before and after, in the same transfer syntax."""
    REENCODED = "re-encoded"
    """Losslessly compressed again in the input's transfer syntax, verified by decoding."""
    DECOMPRESSED = "decompressed"
    """Written as Explicit VR Little Endian because the input syntax cannot be re-encoded
    losslessly here (lossy input, or an encoder pydicom does not have)."""


# Syntaxes whose data is always lossy.
_LOSSY = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit})
# Syntaxes that may hold lossy or lossless data: the header's Lossy Image Compression
# decides (for JPEG-LS, the NEAR parameter of every frame when the header is silent), and
# otherwise its absence is read as lossy: claiming a loss that did not happen is the safe
# error.
_MAYBE_LOSSY = frozenset({JPEGLSNearLossless, JPEG2000, HTJ2K})
# Lossless syntaxes pydicom 3 can encode; others are written uncompressed.
_REENCODABLE = frozenset({RLELossless, JPEGLSLossless, JPEG2000Lossless})
# Lossy Image Compression Method (0028,2114) defined terms, by syntax.
_METHOD = {
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEGExtended12Bit: "ISO_10918_1",
    JPEGLSNearLossless: "ISO_14495_1",
    JPEG2000: "ISO_15444_1",
    HTJ2K: "ISO_15444_15",
}
# Photometric interpretations an uncompressed array may carry here.
_NATIVE_PHOTOMETRIC = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422"}
)


@dataclass(frozen=True)
class Decoded:
    """The decoded pixels as (frames, rows, columns, samples), native byte order, writable.

    ``photometric`` describes ``frames`` (after any colour conversion by the decoder);
    ``x_align`` is 2 when the data will be written back as subsampled YBR_FULL_422, whose
    two pixels of a pair share their chroma, so a region must cover whole pairs.
    """

    frames: np.ndarray[Any, np.dtype[Any]]
    photometric: str
    syntax: UID
    source_lossy: bool
    x_align: int


def _options(**options: Any) -> dict[str, Any]:
    """Decoder options (pydicom annotates them in a way mypy cannot check)."""
    return options


def transfer_syntax(dataset: Dataset) -> UID:
    """The data set's transfer syntax; for a file without File Meta Information (read with
    ``force=True``), the encoding it was read with."""
    meta = getattr(dataset, "file_meta", None)
    value = meta.get("TransferSyntaxUID") if meta is not None else None
    if value:
        return UID(str(value))
    implicit, little = dataset.original_encoding
    if implicit is None or little is None:
        raise RedactionError(
            "the data set has no Transfer Syntax UID (0002,0010) and was not read from a "
            "file; set dataset.file_meta.TransferSyntaxUID before redacting"
        )
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


# Photometric Interpretation defined terms (PS3.3 C.7.6.3.1.2): a reason names only these.
_PHOTOMETRIC_TERMS = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "YBR_FULL",
     "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB"}
)  # fmt: skip


def _is_known_syntax(syntax: UID) -> bool:
    """Whether ``syntax`` is a transfer syntax pydicom knows (a standard one)."""
    return syntax in AllTransferSyntaxes


def _syntax_name(dataset: Dataset) -> str:
    """The transfer syntax's name from the standard; never the UID itself (a file can put
    anything there)."""
    try:
        syntax = transfer_syntax(dataset)
    except RedactionError:
        return "no transfer syntax"
    return syntax.name if _is_known_syntax(syntax) else "an unknown transfer syntax"


def _small(dataset: Dataset, keyword: str) -> int | None:
    """A small count or bit depth from the header, None when absent or not one."""
    try:
        value = int(dataset.get(keyword))
    except Exception:  # absent, empty, or not a number
        return None
    return value if 0 <= value <= 1 << 16 else None


def describe_layout(dataset: Dataset) -> str:
    """The pixel layout in words, for a held object's reason: transfer syntax, colour
    model, samples and planar configuration, bits, sign, frames, e.g. "Explicit VR Big
    Endian, PALETTE COLOR, 16 bits allocated (16 stored, high bit 15), unsigned, 1 frame".

    Only the standard's names and small numbers appear: an unknown UID or term is called
    unknown, so the words can never carry a value a file was made to hold."""
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip().upper()
    colour = photometric if photometric in _PHOTOMETRIC_TERMS else "an unknown colour model"
    if not photometric:
        colour = "no Photometric Interpretation"
    parts = [_syntax_name(dataset), colour]
    samples = _small(dataset, "SamplesPerPixel")
    if samples is not None and samples != 1:
        planar = _small(dataset, "PlanarConfiguration")
        planes = f", planar configuration {planar}" if planar is not None else ""
        parts.append(f"{samples} samples per pixel{planes}")
    bits = _small(dataset, "BitsAllocated")
    stored, high = _small(dataset, "BitsStored"), _small(dataset, "HighBit")
    depth = "no Bits Allocated" if bits is None else f"{bits} bits allocated"
    if stored is not None:
        depth += f" ({stored} stored, high bit {high if high is not None else 'not given'})"
    parts.append(depth)
    sign = _small(dataset, "PixelRepresentation")
    signs = {0: "unsigned", 1: "signed"}
    parts.append(signs.get(-1 if sign is None else sign, "no Pixel Representation"))
    frames = _small(dataset, "NumberOfFrames")
    parts.append(f"{frames if frames else 1} frame{'s' if frames and frames > 1 else ''}")
    return ", ".join(parts)


# Palette Color LUT Data that pydicom reads in the machine's byte order whatever the file's
# (it reads segmented tables, and Modality and VOI LUT Data, in the transfer syntax's order).
_PALETTE_DATA = tuple(f"{c}PaletteColorLookupTableData" for c in ("Red", "Green", "Blue", "Alpha"))


def lut_header(dataset: Dataset, photometric: str | None = None) -> Dataset:
    """A copy of ``dataset``'s Image Pixel attributes (group 0028, its lookup tables too)
    that pydicom's LUT functions read as the file means them.

    Its elements are its own: a change to it never reaches the data set to be written.
    ``photometric`` (None: the data set's) is what the decoded frames are after any colour
    conversion by the decoder. Its File Meta holds the data set's transfer syntax, which
    pydicom needs to read segmented palettes and Modality and VOI LUT Data; big-endian
    Palette Color LUT Data is byte-swapped, since pydicom reads those tables in the
    machine's order whatever the file's.
    """
    header = Dataset()
    for element in dataset.group_dataset(0x0028):
        header.add(copy.deepcopy(element))
    if photometric is not None:
        header.PhotometricInterpretation = photometric
    try:
        syntax = transfer_syntax(dataset)
    except RedactionError:  # a data set made in memory: its values are native already
        syntax = ExplicitVRLittleEndian
    header.file_meta = FileMetaDataset()
    header.file_meta.TransferSyntaxUID = syntax
    descriptor = header.get("RedPaletteColorLookupTableDescriptor")
    if syntax == ExplicitVRBigEndian and descriptor is not None:
        entries = int(descriptor[0]) or 65536
        for keyword in _PALETTE_DATA:
            value = header.get(keyword)
            if isinstance(value, bytes) and len(value) == 2 * entries:  # 16-bit entries
                header[keyword].value = np.frombuffer(value, ">u2").astype("<u2").tobytes()
    return header


def _jpeg_ls_near(frame: bytes) -> int | None:
    """The NEAR parameter of a JPEG-LS frame's first scan (0: lossless), None if unreadable."""
    position = 2  # after SOI
    while position + 4 <= len(frame) and frame[position] == 0xFF:
        marker = frame[position + 1]
        length = int.from_bytes(frame[position + 2 : position + 4], "big")
        if marker == 0xDA:  # SOS: Ls, Ns, Ns x (Ci, Tmi), NEAR, ILV, Al/Ah
            index = position + 5 + 2 * frame[position + 4]
            return frame[index] if index < len(frame) else None
        position += 2 + length
    return None


def _source_lossy(dataset: Dataset, syntax: UID) -> bool:
    declared = str(dataset.get("LossyImageCompression", "")).strip()
    if syntax in _LOSSY or declared == "01":
        return True
    if syntax == JPEGLSNearLossless and declared != "00":
        # Near-lossless with NEAR = 0 in every frame is lossless (PS3.5 A.4.3).
        try:
            count = get_nr_frames(dataset, warn=False)
            frames = generate_frames(dataset.PixelData, number_of_frames=count)
            return any(_jpeg_ls_near(frame) != 0 for frame in frames)
        except Exception:  # unreadable: decoding will tell; meanwhile assume the loss
            return True
    return syntax in _MAYBE_LOSSY and declared != "00"


_LIMIT: ContextVar[int] = ContextVar("max_pixel_bytes", default=MAX_PIXEL_BYTES_DEFAULT)
# How far into a frame its header is looked for: past any APPn segments of a JPEG, or the
# JP2 boxes some encoders wrap a JPEG 2000 codestream in.
_HEADER_SEARCH = 1 << 18


@contextmanager
def pixel_limit(max_bytes: int) -> Iterator[None]:
    """Decode at most ``max_bytes`` of pixels per image inside the block (in this thread or
    task). The default outside any block is the setting's default: a site's own value is
    set by whoever runs the site's work (the pixel policy carries it)."""
    if max_bytes < 1:
        raise ValueError(f"max_pixel_bytes must be positive, got {max_bytes}")
    token = _LIMIT.set(max_bytes)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def _count(dataset: Dataset, keyword: str, default: int | None = None) -> int:
    """A non-negative count from the header (an empty Number of Frames is one frame)."""
    try:
        value = dataset.get(keyword)
    except Exception:  # pydicom converts a raw value on access: "1A" fails there
        value = "not a number"
    if value is None or value == "":
        if default is None:
            raise DeclaredSizeError(
                f"{DECLARED_SIZE_CHECK}: {keyword} is missing, so the size of the Pixel Data "
                "is not known; the object cannot be read"
            )
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise DeclaredSizeError(
            f"{DECLARED_SIZE_CHECK}: {keyword} is not a number, so the size of the Pixel Data "
            "is not known; the object cannot be read"
        ) from None
    if number < 0:
        raise DeclaredSizeError(f"{DECLARED_SIZE_CHECK}: {keyword} is negative")
    return number


def declared_pixel_bytes(dataset: Dataset) -> int:
    """What decoding ``dataset``'s Pixel Data makes, in bytes, as its header declares it:
    Rows x Columns x Number of Frames x Samples per Pixel x whole bytes of Bits Allocated
    (a decoder gives each 1-bit pixel a byte)."""
    rows, columns = _count(dataset, "Rows"), _count(dataset, "Columns")
    frames = _count(dataset, "NumberOfFrames", 1) or 1
    samples = _count(dataset, "SamplesPerPixel", 1) or 1
    bits = _count(dataset, "BitsAllocated")
    return rows * columns * frames * samples * max(1, -(-bits // 8))


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.3g} GiB"


def check_declared_size(dataset: Dataset, max_bytes: int | None = None) -> None:
    """Raise :class:`DeclaredSizeError` unless ``dataset``'s pixels may be decoded: their
    declared size is within ``max_bytes`` (None: the limit in force, see
    :func:`pixel_limit`) and every compressed frame's own header agrees with Rows, Columns
    and Samples per Pixel. Reads headers only; costs nothing next to a decode."""
    limit = _LIMIT.get() if max_bytes is None else max_bytes
    if declared_pixel_bytes(dataset) > limit:
        raise DeclaredSizeError(
            f"{DECLARED_SIZE_CHECK}: Rows x Columns x Number of Frames x Samples per Pixel x "
            f"Bits Allocated exceeds max_pixel_bytes ({_gib(limit)}); not decoded. Raise the "
            "setting max_pixel_bytes if images this large are expected"
        )
    if "PixelData" not in dataset:
        return
    syntax = transfer_syntax(dataset)
    name = _STREAM_HEADER.get(syntax)
    if name is None:
        return  # native and RLE: the decoder sizes its output from the header alone
    expected = (_count(dataset, "Rows"), _count(dataset, "Columns"),
                _count(dataset, "SamplesPerPixel", 1) or 1)  # fmt: skip
    for index, frame in enumerate(_frame_heads(dataset)):
        declared = _stream_size(frame, syntax)
        if declared is None:
            raise DeclaredSizeError(
                f"{DECLARED_SIZE_CHECK}: frame {index + 1} has no readable {name}, so the "
                "size its decoder would make is not known; not decoded"
            )
        if declared != expected:
            raise DeclaredSizeError(
                f"{DECLARED_SIZE_CHECK}: the {name} of frame {index + 1} declares other "
                "dimensions than Rows, Columns and Samples per Pixel; not decoded (a decoder "
                "would allocate what the codestream declares)"
            )


_STREAM_HEADER = {
    **{UID(s): "JPEG SOF marker" for s in JPEGTransferSyntaxes},
    **{UID(s): "JPEG-LS SOF55 marker" for s in JPEGLSTransferSyntaxes},
    **{UID(s): "JPEG 2000 SIZ marker" for s in JPEG2000TransferSyntaxes},
}


def _frame_heads(dataset: Dataset) -> Iterator[bytes]:
    """The first bytes of each declared frame of encapsulated Pixel Data (enough for its
    header), split as pydicom's decoders split them."""
    count = _count(dataset, "NumberOfFrames", 1) or 1
    offsets = None
    if "ExtendedOffsetTable" in dataset and "ExtendedOffsetTableLengths" in dataset:
        offsets = (dataset.ExtendedOffsetTable, dataset.ExtendedOffsetTableLengths)
    try:
        frames = generate_fragmented_frames(
            dataset.PixelData, number_of_frames=count, extended_offsets=offsets
        )
        for fragments in islice(frames, count):
            head = b""
            for fragment in fragments:
                head += fragment[: _HEADER_SEARCH - len(head)]
                if len(head) >= _HEADER_SEARCH:
                    break
            yield head
    except DeclaredSizeError:
        raise
    except Exception as exc:  # malformed encapsulation: the decoder would fail too
        raise DeclaredSizeError(
            f"{DECLARED_SIZE_CHECK}: the encapsulated Pixel Data cannot be split into its "
            f"frames ({type(exc).__name__}); not decoded"
        ) from exc


# JPEG start-of-frame markers (ITU T.81 B.1.1.3): C0-CF except DHT, JPG and DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_LS_SOF = 0xF7  # SOF55, ITU T.87 C.2.2
_SOS, _EOI = 0xDA, 0xD9
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: no length follows


def _jpeg_frame_size(head: bytes, markers: frozenset[int]) -> tuple[int, int, int] | None:
    """(lines, samples per line, components) of a JPEG or JPEG-LS frame header: the first
    start-of-frame marker in ``markers`` after SOI, walking the segments by their lengths."""
    if head[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(head):
        if head[position] != 0xFF:
            return None
        marker = head[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker in (_SOS, _EOI):
            return None  # scan data before any frame header
        length = int.from_bytes(head[position + 2 : position + 4], "big")
        if marker in markers:
            segment = head[position + 4 : position + 2 + length]
            if length < 8 or len(segment) < 6:
                return None
            lines = int.from_bytes(segment[1:3], "big")
            per_line = int.from_bytes(segment[3:5], "big")
            return lines, per_line, segment[5]
        position += 2 + length
    return None


def _j2k_size(head: bytes) -> tuple[int, int, int] | None:
    """(height, width, components) from a JPEG 2000 codestream's SIZ marker segment (ISO
    15444-1 A.5.1), found after SOC at the start or inside a JP2 file's boxes."""
    start = head.find(b"\xff\x4f\xff\x51")
    if start < 0 or len(head) < start + 42:
        return None
    siz = head[start + 4 :]
    x_size, y_size = int.from_bytes(siz[4:8], "big"), int.from_bytes(siz[8:12], "big")
    x_offset, y_offset = int.from_bytes(siz[12:16], "big"), int.from_bytes(siz[16:20], "big")
    components = int.from_bytes(siz[36:38], "big")
    return y_size - y_offset, x_size - x_offset, components


def _stream_size(head: bytes, syntax: UID) -> tuple[int, int, int] | None:
    """(rows, columns, samples) a JPEG, JPEG-LS or JPEG 2000 frame's own header declares;
    None if it cannot be read."""
    if syntax in JPEG2000TransferSyntaxes:
        return _j2k_size(head)
    if syntax in JPEGLSTransferSyntaxes:
        return _jpeg_frame_size(head, frozenset({_JPEG_LS_SOF}))
    return _jpeg_frame_size(head, _SOF)


#: How the reason begins when Pixel Data cannot be decoded: the layout follows, in words.
_NOT_DECODABLE = "pixels not decodable"


def _why_not_decoded(dataset: Dataset, syntax: UID) -> str:
    """Why pydicom's decoder gave up, as far as the header tells: uncompressed data shorter
    than the header declares is truncated; otherwise the decoder's plugins refused it."""
    if syntax.is_compressed:
        return "every installed decoder for this transfer syntax refused the data"
    try:
        pixels = _count(dataset, "Rows") * _count(dataset, "Columns")
        pixels *= _count(dataset, "NumberOfFrames", 1) or 1
        pixels *= _count(dataset, "SamplesPerPixel", 1) or 1
        expected = -(-pixels * _count(dataset, "BitsAllocated") // 8)
        stored = len(dataset.PixelData)
    except Exception:  # the header does not say: the decoder's refusal is all there is
        return "pydicom's decoder refused the data"
    if stored < expected:
        return f"Pixel Data holds {stored} of the {expected} bytes its header declares (truncated)"
    return "pydicom's decoder refused the data"


def _check_palette(dataset: Dataset) -> None:
    """A PALETTE COLOR image is shown through its three tables: each must have a descriptor
    of three values with 8 or 16 bits an entry, and data of that many entries (or segmented
    data, which pydicom expands), else it cannot be shown to be read."""
    if str(dataset.get("PhotometricInterpretation", "")).strip().upper() != "PALETTE COLOR":
        return
    for colour in ("Red", "Green", "Blue"):
        descriptor = dataset.get(f"{colour}PaletteColorLookupTableDescriptor")
        data = dataset.get(f"{colour}PaletteColorLookupTableData")
        segmented = f"Segmented{colour}PaletteColorLookupTableData" in dataset
        try:
            entries, _, bits = (int(v) for v in descriptor)
        except Exception:  # absent, or not three numbers
            entries, bits = -1, 0
        entries = entries or 65536
        sized = isinstance(data, bytes) and len(data) in (entries, 2 * entries)
        if bits not in (8, 16) or not (sized or (data is None and segmented)):
            raise RedactionError(
                f"{_NOT_DECODABLE} ({describe_layout(dataset)}): its {colour} Palette Color "
                "Lookup Table is missing, or its data do not hold the entries its descriptor "
                "declares, so its colours are not known"
            )


def decode(dataset: Dataset) -> Decoded:
    """Decode every frame of ``dataset``'s Pixel Data, once :func:`check_declared_size`
    has passed (with the limit in force, see :func:`pixel_limit`).

    Lossless data is decoded without colour conversion (YBR_FULL stays YBR_FULL, so the
    stored values are kept exactly); lossy data is decoded as a viewer shows it (YCbCr
    converted to RGB), since it is never re-encoded.
    """
    for tag, name in (
        ("(7FE0,0008)", "Float Pixel Data"),
        ("(7FE0,0009)", "Double Float Pixel Data"),
    ):
        keyword = name.replace(" ", "")
        if keyword in dataset:
            raise RedactionError(
                f"{tag} {name} ({keyword}) is not read by the pixel stage (floating-point "
                "pixels have no decoder or display here); only integer Pixel Data (7FE0,0010)"
            )
    if "PixelData" not in dataset:
        raise RedactionError("the data set has no Pixel Data (7FE0,0010) to redact")
    check_declared_size(dataset)
    syntax = transfer_syntax(dataset)
    if not _is_known_syntax(syntax):
        raise RedactionError(
            f"{_NOT_DECODABLE} ({describe_layout(dataset)}): pydicom has no decoder for "
            "this transfer syntax"
        )
    _check_palette(dataset)
    lossy = _source_lossy(dataset, syntax)
    convert = syntax.is_compressed and lossy
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise RedactionError(
            f"{_NOT_DECODABLE} ({describe_layout(dataset)}): pydicom has no decoder for "
            "this transfer syntax"
        ) from exc
    try:
        array, meta = decoder.as_array(dataset, **_options(as_rgb=convert))
    except Exception as exc:  # any backend failure means the pixels cannot be made safe
        raise RedactionError(
            f"{_NOT_DECODABLE} ({describe_layout(dataset)}): {_why_not_decoded(dataset, syntax)}"
            f" ({type(exc).__name__})"
        ) from exc
    photometric = str(meta["photometric_interpretation"])
    x_align = 1
    if photometric == "YBR_FULL_422":
        photometric = "YBR_FULL"  # a codec upsampled the chroma: written back unsubsampled
    if not syntax.is_compressed and dataset.get("PhotometricInterpretation") == "YBR_FULL_422":
        photometric, x_align = "YBR_FULL_422", 2  # pydicom upsampled it; written subsampled
    if photometric not in _NATIVE_PHOTOMETRIC:
        raise RedactionError(
            f"{_NOT_DECODABLE} ({describe_layout(dataset)}): its colour model cannot be "
            f"redacted here; supported: {', '.join(sorted(_NATIVE_PHOTOMETRIC))}"
        )
    nframes = int(meta["number_of_frames"])
    samples = int(meta["samples_per_pixel"])
    rows, columns = int(meta["rows"]), int(meta["columns"])
    frames = np.array(array, dtype=array.dtype.newbyteorder("="), copy=True)
    frames = frames.reshape(nframes, rows, columns, samples)
    return Decoded(frames, photometric, syntax, lossy, x_align)


def _native_bytes(dataset: Dataset, frames: np.ndarray[Any, np.dtype[Any]], syntax: UID) -> bytes:
    """The array laid out as uncompressed Pixel Data for ``dataset``'s attributes."""
    bits = int(dataset.BitsAllocated)
    if bits == 1:
        return pack_bits(frames.astype(np.uint8).ravel())
    samples = frames.shape[3]
    if dataset.get("PhotometricInterpretation") == "YBR_FULL_422" and samples == 3:
        # Two Y samples, then the pair's shared Cb and Cr (PS3.3 C.7.6.3.1.2).
        frames = np.stack(
            (
                frames[:, :, 0::2, 0],
                frames[:, :, 1::2, 0],
                frames[:, :, 0::2, 1],
                frames[:, :, 0::2, 2],
            ),
            axis=-1,
        )
    elif samples > 1 and int(dataset.get("PlanarConfiguration", 0)) == 1:
        frames = frames.transpose(0, 3, 1, 2)
    kind = "i" if int(dataset.get("PixelRepresentation", 0)) == 1 else "u"
    little = syntax != ExplicitVRBigEndian
    dtype = np.dtype(f"{'<' if little else '>'}{kind}{bits // 8}")
    data = np.ascontiguousarray(frames).astype(dtype).tobytes()
    if len(data) % 2:
        data += b"\x00"
    if not little and bits == 8 and dataset["PixelData"].VR == "OW":
        # 8-bit data in OW is byte-swapped in 16-bit words in big endian (as pydicom reads it).
        data = np.frombuffer(data, dtype="<u2").byteswap().tobytes()
    return data


def _drop_offset_tables(dataset: Dataset) -> None:
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in dataset:
            del dataset[keyword]


def _set_native(dataset: Dataset, data: bytes, syntax: UID) -> None:
    vr = "OB" if int(dataset.BitsAllocated) <= 8 else "OW"
    if syntax == ExplicitVRBigEndian:
        vr = str(dataset["PixelData"].VR)  # kept as read: it decides the byte order above
    dataset.PixelData = data
    element = dataset["PixelData"]
    element.VR = vr
    element.is_undefined_length = False
    _drop_offset_tables(dataset)
    if not hasattr(dataset, "file_meta"):
        dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax


def _pydicom_shape(frames: np.ndarray[Any, np.dtype[Any]]) -> np.ndarray[Any, np.dtype[Any]]:
    """(frames, rows, columns, samples) squeezed to the shape pydicom's encoders expect."""
    out = frames if frames.shape[3] > 1 else frames[..., 0]
    return out[0] if frames.shape[0] == 1 else out


def _decodes_to(dataset: Dataset, frames: np.ndarray[Any, np.dtype[Any]]) -> bool:
    syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    try:
        again, _ = get_decoder(syntax).as_array(dataset, **_options(as_rgb=False))
    except Exception:
        return False
    if again.size != frames.size:
        return False
    return bool(np.array_equal(again.reshape(frames.shape), frames))


def _reencode(dataset: Dataset, decoded: Decoded, frames: np.ndarray[Any, np.dtype[Any]]) -> bool:
    """Compress ``frames`` in the input's own syntax; False when pydicom cannot, or when the
    result does not decode back exactly (the caller then writes the pixels uncompressed)."""
    syntax = decoded.syntax
    if syntax not in _REENCODABLE or not get_encoder(syntax).is_available:
        return False
    original_photometric = str(dataset.PhotometricInterpretation)
    options: dict[str, Any] = {}
    if syntax == JPEG2000Lossless:
        # The reversible colour transform lives in the codestream: keep it as it was.
        options["use_mct"] = original_photometric == "YBR_RCT"
    dataset.PhotometricInterpretation = decoded.photometric
    _drop_offset_tables(dataset)  # the input's would describe the old fragments
    try:
        dataset.compress(syntax, _pydicom_shape(frames), generate_instance_uid=False, **options)
    except Exception:
        return False
    if options.get("use_mct"):
        dataset.PhotometricInterpretation = "YBR_RCT"
    return _decodes_to(dataset, frames)


def _mark_lossy(dataset: Dataset, decoded: Decoded) -> None:
    """Keep the record of a past lossy compression (PS3.3 C.7.6.1.1.5): once "01", always
    "01", with its ratio and method; add them when the input syntax implied them."""
    dataset.LossyImageCompression = "01"
    if "LossyImageCompressionMethod" in dataset or "LossyImageCompressionRatio" in dataset:
        return
    method = _METHOD.get(decoded.syntax)
    if method is None:
        return
    dataset.LossyImageCompressionMethod = method
    compressed = len(dataset.PixelData)
    if decoded.syntax.is_compressed and compressed:
        ratio = decoded.frames.nbytes / compressed
        dataset.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]


def write_back(
    dataset: Dataset, decoded: Decoded, frames: np.ndarray[Any, np.dtype[Any]]
) -> WriteBack:
    """Replace ``dataset``'s Pixel Data with ``frames`` (shaped like ``decoded.frames``)."""
    syntax = decoded.syntax
    if decoded.source_lossy:
        _mark_lossy(dataset, decoded)  # before the write: it reads the compressed length
    if not syntax.is_compressed:
        how = WriteBack.NATIVE
        _set_native(dataset, _native_bytes(dataset, frames, syntax), syntax)
    elif not decoded.source_lossy and _reencode(dataset, decoded, frames):
        return WriteBack.REENCODED
    else:
        how = WriteBack.DECOMPRESSED
        dataset.PhotometricInterpretation = decoded.photometric
        if frames.shape[3] > 1:
            dataset.PlanarConfiguration = 0
        data = _native_bytes(dataset, frames, ExplicitVRLittleEndian)
        _set_native(dataset, data, ExplicitVRLittleEndian)
    if not _decodes_to(dataset, frames):
        raise RedactionError(
            f"the redacted Pixel Data written as {UID(str(dataset.file_meta.TransferSyntaxUID)).name} "
            "does not decode back to the redacted pixels; the object cannot be released"
        )
    return how
