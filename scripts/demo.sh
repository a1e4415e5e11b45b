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
first=$(find "$DEMO/hospital/export" -name '*.dcm' | sort | sed -n 1p)  # sed reads to the end: no SIGPIPE
head -c 2000 "$first" > "$DEMO/hospital/export/odds-and-ends/cut-short.dcm"
printf '\x89PNG\r\n\x1a\n' > "$DEMO/hospital/export/odds-and-ends/screenshot.png"
: > "$DEMO/hospital/export/odds-and-ends/empty.dcm"

echo
echo "== 2. A new site (SQLite catalogue, local zones)"
"$DH" init "$DEMO/site"

echo
echo "== 3. Import the export folder (two workers: images with burned-in text are read)"
"$DH" import --site "$DEMO/site" --workers 2 "$DEMO/hospital/export"

echo
echo "== 4. Importing again changes nothing (idempotent)"
"$DH" import --site "$DEMO/site" "$DEMO/hospital/export"

echo
echo "== 5. The ledger: every object accounted for. Copies of new devices wait for trust."
"$DH" ledger --site "$DEMO/site" --deep

echo
echo "== 6. People: a data manager (the first user), a clinician and a researcher"
MANAGER=$("$DH" users add dana --role data-manager --site "$DEMO/site" | tail -n 1)
CLINICIAN=$("$DH" users add colin --role clinician --site "$DEMO/site" --token "$MANAGER" | tail -n 1)
RESEARCHER=$("$DH" users add rosa --role researcher --site "$DEMO/site" --token "$MANAGER" | tail -n 1)
"$DH" users list --site "$DEMO/site"

echo
echo "== 7. The release gate: every copy was scanned; each device is trusted after review"
"$DH" devices list --site "$DEMO/site"
"$DH" review --site "$DEMO/site"
for device in $("$DH" devices list --site "$DEMO/site" --json | python3 -c 'import json,sys; [print(d["id"]) for d in json.load(sys.stdin)]'); do
    "$DH" devices trust "$device" --reason "sample of its outputs reviewed" --site "$DEMO/site" --token "$MANAGER"
done
"$DH" release --site "$DEMO/site" --token "$MANAGER"
"$DH" ledger --site "$DEMO/site"

echo
echo "== 8. Linked clinical data, stored under pseudonyms with dates shifted"
"$DH" clinical import "$DEMO/hospital/clinical/clinical.csv" \
    --mapping "$DEMO/hospital/clinical/mapping.yaml" --site "$DEMO/site" --token "$MANAGER"

PSEUDONYM=$("$DH" pseudonyms --site "$DEMO/site" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0])')
echo
echo "== 9. What a researcher sees of patient $PSEUDONYM"
"$DH" patient "$PSEUDONYM" --site "$DEMO/site"
echo "-- the researcher asks who it is:"
"$DH" reidentify "$PSEUDONYM" --reason "want to know who this is" --site "$DEMO/site" --token "$RESEARCHER" \
    || echo "   (refused, and the refusal is in the audit log)"

echo
echo "== 10. What a clinician may look up, with a reason that is audited"
"$DH" reidentify "$PSEUDONYM" --reason "marking lesions for the screening study" \
    --site "$DEMO/site" --token "$CLINICIAN"

echo
echo "== 11. The audit log, and its hash chain checked"
"$DH" audit show --site "$DEMO/site" --token "$MANAGER" --limit 6
"$DH" audit verify --site "$DEMO/site"

echo
echo "== 12. Safe copies for publication: consent, headers, pixels, the scan (data managers only)"
"$DH" deid "$DEMO/hospital/export/P0001" "$DEMO/publication" --profile publication --project demo \
    --site "$DEMO/site" --token "$MANAGER" || echo "   (some copies held: each has a reason in $DEMO/publication/held)"
first_out=$(find "$DEMO/publication" -path "$DEMO/publication/held" -prune -o -name '*.dcm' -print | sort | sed -n 1p)
"$(dirname "$DH")/python" - "$first_out" <<'PY'
import sys
import pydicom
ds = pydicom.dcmread(sys.argv[1], stop_before_pixels=True)
for keyword in ("PatientID", "PatientName", "PatientBirthDate", "StudyDate", "StudyDescription",
                "InstitutionName", "StudyInstanceUID", "PatientIdentityRemoved", "DeidentificationMethod"):
    print(f"   {keyword:<24} {ds.get(keyword, '(removed)')}")
PY

echo
echo "== 13. The scanner checks the publication copies on its own (exit status 1 on a failure)"
find "$DEMO/publication" -path "$DEMO/publication/held" -prune -o -name '*.dcm' -print0 \
    | xargs -0 "$DH" scan --level publication
