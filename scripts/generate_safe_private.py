"""Generate ``src/dicomhaven/deid/_safe_private.py``: the standard's safe private attributes.

    python scripts/generate_safe_private.py [--deb PATH] [--kb PATH]
    python scripts/generate_safe_private.py --reconcile-only [--kb PATH]

The Retain Safe Private Option keeps only private attributes that DICOM PS3.15 Table
E.3.10-1 lists as safe. No registry we can reach ships that table as data, so the source is
the reference implementation kept by the table's own editor: PixelMed's
``ClinicalTrialsAttributes.isSafePrivateAttribute`` (and ``isSafePrivateSequenceAttribute``),
from Debian's ``libpixelmed-java`` package at the version pinned below (BSD-style licence).
The package is fetched with ``apt-get download`` (or given with ``--deb``) and checked
against the pinned SHA-256; it is never installed.

The table is not copied from the code: the script lists the private creators and groups
the methods compare against (from ``javap``'s disassembly), then *asks the methods* about
every element of every such block by running them in a JVM (``java``, ``javap``: Debian's
``default-jdk-headless``). Only what they answer "safe" is written out.

Then a second step reconciles that list with TCIA's private tag knowledge base (the CSV in
``../shared/reference``, pinned by SHA-256): where the two disagree, the safer action wins.
An element stays on the list only if every row of the knowledge base that names it (at
any depth, creator compared without case) keeps it (``k``), or hashes a UID (``h`` on a
UI: the engine remaps every UID) or offsets a date (``o`` on a DA or DT: the engine moves
every date); any other disposition (delete, an offset of another VR, none given) takes it
off. What the step takes off is written out too (``DELETED_BY_TCIA``), so
``--reconcile-only`` re-runs this step alone, from the module and the CSV, without the
package or a JVM.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
import re
import subprocess
import tempfile
from pathlib import Path

PACKAGE = "libpixelmed-java"
VERSION = "20220618+dfsg-1"
DEB_SHA256 = "fe302a68a30bd33c6e22898fbd47493da775f9715e0f1d0b68f5a5b514c24e39"
JAR = "usr/share/java/pixelmed.jar"
CLASS = "com.pixelmed.dicom.ClinicalTrialsAttributes"
METHODS = ("isSafePrivateAttribute", "isSafePrivateSequenceAttribute")
TARGET = Path(__file__).resolve().parents[1] / "src" / "dicomhaven" / "deid" / "_safe_private.py"
KB = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "reference"
    / "tcia_private_tag_kb_2024-02-01.csv"
)
KB_SHA256 = "68e38b67778ddb8ffa60f46bef894f3931330781e375c52bc06fc86cad44d111"
#: The last private element of a knowledge base row's signature: (gggg,"creator",ee).
KB_ELEMENT = re.compile(r'\(([0-9a-f]{4}),"?(.+?)"?,([0-9a-f]{2})\)$', re.IGNORECASE)

Row = tuple[str, int, int, bool]  # creator, group, element byte, whether a sequence

PROBE = """
import com.pixelmed.dicom.AttributeTag;
import com.pixelmed.dicom.ClinicalTrialsAttributes;
import java.io.BufferedReader;
import java.io.InputStreamReader;

