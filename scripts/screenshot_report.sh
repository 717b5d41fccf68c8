#!/usr/bin/env bash
# A patient report as a person sees it: `crs report` for one patient, then a headless-Chromium
# screenshot of the page (look at the PNG; tests/test_report.py runs this when chromium is present).
#
#   scripts/screenshot_report.sh COHORT PATIENT_ID OUT_DIR [MODEL] [WIDTH,HEIGHT]
#
# MODEL: a registry URI (default models:/severe-crs@champion) or a trained model folder (data/model).
# Writes OUT_DIR/PATIENT_ID.html and OUT_DIR/PATIENT_ID.png. Needs the project's venv (.venv) or a
# `crs` on PATH, and Debian's chromium.
set -euo pipefail
cohort=${1:?usage: screenshot_report.sh COHORT PATIENT_ID OUT_DIR [MODEL] [W,H]}
patient=${2:?give a patient id}
out=${3:?give an output folder}
model=${4:-models:/severe-crs@champion}
size=${5:-1200,2600}
here="$(cd "$(dirname "$0")" && pwd)"
crs=${CRS:-"$here/../.venv/bin/crs"}
[ -x "$crs" ] || crs=crs
mkdir -p "$out"
name=$(printf '%s' "$patient" | tr -c 'A-Za-z0-9._-' '_')
"$crs" report --cohort "$cohort" --patient "$patient" --model "$model" --out "$out/$name.html"
"$here/headless_chromium.sh" screenshot "$out/$name.html" "$out/$name.png" "$size"
