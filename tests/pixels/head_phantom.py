"""A synthetic head, as CT or MR slices: made here from ellipsoids, no patient involved.

Patient coordinates are LPS in mm (+x left, +y back, +z up; the face looks towards -y).
The intracranial cavity is a cerebrum whose front third rests on a flat anterior cranial
fossa floor (the orbital roofs) plus a cerebellum below and behind it; the brain is the
cavity less 3 mm of fluid, the skull 6 mm of bone around it, the scalp 5 mm of skin. In
front and below hangs the face: a soft-tissue mass over a shell of facial bone, two eye
sockets with eyeballs, a nose (a ridge that grows from the nasion to a tip 20 mm proud of
its base), two lips and a chin; a neck with a vertebral column runs down to the edge.

The arrays are indexed ``[z, y, x]`` with 2 mm voxels: slice ``k`` of the series is
``values[k]``, rows run along +y and columns along +x (Image Orientation (Patient)
``1\\0\\0\\0\\1\\0``). Noise is Gaussian with a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

SPACING = 2.0
SHAPE = (90, 104, 80)  # z, y, x
ORIGIN = (-80.0, -108.0, -104.0)  # x, y, z of voxel [0, 0, 0]
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"

# Tissue values: Hounsfield units for CT, arbitrary T1-like units for MR.
CT_VALUES = {"air": -1000, "soft": 40, "bone": 900, "csf": 8, "brain": 35, "eye": 10}
MR_VALUES = {"air": 0, "soft": 600, "bone": 40, "csf": 120, "brain": 450, "eye": 150}

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Phantom:
    """The head's values and its parts, all ``[z, y, x]``."""

    values: npt.NDArray[np.float32]
    brain: Mask
    nose: Mask  # below its top 6 mm (the bridge, which lies close to the brain)
    lips: Mask
    chin: Mask
    eyes: Mask
    eye_fronts: Mask  # the front of each eye, at and below its centre
    far: Mask  # the top and the back of the head
    modality: str


def _coordinates(pitch: float = 0.0) -> tuple[npt.NDArray[np.float64], ...]:
    """Head coordinates of each voxel: LPS, turned by ``pitch`` degrees about the x axis
    (positive: the chin tucks towards the chest)."""
    z, y, x = np.indices(SHAPE, dtype=np.float64) * SPACING
    x, y, z = x + ORIGIN[0], y + ORIGIN[1], z + ORIGIN[2]
    c, s = np.cos(np.radians(pitch)), np.sin(np.radians(pitch))
    return x, c * y + s * z, -s * y + c * z


def _ellipsoid(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    z: npt.NDArray[np.float64],
    centre: tuple[float, float, float],
    radii: tuple[float, float, float],
) -> Mask:
    return (
        ((x - centre[0]) / radii[0]) ** 2
        + ((y - centre[1]) / radii[1]) ** 2
        + ((z - centre[2]) / radii[2]) ** 2
    ) <= 1.0


def _cavity(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], z: npt.NDArray[np.float64], grow: float
) -> Mask:
    """The intracranial cavity grown (or shrunk, if negative) by ``grow`` mm."""
    cerebrum = _ellipsoid(x, y, z, (0, 12, 22), (56 + grow, 74 + grow, 50 + grow))
    cerebrum &= (y >= -20 - grow) | (z >= 10 - grow)  # the anterior cranial fossa floor
    cerebellum = _ellipsoid(x, y, z, (0, 45, -22), (46 + grow, 32 + grow, 24 + grow))
    return cerebrum | cerebellum


