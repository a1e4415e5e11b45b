"""Run one peer de-identifier over a list of files; runs in the peers' venv, not dicomhaven's.

    PEERS_PYTHON run_peer.py {dicognito|dicom-anonymizer} FILES.json OUT_DIR RESULTS.json

Each file is read, de-identified with the peer's Python API as its documentation shows,
and written to ``OUT_DIR/<index>.dcm``. Only that is timed (not the interpreter start nor
the imports). Writes one JSON list to RESULTS.json (stdout is left to the peers, which
print): ``[seconds, error]`` per file, in order, where ``error`` is null or the
exception's type and message.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pydicom


def dicognito_processor() -> Callable[[Path, Path], None]:
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()

    def process(source: Path, target: Path) -> None:
        dataset = pydicom.dcmread(source)
        anonymizer.anonymize(dataset)
        dataset.save_as(target)

    return process


def dicom_anonymizer_processor() -> Callable[[Path, Path], None]:
    from dicomanonymizer import anonymize_dicom_file

    def process(source: Path, target: Path) -> None:
        anonymize_dicom_file(str(source), str(target))

    return process


PROCESSORS = {"dicognito": dicognito_processor, "dicom-anonymizer": dicom_anonymizer_processor}


def main(tool: str, files_json: str, out_dir: str, results_json: str) -> None:
    process = PROCESSORS[tool]()
    files = [Path(p) for p in json.loads(Path(files_json).read_text())]
    records: list[tuple[float, str | None]] = []
    for index, source in enumerate(files):
        start = time.perf_counter()
        try:
            process(source, Path(out_dir) / f"{index}.dcm")
            error = None
        except Exception as exc:  # a peer's failure on one file is a result, not a crash
            error = f"{type(exc).__name__}: {str(exc).partition(chr(10))[0]}"[:200]
        records.append((time.perf_counter() - start, error))
    Path(results_json).write_text(json.dumps(records))


if __name__ == "__main__":
    main(*sys.argv[1:])
