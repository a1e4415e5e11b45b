#!/usr/bin/env bash
# The main job on embedded defaults: a synthetic hospital export goes into a fresh site,
# and the ledger shows every object accounted for. Usage: demo.sh DICOMHAVEN_BIN DEMO_DIR
set -euo pipefail
DH=${1:-dicomhaven}
DEMO=${2:-demo-site}

rm -rf "$DEMO"
mkdir -p "$DEMO"

echo "== 1. A synthetic hospital export: 20 fake patients with planted identifiers"
"$DH" synth "$DEMO/hospital" --patients 20 --seed 7

# What real exports also contain: a transfer cut short, a stray picture, an empty file.
mkdir -p "$DEMO/hospital/export/odds-and-ends"
first=$(find "$DEMO/hospital/export" -name '*.dcm' | sort | head -n 1)
head -c 2000 "$first" > "$DEMO/hospital/export/odds-and-ends/cut-short.dcm"
printf '\x89PNG\r\n\x1a\n' > "$DEMO/hospital/export/odds-and-ends/screenshot.png"
: > "$DEMO/hospital/export/odds-and-ends/empty.dcm"

echo
echo "== 2. A new site (SQLite catalogue, local zones)"
"$DH" init "$DEMO/site"

echo
echo "== 3. Import the export folder"
"$DH" import --site "$DEMO/site" "$DEMO/hospital/export"

echo
echo "== 4. Importing again changes nothing (idempotent)"
"$DH" import --site "$DEMO/site" "$DEMO/hospital/export"

echo
echo "== 5. The ledger: every object released, quarantined or rejected, with a reason"
"$DH" ledger --site "$DEMO/site" --deep
