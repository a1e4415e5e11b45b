"""Generate a whole synthetic site: plan, build each file, write it, and write the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicomhaven.errors import ConfigError
from dicomhaven.synth._answer_key import AnswerKey, FileKind, FileRecord, Plant
from dicomhaven.synth._clinical import write_clinical
from dicomhaven.synth._images import build_ct, build_mammo
from dicomhaven.synth._people import make_patients, make_site
from dicomhaven.synth._plan import Context, Sizes, Target, plan_site, targets
from dicomhaven.synth._plants import Planter
from dicomhaven.synth._reports import build_dose_screen, build_report
from dicomhaven.synth._ultrasound import build_ultrasound

__all__ = ["generate_site"]

#: Identifies dicomhaven's synthetic-site writer in every file's meta information.
IMPLEMENTATION_CLASS_UID = UID("2.25.241989317521968907099164685914728298942")
IMPLEMENTATION_VERSION = "DICOMHAVEN_0_1"

Builder = Callable[[Context, Target, Planter], None]

_BUILDERS: dict[FileKind, Builder] = {
    FileKind.MAMMO: build_mammo,
    FileKind.CT: build_ct,
    FileKind.US: build_ultrasound,
    FileKind.US_CINE: build_ultrasound,
    FileKind.DOSE_SCREEN: build_dose_screen,
    FileKind.SR: build_report,
}


def _check_out(out: Path, patients: int) -> Path:
    if patients < 1:
        raise ConfigError(f"patients must be at least 1, got {patients}")
    export = out / "export"
    if export.exists() and (not export.is_dir() or any(export.iterdir())):
        raise ConfigError(
            f"{export} already exists and is not empty; choose a new output folder or delete it"
        )
    return export


def _write(path: Path, dataset: Dataset) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    dataset.file_meta = meta
    dataset.preamble = b"\0" * 128
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)


def generate_site(
    out: Path,
    *,
    patients: int,
    seed: int,
    full_size: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> AnswerKey:
    """Write a fake hospital's DICOM export under ``out/export`` and its answer key.

    The same ``seed`` always gives byte-identical files and key. ``progress(done, total)``
    is called after each file. Raises ConfigError when ``out/export`` is not empty.
    """
    export = _check_out(out, patients)
    site = make_site(seed)
    people = make_patients(seed, patients, site)
    sizes = Sizes.for_run(full_size)
    todo = targets(plan_site(seed, site, people, sizes))
    context = Context(seed, site, sizes)
    export.mkdir(parents=True, exist_ok=True)
    files: list[FileRecord] = []
    plants: list[Plant] = []
    for done, target in enumerate(todo, start=1):
        dataset = Dataset()
        planter = Planter(target.path, target.patient.index, dataset)
        _BUILDERS[target.series.kind](context, target, planter)
        _write(out / target.path, dataset)
        files.append(
            FileRecord(
                path=target.path,
                sop_instance_uid=str(target.uid),
                sop_class_uid=str(dataset.SOPClassUID),
                modality=str(dataset.Modality),
                patient=target.patient.index,
                study_instance_uid=str(target.study.uid),
                series_instance_uid=str(target.series.uid),
                kind=target.series.kind,
            )
        )
        plants.extend(planter.plants)
        if progress is not None:
            progress(done, len(todo))
    key = AnswerKey(
        seed=seed,
        full_size=full_size,
        patients=tuple(p.record() for p in people),
        files=tuple(files),
        plants=tuple(plants),
    )
    (out / "answer_key.json").write_text(key.to_json(), encoding="utf-8")
    write_clinical(out, key, seed)
    return key
