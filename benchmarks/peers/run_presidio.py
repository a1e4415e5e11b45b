"""Run Presidio's DicomImageRedactorEngine (Tesseract OCR) over files; print JSON timings.

    .pixel-peers-venv/bin/python run_presidio.py OUT FILE...

Run by ``benchmarks/deid_pixels.py`` in the peers' own venv. The analyzer gets a blank spaCy
pipeline: the trained models Presidio asks for are downloaded at run time, which this
machine cannot do, and the DICOM redactor finds names through the header's own values
(``use_metadata``) and patterns, which need no trained model. Only ``redact`` is timed.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import pydicom
import spacy
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import SpacyNlpEngine
from presidio_image_redactor import DicomImageRedactorEngine, ImageAnalyzerEngine


class BlankSpacy(SpacyNlpEngine):  # type: ignore[misc]
    """spaCy's blank English pipeline: tokens, no trained model, nothing downloaded."""

    def load(self) -> None:
        self.nlp = {"en": spacy.blank("en")}


def main() -> None:
    warnings.simplefilter("ignore")
    out, paths = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    out.mkdir(parents=True, exist_ok=True)
    nlp = BlankSpacy(models=[{"lang_code": "en", "model_name": "blank"}])
    nlp.load()
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    engine = DicomImageRedactorEngine(image_analyzer_engine=ImageAnalyzerEngine(analyzer))
    seconds, failed = 0.0, 0
    for i, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        start = time.perf_counter()
        try:
            redacted = engine.redact(dataset, fill="contrast", use_metadata=True)
        except Exception:  # a peer's failure on one file is a result, not a crash
            failed += 1
            continue
        seconds += time.perf_counter() - start
        redacted.save_as(out / f"{i}.dcm")
    print(json.dumps({"seconds": seconds, "failed": failed}))


if __name__ == "__main__":
    main()
