"""A corpus of hostile inputs (issue 22): files that lie, break, nest, flood or trick.

``build_hostile_corpus(folder)`` writes one case per entry of :data:`CASES` into ``folder``
and returns a :class:`HostileCase` for each: its name, its class, the paths it made and a
canary string planted in it. No output of any command (its messages, the site's log,
reason files, ledger reasons, names under OUT) may ever contain a canary; de-identified
copies may not either.

Everything is synthetic and deterministic: the values are made-up identifiers
(``TODD^Julia``, ``ZZ91139748``), UIDs are seeded, random bytes come from a seeded
generator, so two builds are byte for byte the same. DICOM is built with pydicom and,
where the lie is below what pydicom will write, patched at the byte level.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import struct
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom import config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

from tests.pixels.bombs import jpeg2000_bomb

__all__ = ["CASES", "CASE_NAMES", "NAME_CANARY", "HostileCase", "build_hostile_corpus"]

#: The patient name every DICOM case carries (synthetic); it must never show either.
NAME_CANARY = "TODD^Julia"
#: The canary of the Study Instance UID that is a name (the value the issue quotes).
UID_CANARY = "ZZ91139748"
_SIDE = 16  # pixels: tiny images keep the pipeline's sampled OCR cheap


@dataclass(frozen=True)
class HostileCase:
    """One hostile input: what it is, where it lies, and the string no output may hold."""

    name: str
    category: str
    paths: tuple[Path, ...]
    canary: str
    #: Regular files that start like DICOM: worth pushing to the receiver over the network.
    network: bool


def canary_for(name: str) -> str:
    """A case's own canary, derived from its name (stable when cases are added)."""
    digits = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % 10**8
    return f"ZZ{digits:08d}"


@contextmanager
def _lenient() -> Iterator[None]:
    """Let pydicom write (and read back) values the standard forbids: that is the point."""
    settings = config.settings
    saved = settings.reading_validation_mode, settings.writing_validation_mode
    settings.reading_validation_mode = settings.writing_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():  # pydicom's warnings quote the (synthetic) values
            warnings.simplefilter("ignore")
            yield
    finally:
        settings.reading_validation_mode, settings.writing_validation_mode = saved


def _uid(*parts: str) -> UID:
    return generate_uid(entropy_srcs=["hostile-corpus", *parts])