def head_phantom(modality: str = "CT", seed: int = 5, pitch: float = 0.0) -> Phantom:
    """The synthetic head in ``modality`` ("CT" or "MR") values, with its labelled parts,
    nodding by ``pitch`` degrees."""
    tissue = CT_VALUES if modality == "CT" else MR_VALUES
    x, y, z = _coordinates(pitch)
    label = np.full(SHAPE, "air", dtype=object)
    # Neck, with the vertebral column in it.
    neck = ((x / 45) ** 2 + ((y - 20) / 45) ** 2 <= 1) & (z <= -30)
    label[neck] = "soft"
    label[neck & ((x / 10) ** 2 + ((y - 35) / 10) ** 2 <= 1)] = "bone"
    # Face: soft tissue over a shell of facial bone.
    face = _ellipsoid(x, y, z, (0, -28, -30), (52, 52, 48))
    label[face] = "soft"
    shell = _ellipsoid(x, y, z, (0, -24, -34), (44, 44, 40)) & ~_ellipsoid(
        x, y, z, (0, -24, -34), (38, 38, 34)
    )
    label[shell] = "bone"
    # Cranium: scalp, skull, fluid, brain.
    label[_cavity(x, y, z, 11) & ~face] = "soft"
    label[_cavity(x, y, z, 6)] = "bone"
    label[_cavity(x, y, z, 0)] = "csf"
    brain = _cavity(x, y, z, -3)
    label[brain] = "brain"
    # The relief a face detector looks for: a brow ridge over the eyes, cheekbones and the
    # wings of the nose (measured: without them the detector's scores are marginal).
    brow = _ellipsoid(x, y, z, (0, -70, 8), (46, 8, 6))
    cheeks = _ellipsoid(x, y, z, (-36, -66, -22), (14, 10, 10)) | _ellipsoid(
        x, y, z, (36, -66, -22), (14, 10, 10)
    )
    wings = _ellipsoid(x, y, z, (-10, -80, -27), (7, 7, 5)) | _ellipsoid(
        x, y, z, (10, -80, -27), (7, 7, 5)
    )
    label[(brow | cheeks | wings) & (label == "air")] = "soft"
    # Nose: a ridge from the nasion (z = 0) to the base (z = -30).
    t = np.clip(-z / 30.0, 0.0, 1.0)
    tip, base = -76.0 - 22.0 * t, -62.0
    half_width = (3.0 + 11.0 * t) * (y - tip) / (base - tip)
    nose = (z <= 0) & (z >= -30) & (y >= tip) & (y <= base) & (np.abs(x) <= half_width)
    label[nose & (label == "air")] = "soft"
    nose &= label == "soft"
    # Lips and chin.
    lips = _ellipsoid(x, y, z, (0, -80, -40), (20, 6, 4)) | _ellipsoid(
        x, y, z, (0, -79, -49), (18, 6, 4)
    )
    chin = _ellipsoid(x, y, z, (0, -66, -70), (24, 12, 10))
    label[(lips | chin) & (label == "air")] = "soft"
    mouth = (np.abs(x) <= 16) & (y <= -72) & (z >= -46) & (z <= -43)
    label[mouth] = "air"
    lips &= label == "soft"
    chin &= label == "soft"
    # Eye sockets, with the eyeballs in them.
    eyes = np.zeros(SHAPE, dtype=np.bool_)
    for side in (-30.0, 30.0):
        socket = _ellipsoid(x, y, z, (side, -54, -7), (13, 13, 13)) & (y < -44)
        label[socket] = "air"
        eyes |= _ellipsoid(x, y, z, (side, -54, -7), (10, 10, 10))
    label[eyes] = "eye"
    values = np.zeros(SHAPE, dtype=np.float32)
    for name, value in tissue.items():
        values[label == name] = value
    rng = np.random.default_rng(seed)
    if modality == "CT":
        values += rng.normal(0.0, 8.0, SHAPE).astype(np.float32)
    else:  # magnitude images: Rician-like noise, never negative
        values = np.hypot(values + rng.normal(0, 12, SHAPE), rng.normal(0, 12, SHAPE)).astype(
            np.float32
        )
    return Phantom(
        values=values,
        brain=brain,
        nose=nose & (z <= -6),
        lips=lips,
        chin=chin,
        eyes=eyes,
        eye_fronts=eyes & (y <= -60) & (z <= -8),
        far=(z >= 40) | ((y >= 30) & (z >= -40)),
        modality=modality,
    )


def _base(modality: str, series: str, k: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CT_IMAGE if modality == "CT" else MR_IMAGE
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[series, str(k)])
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[series])
    ds.Modality = modality
    ds.PatientName = "PHANTOM^HEAD"
    ds.PatientID = "SYNTH-0001"
    ds.InstanceNumber = k + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelSpacing = [SPACING, SPACING]
    ds.SliceThickness = SPACING
    return ds


def _store(ds: Dataset, values: npt.NDArray[np.float32], modality: str) -> None:
    """Pixel Data of ``values`` (one frame or several): CT unsigned in 12 of 16 bits with
    Rescale Intercept -1024, MR unsigned in 16 bits as is."""
    ds.BitsAllocated = 16
    ds.PixelRepresentation = 0
    if modality == "CT":
        ds.BitsStored, ds.HighBit = 12, 11
        stored = np.clip(np.rint(values + 1024), 0, 4095)
    else:
        ds.BitsStored, ds.HighBit = 16, 15
        stored = np.clip(np.rint(values), 0, 65535)
    ds.PixelData = stored.astype("<u2").tobytes()


def _describe(ds: Dataset, body_part: str, description: str) -> None:
    ds.BodyPartExamined = body_part
    ds.SeriesDescription = description
    ds.StudyDescription = description


def slices(
    values: npt.NDArray[np.float32],
    modality: str,
    *,
    body_part: str = "HEAD",
    description: str = "HEAD PHANTOM",
    series: str = "head",
    pixel_mm: float = SPACING,
    step_mm: float = SPACING,
    origin: tuple[float, float, float] = ORIGIN,
) -> list[Dataset]:
    """Axial single-frame slices of ``values[z, y, x]``, bottom to top, then shuffled (every
    other one first) so that sorting has work to do. An empty ``body_part`` or
    ``description`` leaves that attribute out: a header that says nothing of the head."""
    out: list[Dataset] = []
    for k in range(values.shape[0]):
        ds = _base(modality, series, k)
        _describe(ds, body_part, description)
        for keyword in ("BodyPartExamined", "SeriesDescription", "StudyDescription"):
            if not ds.get(keyword):
                del ds[keyword]
        ds.PixelSpacing = [pixel_mm, pixel_mm]
        ds.SliceThickness = step_mm
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * step_mm]
        ds.Rows, ds.Columns = values.shape[1], values.shape[2]
        if modality == "CT":
            ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        _store(ds, values[k], modality)
        out.append(ds)
    return out[::2] + out[1::2]


