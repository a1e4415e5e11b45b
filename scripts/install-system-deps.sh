#!/usr/bin/env bash
# Installs the Debian packages dicomhaven's tests use as real peers, only when one is missing.
# Needs root (or sudo). Safe to run again: a no-op when everything is there.
set -euo pipefail

PACKAGES=(
  orthanc orthanc-dicomweb dcmtk dicom3tools
  tesseract-ocr tesseract-ocr-eng
  postgresql
  chromium fonts-dejavu-core
  libgl1 libglib2.0-0
  time  # benchmarks/commands.py: GNU time's peak memory of whole commands
  iproute2 curl  # tests/orthanc.py: ip brings up loopback in a private netns; curl is its REST client
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-system-deps: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-system-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
