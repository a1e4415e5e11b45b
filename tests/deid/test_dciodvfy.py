"""dicom3tools' dciodvfy: de-identification adds no new errors to any kind of file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.deid.conftest import DeidentifiedSite
from tests.peers import require_tool


def errors(path: Path) -> set[str]:
    dciodvfy = require_tool("dciodvfy")
    proc = subprocess.run([dciodvfy, "-new", str(path)], capture_output=True, text=True)
    lines = (proc.stdout + proc.stderr).splitlines()
    # Values differ before and after (that is the point): compare the messages without them.
    return {
        re.sub(r"= <[^>]*>|\(value [^)]*\)", "", line) for line in lines if line.startswith("Error")
    }


@pytest.mark.integration
def test_no_new_errors_on_each_kind_of_file(publication_site: DeidentifiedSite) -> None:
    seen: set[str] = set()
    checked = 0
    for record in publication_site.source.key.files:
        if record.kind.value in seen:
            continue
        seen.add(record.kind.value)
        before = errors(publication_site.source.root / record.path)
        after = errors(publication_site.output(record.path))
        assert after - before == set(), (record.kind.value, sorted(after - before))
        checked += 1
    assert checked >= 5