def sagittal_slices(values: npt.NDArray[np.float32], modality: str) -> list[Dataset]:
    """Sagittal slices, right to left: rows run down the patient (-z), columns back (+y)."""
    out: list[Dataset] = []
    top = ORIGIN[2] + (values.shape[0] - 1) * SPACING
    for i in range(values.shape[2]):
        ds = _base(modality, "sagittal", i)
        _describe(ds, "HEAD", "HEAD PHANTOM SAG")
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [ORIGIN[0] + i * SPACING, ORIGIN[1], top]
        ds.Rows, ds.Columns = values.shape[0], values.shape[1]
        if modality == "CT":
            ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        _store(ds, np.ascontiguousarray(values[::-1, :, i]), modality)
        out.append(ds)
    return out


def enhanced_ct(values: npt.NDArray[np.float32]) -> Dataset:
    """One Enhanced CT Image: every axial slice a frame, geometry in functional groups."""
    ds = _base("CT", "enhanced", 0)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2.1")
    _describe(ds, "HEAD", "HEAD PHANTOM ENHANCED")
    del ds.PixelSpacing, ds.SliceThickness
    ds.NumberOfFrames = values.shape[0]
    ds.Rows, ds.Columns = values.shape[1], values.shape[2]
    measures = Dataset()
    measures.PixelSpacing = [SPACING, SPACING]
    measures.SliceThickness = SPACING
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    rescale = Dataset()
    rescale.RescaleIntercept, rescale.RescaleSlope, rescale.RescaleType = -1024, 1, "HU"
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelValueTransformationSequence = [rescale]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in range(values.shape[0]):
        position = Dataset()
        position.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * SPACING]
        frame = Dataset()
        frame.PlanePositionSequence = [position]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    _store(ds, values, "CT")
    return ds


#: Trunk phantoms: (body half-width, half-depth) mm, and the organs inside, each an
#: elliptic cylinder (centre x, centre y, half-width, half-depth, CT value).
_TRUNKS: dict[str, tuple[tuple[float, float], list[tuple[float, float, float, float, float]]]] = {
    "thorax": (
        (160.0, 110.0),
        [
            (-70, 0, 55, 75, -850),
            (70, 0, 55, 75, -850),
            (15, -25, 45, 40, 40),
            (0, 80, 16, 16, 700),
        ],
    ),
    "abdomen": (
        (165.0, 120.0),
        [
            (-60, -10, 80, 60, 60),
            (60, 10, 30, 25, 35),
            (30, -50, 15, 10, -900),
            (0, 85, 18, 18, 700),
        ],
    ),
    "pelvis": (
        (175.0, 115.0),
        [(-95, 20, 35, 45, 700), (95, 20, 35, 45, 700), (0, -35, 35, 30, 5), (0, 75, 25, 12, 700)],
    ),
}


def trunk_slices(
    kind: str = "thorax",
    *,
    field_mm: float = 400.0,
    count: int = 40,
    modality: str = "CT",
    body_part: str = "",
    description: str = "",
) -> list[Dataset]:
    """An axial trunk series (``kind`` thorax, abdomen or pelvis): ``count`` slices 5 mm
    apart over a square ``field_mm`` field of view (2 mm pixels), no head anywhere. With a
    field of 200 mm it is the size of a head series: a child's trunk, or a field of view
    centred on the heart. MR values are the CT ones moved up by 1000 (air 0)."""
    half, organs = _TRUNKS[kind]
    n = round(field_mm / 2.0)
    scale = min(1.0, field_mm / 400.0)  # a small field shows a small body (a child's)
    y, x = (np.indices((n, n), dtype=np.float64) - (n - 1) / 2) * 2.0
    section = np.full((n, n), -1000.0)
    section[(x / (half[0] * scale)) ** 2 + (y / (half[1] * scale)) ** 2 <= 1] = 40.0
    for cx, cy, rx, ry, value in organs:
        inside = ((x - cx * scale) / (rx * scale)) ** 2 + ((y - cy * scale) / (ry * scale)) ** 2
        section[inside <= 1] = value
    rng = np.random.default_rng(7)
    values = (section[None] + rng.normal(0.0, 8.0, (count, n, n))).astype(np.float32)
    if modality == "MR":
        values = np.clip(values + 1000.0, 0.0, None).astype(np.float32)
    corner = -(n - 1) / 2 * 2.0
    return slices(
        values,
        modality,
        body_part=body_part,
        description=description,
        series=f"{kind}-{field_mm:.0f}",
        pixel_mm=2.0,
        step_mm=5.0,
        origin=(corner, corner, -100.0),
    )


def chest_slices() -> list[Dataset]:
    """A chest CT as sent: 40 slices over a 400 mm field of view, no head anywhere."""
    return trunk_slices("thorax", body_part="CHEST", description="CT CHEST ABDOMEN")