public class Probe {
  public static void main(String[] args) throws Exception {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
    String line;
    while ((line = in.readLine()) != null) {
      String[] f = line.split("\\t");
      int group = Integer.parseInt(f[1]);
      for (int e = 0; e < 256; e++) {
        AttributeTag tag = new AttributeTag(group, 0x1000 | e);
        boolean plain = ClinicalTrialsAttributes.isSafePrivateAttribute(f[0], tag);
        boolean seq = ClinicalTrialsAttributes.isSafePrivateSequenceAttribute(f[0], tag);
        if (plain || seq) {
          System.out.println(f[0] + "\\t" + group + "\\t" + e + "\\t" + (seq ? "SQ" : "-"));
        }
      }
    }
  }
}
"""


def fetch_deb(folder: Path) -> Path:
    subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=folder, check=True)
    (deb,) = folder.glob(f"{PACKAGE}_*.deb")
    return deb


def extract_jar(deb: Path, folder: Path) -> Path:
    if hashlib.sha256(deb.read_bytes()).hexdigest() != DEB_SHA256:
        raise SystemExit(f"{deb}: SHA-256 differs from the pinned {DEB_SHA256}")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(folder / "x")], check=True)
    return folder / "x" / JAR


def candidates(jar: Path) -> list[tuple[str, int]]:
    """Every (creator, group) pair the two methods could answer yes to: each creator string
    they compare with, against each odd group number they compare with."""
    listing = subprocess.run(
        ["javap", "-c", "-p", "-cp", str(jar), CLASS],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    creators: set[str] = set()
    groups: set[int] = set()
    body: list[str] = []
    inside = False
    header = re.compile(
        r"\s+public static boolean (" + "|".join(METHODS) + r")\(java\.lang\.String,"
    )
    for line in listing.splitlines():
        if header.match(line):
            inside = True
            continue
        if inside and not line.strip():
            inside = False
        if inside:
            body.append(line)
    for line in body:
        string = re.search(r"// String (.*)$", line)
        if string:
            creators.add(string.group(1))
        number = re.search(r"\b(?:bipush|sipush)\s+(\d+)$", line)
        if number and int(number.group(1)) % 2 == 1 and int(number.group(1)) > 8:
            groups.add(int(number.group(1)))
    if not creators or not groups:
        raise SystemExit(f"{CLASS}: found no creators or groups; has the class changed?")
    return sorted((c, g) for c in creators for g in groups)


def probe(
    jar: Path, folder: Path, pairs: list[tuple[str, int]]
) -> list[tuple[str, int, int, bool]]:
    source = folder / "Probe.java"
    source.write_text(PROBE, encoding="utf-8")
    answer = subprocess.run(
        ["java", "-cp", str(jar), str(source)],
        input="".join(f"{c}\t{g}\n" for c, g in pairs),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = []
    for line in answer.splitlines():
        creator, group, element, kind = line.split("\t")
        rows.append((creator, int(group), int(element), kind == "SQ"))
    return sorted(set(rows))


def kb_dispositions(kb: Path) -> dict[tuple[str, int, int], set[tuple[str, str]]]:
    """(creator without case, group, element byte) → every (disposition, VR) TCIA gives it."""
    if hashlib.sha256(kb.read_bytes()).hexdigest() != KB_SHA256:
        raise SystemExit(f"{kb}: SHA-256 differs from the pinned {KB_SHA256}")
    found: dict[tuple[str, int, int], set[tuple[str, str]]] = {}
    with kb.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            match = KB_ELEMENT.search(row["element_sig_pattern"])
            if match is None:
                continue
            key = (
                match.group(2).strip().casefold(),
                int(match.group(1), 16),
                int(match.group(3), 16),
            )
            disposition = (row["private_disposition"].strip().lower(), row["vr"].strip().upper())
            found.setdefault(key, set()).add(disposition)
    return found


def tcia_keeps(dispositions: set[tuple[str, str]]) -> bool:
    """Whether TCIA's rows for one element all allow what the engine does with a kept one."""
    return all(
        d == "k" or (d == "h" and vr == "UI") or (d == "o" and vr in ("DA", "DT"))
        for d, vr in dispositions
    )


def reconcile(rows: list[Row], kb: Path) -> tuple[list[Row], list[Row]]:
    """PixelMed's safe rows split into (kept, deleted because TCIA does not keep them)."""
    dispositions = kb_dispositions(kb)
    kept: list[Row] = []
    deleted: list[Row] = []
    for row in rows:
        found = dispositions.get((row[0].strip().casefold(), row[1], row[2]))
        (kept if found is None or tcia_keeps(found) else deleted).append(row)
    return kept, deleted


