"""A stage that fails in a worker process is logged in the site's log (issue 21 #3).

The parent's log file was never set up in the pool's workers, so a worker's warning went
nowhere and a failed object had no trace but its ledger reason. The record must name the
stage, the object key and the exception type, and quote nothing from the exception's text.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from dicomhaven import ingest
from dicomhaven.catalogue import ObjectStatus
from dicomhaven.cli import main
from dicomhaven.pipeline import Outcome, Pipeline, PipelineObject, StageContext
from dicomhaven.site import Site
from tests.corpora import pydicom_file
from tests.test_import import rows

CANARY = "ZZTEST^Canary"


@dataclass(frozen=True)
class ExplodingStage:
    """Fails as a stage does when a file's value upsets it: the text quotes the value."""

    name: str = "exploding"

    def __call__(self, obj: PipelineObject, ctx: StageContext) -> Outcome | None:
        raise ValueError(f"cannot handle patient {CANARY}")


def exploding_pipeline(site: Site) -> Pipeline:
    return Pipeline(stages=(ExplodingStage(),))


@pytest.mark.integration
def test_a_workers_stage_failure_is_in_the_site_log(
    sqlite_site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm"):
        shutil.copy(pydicom_file(name), folder / name)
    monkeypatch.setattr(ingest, "pipeline_for", exploding_pipeline)
    code = main(["import", "--site", str(sqlite_site.root), "--workers", "2", str(folder)])
    assert code == 0
    # A ValueError on a file's value fails the same way every time: the object is rejected.
    failed = {o.object_key for o in rows(sqlite_site) if o.status == ObjectStatus.REJECTED}
    assert len(failed) == 3
    text = (sqlite_site.logs / "dicomhaven.log").read_text(encoding="utf-8")
    assert CANARY not in text
    records = [json.loads(line) for line in text.splitlines()]
    logged = [r for r in records if r.get("stage") == "exploding"]
    assert {r["object"] for r in logged} == failed
    assert all(r["error"] == "ValueError" and r["level"] == "WARNING" for r in logged)
    assert all("ValueError" in r["message"] for r in logged)