def base(seed: str, canary: str, *, pixels: bool = True) -> Dataset:
    """A small, valid CT slice of a knee (low risk: the pipeline reads only a sample of its
    series), whose patient is ``TODD^Julia`` with Patient ID ``canary``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    uid = _uid(seed)
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uid
    ds.StudyDate, ds.StudyTime = "20240101", "101010"
    ds.Modality, ds.Manufacturer = "CT", "ZZSYNTH"
    ds.StudyDescription = "CT knee"
    ds.PatientName, ds.PatientID = NAME_CANARY, canary
    ds.PatientBirthDate, ds.PatientSex = "19700101", "F"
    ds.BodyPartExamined = "KNEE"
    ds.StudyInstanceUID = _uid(seed, "study")
    ds.SeriesInstanceUID = _uid(seed, "series")
    ds.InstanceNumber = 1
    if pixels:
        ds.Rows = ds.Columns = _SIDE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = np.arange(_SIDE * _SIDE, dtype=np.uint16).tobytes()
    return ds


def encode(ds: Dataset, *, implicit: bool = False) -> bytes:
    """The file's bytes (Part 10, with preamble and file meta)."""
    buffer = io.BytesIO()
    with _lenient():
        if implicit:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def patch(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data`` with its one occurrence of ``old`` replaced by ``new``."""
    assert data.count(old) == 1, f"expected one {old!r} to patch, found {data.count(old)}"
    return data.replace(old, new)


def _explicit(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element."""
    tag = struct.pack("<HH", group, element)
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC"):
        return tag + vr + b"\x00\x00" + struct.pack("<L", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


_ITEM = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
_ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_CONTENT_SEQUENCE = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\x00\x00\xff\xff\xff\xff"


def nested(depth: int, innermost: bytes) -> bytes:
    """Content Sequence items ``depth`` deep, undefined lengths, ``innermost`` at the bottom."""
    return (_CONTENT_SEQUENCE + _ITEM) * depth + innermost + (_ITEM_END + _SEQUENCE_END) * depth


def _report(seed: str, canary: str) -> Dataset:
    """A Basic Text SR header without content: the deep cases append their own."""
    ds = base(seed, canary, pixels=False)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage
    ds.Modality = "SR"
    del ds.ImageType, ds.BodyPartExamined
    return ds


# -- the cases: each writes its files into a folder and returns their paths ------------------

Writer = Callable[[Path, str], list[Path]]


def _write(folder: Path, name: str, data: bytes) -> list[Path]:
    path = folder / name
    path.write_bytes(data)
    return [path]


def _dataset(change: Callable[[Dataset, str], None]) -> Writer:
    """A case that is the base slice with ``change`` applied to it."""

    def write(folder: Path, canary: str) -> list[Path]:
        ds = base(folder.name, canary)
        with _lenient():
            change(ds, canary)
        return _write(folder, "case.dcm", encode(ds))

    return write


def _bytes(make: Callable[[str, str], bytes], name: str = "case.dcm") -> Writer:
    """A case whose bytes ``make(seed, canary)`` returns."""

    def write(folder: Path, canary: str) -> list[Path]:
        return _write(folder, name, make(folder.name, canary))

    return write


def _whole(seed: str, canary: str) -> bytes:
    ds = base(seed, canary)
    ds.StudyDescription = f"knee {canary}"
    return encode(ds)


def _truncated_in_pixels(seed: str, canary: str) -> bytes:
    return _whole(seed, canary)[:-100]


def _truncated_in_header(seed: str, canary: str) -> bytes:
    data = _whole(seed, canary)
    return data[: data.index(canary.encode()) + 4]  # inside the Patient ID's value


def _truncated_in_meta(seed: str, canary: str) -> bytes:
    return _whole(seed, canary)[:150] + canary.encode()


def _long_length(seed: str, canary: str) -> bytes:
    """An Other Patient IDs UT-like element claiming 2 GB in the middle of the data set."""
    data = _whole(seed, canary)
    # Patient Comments (0010,4000) LT; written as UT-shaped with a 4-byte length that lies.
    lie = struct.pack("<HH", 0x0010, 0x4000) + b"UT\x00\x00" + struct.pack("<L", 0x7FFFFFF0)
    marker = struct.pack("<HH", 0x0018, 0x0015)  # Body Part Examined: a later element
    at = data.index(marker)
    return data[:at] + lie + canary.encode() + data[at:]


def _undefined_length_text(seed: str, canary: str) -> bytes:
    """A text element of undefined length (only SQ and encapsulated pixels may have one)."""
    data = _whole(seed, canary)
    bad = struct.pack("<HH", 0x0010, 0x4000) + b"UT\x00\x00\xff\xff\xff\xff" + canary.encode()
    marker = struct.pack("<HH", 0x0018, 0x0015)
    at = data.index(marker)
    return data[:at] + bad + data[at:]


def _odd_lengths(seed: str, canary: str) -> bytes:
    """Odd value lengths and a US element of 3 bytes (US is 2)."""
    ds = base(seed, canary)
    ds.PatientID = canary + "Z"  # 11 characters: odd, written unpadded below
    data = encode(ds)
    data = patch(
        data, b"LO\x0c\x00" + canary.encode() + b"Z ", b"LO\x0b\x00" + canary.encode() + b"Z"
    )
    rows = struct.pack("<HH", 0x0028, 0x0010) + b"US\x02\x00"
    return patch(data, rows + struct.pack("<H", _SIDE), rows[:-2] + b"\x03\x00\x10\x00\x00")


def _deep(depth: int) -> Callable[[str, str], bytes]:
    def make(seed: str, canary: str) -> bytes:
        text = f"{NAME_CANARY} {canary}".encode()
        innermost = _explicit(0x0040, 0xA160, b"UT", text)  # Text Value
        return encode(_report(seed, canary)) + nested(depth, innermost)

    return make


def _meta_says(syntax: UID, *, implicit_body: bool = False) -> Callable[[str, str], bytes]:
    """The file meta names ``syntax``; the data set is encoded otherwise."""

    def make(seed: str, canary: str) -> bytes:
        ds = base(seed, canary)
        ds.StudyDescription = f"knee {canary}"
        data = encode(ds, implicit=implicit_body)
        said = ImplicitVRLittleEndian if implicit_body else ExplicitVRLittleEndian
        old, new = said.encode(), syntax.encode()
        old += b"\x00" * (len(old) % 2)
        new += b"\x00" * (len(new) % 2)
        meta_length = struct.pack("<HH", 0x0002, 0x0010) + b"UI" + struct.pack("<H", len(old))
        data = patch(data, meta_length + old, meta_length[:-2] + struct.pack("<H", len(new)) + new)
        group = struct.pack("<HH", 0x0002, 0x0000) + b"UL\x04\x00"
        at = data.index(group) + len(group)
        (length,) = struct.unpack("<L", data[at : at + 4])
        return data[:at] + struct.pack("<L", length + len(new) - len(old)) + data[at + 4 :]

    return make


def _study_uid_is_a_name(ds: Dataset, canary: str) -> None:
    ds.StudyInstanceUID = f"{NAME_CANARY} {UID_CANARY}"


def _sop_uid_is_a_name(ds: Dataset, canary: str) -> None:
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{NAME_CANARY} {canary}"


def _uid_too_long(ds: Dataset, canary: str) -> None:
    ds.SeriesInstanceUID = "1.2." + "9" * 120 + "." + canary[2:]


def _nul_padding(ds: Dataset, canary: str) -> None:
    ds.PatientID = canary + "\x00junk " + canary
    ds.PatientName = NAME_CANARY + "\x00\x00\x00" + canary
    ds.StudyDescription = "knee\x00" + canary + "\x00"


def _junk_bytes(seed: str, canary: str) -> bytes:
    """UTF-8 declared, Latin-1 and stray 0xFF bytes given, around the canary."""
    ds = base(seed, canary)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyDescription = "knee-XXXXXXXXXXXXXXXXXX"
    data = encode(ds)
    junk = b"\xff\xfe\xe9" + canary.encode() + b"\xc3\x28\x80\x81"
    return patch(data, b"knee-" + b"X" * 18, junk.ljust(23, b"\xff"))  # the same length


def _huge_values(ds: Dataset, canary: str) -> None:
    ds.StudyDescription = (canary + " ") * 5000  # 55 KB in an element of at most 64 characters
    ds.add_new(0x00104000, "UT", f"{NAME_CANARY} {canary} " * 200_000)  # Patient Comments, 4 MB
    ds.add_new(0x00091010, "UN", (canary.encode() + b"\x00") * 100_000)  # unknown private, 1 MB


def _escapes_and_markup(ds: Dataset, canary: str) -> None:
    ds.PatientName = f"[bold red]{NAME_CANARY}[/]\x1b[2J"
    ds.StudyDescription = f"\x1b]0;{canary}\x07[/]\x1b[31m[link=file:///etc]{canary}[/link]\r\n"
    ds.SeriesDescription = f"[/][/][{canary}]"
    ds.InstitutionName = "\x1b[6n\x9b2J" + canary


def _markup_named(folder: Path, canary: str) -> list[Path]:
    """A whole file and a truncated one (listed by name) under names full of markup."""
    whole = _whole(folder.name, canary)
    good = folder / "[bold]good[/]\x1b[31m.dcm"
    bad = folder / "[/]trunc\x1b[2J\nZ\r.dcm"
    good.parent.mkdir()  # "[/]" holds a "/": the name is a folder and a file
    bad.parent.mkdir()
    good.write_bytes(whole)
    bad.write_bytes(_truncated_in_pixels(folder.name + "bad", canary))
    return [good, bad]


def _pixels(change: Callable[[Dataset], None]) -> Writer:
    def apply(ds: Dataset, canary: str) -> None:
        change(ds)

    return _dataset(apply)


def _short_pixels(ds: Dataset) -> None:
    ds.PixelData = bytes(100)


def _long_pixels(ds: Dataset) -> None:
    ds.PixelData = bytes(_SIDE * _SIDE * 2 * 9)


def _rows_zero(ds: Dataset) -> None:
    ds.Rows = 0


def _bits(allocated: int, stored: int) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, stored, stored - 1
        ds.PixelData = bytes((_SIDE * _SIDE * allocated + 7) // 8 + 1 & ~1)

    return change


def _photometric_lie(ds: Dataset) -> None:
    ds.PhotometricInterpretation = "RGB"  # with one sample per pixel


def _no_pixel_bytes(ds: Dataset) -> None:
    ds.PixelData = b""


def _many_frames(ds: Dataset) -> None:
    ds.NumberOfFrames = 2_147_483_647


def _frames_1a(seed: str, canary: str) -> bytes:
    ds = base(seed, canary)
    ds.NumberOfFrames = 11
    frames = struct.pack("<HH", 0x0028, 0x0008) + b"IS\x02\x00"
    return patch(encode(ds), frames + b"11", frames + b"1A")


def _jpeg2000_bomb(folder: Path, canary: str) -> list[Path]:
    path = jpeg2000_bomb(folder / "case.dcm", seed=folder.name)
    ds = pydicom.dcmread(path)
    ds.PatientID, ds.PatientName = canary, NAME_CANARY
    ds.save_as(path, enforce_file_format=True)
    return [path]


def _no_study_uid(ds: Dataset, canary: str) -> None:
    del ds.StudyInstanceUID
    ds.StudyDescription = f"knee {canary}"


def _same_sop_uid(folder: Path, canary: str) -> list[Path]:
    """Two different files that claim the same SOP Instance."""
    first, second = base(folder.name, canary), base(folder.name, canary)
    second.StudyDescription = f"other knee {canary}"
    second.PixelData = bytes(_SIDE * _SIDE * 2)
    return _write(folder, "first.dcm", encode(first)) + _write(folder, "second.dcm", encode(second))


def _link_loop(folder: Path, canary: str) -> list[Path]:
    (folder / "loop-a").symlink_to(folder / "loop-b")
    (folder / "loop-b").symlink_to(folder / "loop-a")
    return [folder / "loop-a", folder / "loop-b"]


def _dangling(folder: Path, canary: str) -> list[Path]:
    (folder / "dangling.dcm").symlink_to(folder / f"gone-{canary[:2]}.dcm")
    return [folder / "dangling.dcm"]


def _link_to_folder(folder: Path, canary: str) -> list[Path]:
    (folder / "target").mkdir()
    (folder / "to-target").symlink_to(folder / "target")
    return [folder / "to-target"]


def _fifo(folder: Path, canary: str) -> list[Path]:
    os.mkfifo(folder / "pipe.dcm")
    return [folder / "pipe.dcm"]


def _socket(folder: Path, canary: str) -> list[Path]:
    with socket.socket(socket.AF_UNIX) as sock:  # the socket file outlives the socket
        sock.bind(str(folder / "sock.dcm"))
    return [folder / "sock.dcm"]


def _unreadable(folder: Path, canary: str) -> list[Path]:
    """Mode 000 (root, as in CI, reads it anyway: then it is an ordinary whole file)."""
    path = folder / "locked.dcm"
    path.write_bytes(_whole(folder.name, canary))
    path.chmod(0)
    return [path]


def _not_dicom(seed: str, canary: str) -> bytes:
    return f"PatientName={NAME_CANARY}\nPatientID={canary}\n".encode() * 40


def _dicm_garbage(seed: str, canary: str) -> bytes:
    noise = np.random.default_rng(int(canary[2:])).bytes(4000)
    return b"\x00" * 128 + b"DICM" + noise[:2000] + canary.encode() + noise[2000:]


def _meta_then_garbage(seed: str, canary: str) -> bytes:
    data = _whole(seed, canary)
    body = data.index(struct.pack("<HH", 0x0008, 0x0005))  # the first data set element
    noise = np.random.default_rng(int(canary[2:])).bytes(3000)
    return data[:body] + noise + canary.encode() + noise


def _preamble_canary(seed: str, canary: str) -> bytes:
    ds = base(seed, canary)
    ds.preamble = f"{NAME_CANARY} {canary}".encode().ljust(128, b"\x00")
    return encode(ds)


def _private_values(ds: Dataset, canary: str) -> None:
    block = ds.private_block(0x0029, "ZZSYNTH PRIVATE", create=True)
    block.add_new(0x10, "LO", canary)
    block.add_new(0x11, "OB", f"{NAME_CANARY}\x00{canary}".encode() + b"\x00")
    block.add_new(0x12, "UN", f"{canary} ".encode())


def _bogus_charset(ds: Dataset, canary: str) -> None:
    ds.SpecificCharacterSet = ["ZZ BOGUS", "ISO 2022 IR 87"]
    ds.StudyDescription = f"knee \x1b$B{canary}"


def _item_length_lie(seed: str, canary: str) -> bytes:
    """A defined-length sequence whose one item claims more bytes than the sequence has."""
    item_value = _explicit(0x0040, 0xA160, b"UT", canary.encode())
    item = b"\xfe\xff\x00\xe0" + struct.pack("<L", len(item_value) + 4000) + item_value
    sequence = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\x00\x00" + struct.pack("<L", len(item))
    return encode(_report(seed, canary)) + sequence + item


def _group_length_lie(seed: str, canary: str) -> bytes:
    data = _whole(seed, canary)
    group = struct.pack("<HH", 0x0002, 0x0000) + b"UL\x04\x00"
    at = data.index(group) + len(group)
    return data[:at] + struct.pack("<L", 10) + data[at + 4 :]


def _no_meta(seed: str, canary: str) -> bytes:
    """An old ACR-NEMA style export: implicit VR data set, no preamble, no file meta."""
    ds = base(seed, canary)
    ds.StudyDescription = f"knee {canary}"
    del ds.file_meta
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=True, little_endian=True)
    data = buffer.getvalue()
    assert not data.startswith(b"\x00" * 128), "no preamble, no file meta"
    return data


def _dates_are_names(ds: Dataset, canary: str) -> None:
    ds.StudyDate = canary
    ds.PatientBirthDate = "TODD"
    ds.StudyTime = canary[2:] + "x"


def _duplicate_element(seed: str, canary: str) -> bytes:
    """Patient ID written twice: a harmless first value, the canary second."""
    data = _whole(seed, canary)
    value = canary.encode()
    first = struct.pack("<HH", 0x0010, 0x0020) + b"LO" + struct.pack("<H", len(value)) + value
    return patch(data, first, _explicit(0x0010, 0x0020, b"LO", b"ZZSAFE0000") + first)


def _out_of_order(seed: str, canary: str) -> bytes:
    """Patient's Name after the Study Instance UID (elements must ascend)."""
    data = _whole(seed, canary)
    name = NAME_CANARY.encode()
    element = struct.pack("<HH", 0x0010, 0x0010) + b"PN" + struct.pack("<H", len(name)) + name
    data = patch(data, element, b"")
    marker = struct.pack("<HH", 0x0020, 0x0013)  # Instance Number
    at = data.index(marker)
    return data[:at] + element + data[at:]


def _unknown_sop_class(ds: Dataset, canary: str) -> None:
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.99999.1"
    ds.StudyDescription = f"knee {canary}"


#: (name, class, writer, network): every case of the corpus, in a fixed order.
CASES: tuple[tuple[str, str, Writer, bool], ...] = (
    ("truncated-in-pixels", "truncation", _bytes(_truncated_in_pixels), True),
    ("truncated-in-header", "truncation", _bytes(_truncated_in_header), True),
    ("truncated-in-meta", "truncation", _bytes(_truncated_in_meta), True),
    ("length-2gb", "bad length", _bytes(_long_length), True),
    ("undefined-length-text", "bad length", _bytes(_undefined_length_text), True),
    ("odd-lengths", "bad length", _bytes(_odd_lengths), True),
    ("item-length-lie", "bad length", _bytes(_item_length_lie), True),
    ("group-length-lie", "bad length", _bytes(_group_length_lie), True),
    ("deep-40", "deep sequence", _bytes(_deep(40)), True),
    ("deep-1000", "deep sequence", _bytes(_deep(1000)), True),
    ("ts-explicit-is-implicit", "transfer syntax lie",
     _bytes(_meta_says(ExplicitVRLittleEndian, implicit_body=True)), True),
    ("ts-big-endian", "transfer syntax lie", _bytes(_meta_says(ExplicitVRBigEndian)), True),
    ("ts-jpeg-native", "transfer syntax lie", _bytes(_meta_says(JPEGBaseline8Bit)), True),
    ("ts-deflated-not", "transfer syntax lie",
     _bytes(_meta_says(DeflatedExplicitVRLittleEndian)), True),
    ("ts-unknown", "transfer syntax lie", _bytes(_meta_says(UID("1.2.826.0.1.3680043.99.7"))), True),
    ("study-uid-is-a-name", "hostile value", _dataset(_study_uid_is_a_name), True),
    ("sop-uid-is-a-name", "hostile value", _dataset(_sop_uid_is_a_name), True),
    ("uid-too-long", "hostile value", _dataset(_uid_too_long), True),
    ("nul-padding", "hostile value", _dataset(_nul_padding), True),
    ("junk-bytes", "hostile value", _bytes(_junk_bytes), True),
    ("huge-values", "hostile value", _dataset(_huge_values), True),
    ("escapes-and-markup", "hostile value", _dataset(_escapes_and_markup), True),
    ("markup-file-names", "hostile name", _markup_named, True),
    ("pixels-short", "bad pixels", _pixels(_short_pixels), True),
    ("pixels-long", "bad pixels", _pixels(_long_pixels), True),
    ("rows-zero", "bad pixels", _pixels(_rows_zero), True),
    ("bits-allocated-7", "bad pixels", _pixels(_bits(7, 7)), True),
    ("bits-allocated-13", "bad pixels", _pixels(_bits(13, 12)), True),
    ("photometric-lie", "bad pixels", _pixels(_photometric_lie), True),
    ("pixel-data-empty", "bad pixels", _pixels(_no_pixel_bytes), True),
    ("frames-2-billion", "bad pixels", _pixels(_many_frames), True),
    ("jpeg2000-bomb", "bad pixels", _jpeg2000_bomb, True),
    ("frames-1A", "bad value", _bytes(_frames_1a), True),
    ("no-study-uid", "missing attribute", _dataset(_no_study_uid), True),
    ("same-sop-uid", "conflicting duplicate", _same_sop_uid, True),
    ("link-loop", "file system", _link_loop, False),
    ("dangling-link", "file system", _dangling, False),
    ("link-to-folder", "file system", _link_to_folder, False),
    ("fifo", "file system", _fifo, False),
    ("socket", "file system", _socket, False),
    ("unreadable", "file system", _unreadable, False),
    ("empty-file", "not DICOM", _bytes(lambda seed, canary: b""), False),
    ("text-file", "not DICOM", _bytes(_not_dicom, "notes.txt"), False),
    ("dicm-then-garbage", "not DICOM", _bytes(_dicm_garbage), True),
    ("meta-then-garbage", "not DICOM", _bytes(_meta_then_garbage), True),
    ("preamble-canary", "own: hidden places", _bytes(_preamble_canary), True),
    ("private-values", "own: hidden places", _dataset(_private_values), True),
    ("bogus-charset", "own: hidden places", _dataset(_bogus_charset), True),
    ("no-file-meta", "own: old exports", _bytes(_no_meta), True),
    ("dates-are-names", "own: hostile value", _dataset(_dates_are_names), True),
    ("duplicate-element", "own: bad structure", _bytes(_duplicate_element), True),
    ("out-of-order", "own: bad structure", _bytes(_out_of_order), True),
    ("unknown-sop-class", "own: hostile value", _dataset(_unknown_sop_class), True),
)  # fmt: skip
CASE_NAMES = tuple(name for name, *_ in CASES)


def build_hostile_corpus(folder: Path) -> list[HostileCase]:
    """Write every case into its own sub-folder of ``folder``; the cases, in order."""
    with _lenient():
        cases = [_build(folder / name, *case) for name, *case in CASES]
    canaries = [case.canary for case in cases]
    assert len(set(canaries)) == len(canaries), "two cases share a canary"
    return cases


def _build(where: Path, category: str, write: Writer, network: bool) -> HostileCase:
    where.mkdir(parents=True)
    canary = UID_CANARY if where.name == "study-uid-is-a-name" else canary_for(where.name)
    return HostileCase(where.name, category, tuple(write(where, canary)), canary, network)