def current_rows() -> list[Row]:
    """PixelMed's answers as the module last written holds them: what it keeps, and what
    the reconciliation took off."""
    spec = importlib.util.spec_from_file_location("_safe_private", TARGET)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = [(c, g, e, False) for c, g, e in module.SAFE_PRIVATE]
    rows += [(c, g, e, True) for c, g, e in module.SAFE_PRIVATE_SEQUENCES]
    rows += list(getattr(module, "DELETED_BY_TCIA", ()))
    return sorted(set(rows))


def render(rows: list[Row], deleted: list[Row]) -> str:
    lines = [
        '"""DICOM PS3.15 Table E.3.10-1, safe private attributes: generated, do not edit.',
        "",
        f"Made by scripts/generate_safe_private.py from Debian {PACKAGE} {VERSION}",
        f"(SHA-256 {DEB_SHA256}),",
        f"by asking {CLASS}'s methods",
        f"{' and '.join(METHODS)} about every element of every",
        "private block they name. Each entry is (private creator, group, element byte): the",
        "element byte is the low byte of the element number, whatever block it was reserved in.",
        "",
        f"Reconciled with TCIA's private tag knowledge base {KB.name}",
        f"(SHA-256 {KB_SHA256}):",
        "an element it does not keep is taken off (DELETED_BY_TCIA), the safer of the two",
        "sources' actions.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f"SOURCE = {json.dumps(f'{PACKAGE} {VERSION}')}",
        f"SOURCE_SHA256 = {json.dumps(DEB_SHA256)}",
        f"KB_SOURCE = {json.dumps(KB.name)}",
        f"KB_SHA256 = {json.dumps(KB_SHA256)}",
        "",
        "#: Private data elements the standard lists as safe to retain.",
        "SAFE_PRIVATE: frozenset[tuple[str, int, int]] = frozenset(",
        "    {",
    ]
    lines += [
        f"        ({json.dumps(c)}, 0x{g:04X}, 0x{e:02X})," for c, g, e, seq in rows if not seq
    ]
    lines += [
        "    }",
        ")",
        "",
        "#: Private sequences listed as safe: kept, and their items cleaned like any other.",
        "SAFE_PRIVATE_SEQUENCES: frozenset[tuple[str, int, int]] = frozenset(",
        "    {",
    ]
    lines += [f"        ({json.dumps(c)}, 0x{g:04X}, 0x{e:02X})," for c, g, e, seq in rows if seq]
    lines += [
        "    }",
        ")",
        "",
        "#: Listed as safe by PixelMed, but not kept by TCIA: not kept here either.",
        "#: (creator, group, element byte, whether a sequence)",
        "DELETED_BY_TCIA: frozenset[tuple[str, int, int, bool]] = frozenset(",
        "    {",
    ]
    lines += [
        f"        ({json.dumps(c)}, 0x{g:04X}, 0x{e:02X}, {seq})," for c, g, e, seq in deleted
    ]
    lines += ["    }", ")", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deb", type=Path, help=f"a downloaded {PACKAGE} .deb")
    parser.add_argument("--kb", type=Path, default=KB, help="TCIA's knowledge base (CSV)")
    parser.add_argument(
        "--reconcile-only",
        action="store_true",
        help="re-run only the TCIA step, on PixelMed's answers as the module holds them",
    )
    args = parser.parse_args()
    if args.reconcile_only:
        rows = current_rows()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            deb = args.deb or fetch_deb(folder)
            jar = extract_jar(deb, folder)
            rows = probe(jar, folder, candidates(jar))
    kept, deleted = reconcile(rows, args.kb)
    TARGET.write_text(render(kept, deleted), encoding="utf-8")
    print(f"{TARGET}: {len(kept)} safe private elements ({len(deleted)} taken off by TCIA's)")


if __name__ == "__main__":
    main()
