#!/usr/bin/env bash
# `dvc plots show` as a person sees it, offline: render the project's plots page, open it in headless
# Chromium, count the Vega plots that actually drew (a <canvas class="marks"> or <svg class="marks">
# each) and take a screenshot. .dvc/config's plots.html_template (vendor/vega/, built by
# scripts/vendor_vega.sh) inlines Vega, so no CDN is needed. tests/test_dvc_plots.py runs this.
#
#   scripts/screenshot_dvc_plots.sh OUT_DIR [WIDTH,HEIGHT] [extra dvc plots show options...]
#
# Prints "rendered N of M vega plots" and the PNG path; exits 1 if any Vega plot did not render.
set -euo pipefail
out=${1:?usage: screenshot_dvc_plots.sh OUT_DIR [W,H] [dvc plots show options]}
size=${2:-1300,1400}
shift $(( $# >= 2 ? 2 : 1 ))
here="$(cd "$(dirname "$0")" && pwd)"
dvc=${DVC:-"$here/../.venv/bin/dvc"}
[ -x "$dvc" ] || dvc=dvc
mkdir -p "$out"
out_abs="$(cd "$out" && pwd)"
(cd "$here/.." && "$dvc" plots show -o "$out_abs/dvc_plots" "$@" >/dev/null)
page="$out_abs/dvc_plots/index.html"
expected=$(grep -c "vegaEmbed('#" "$page" || true)
drawn=$( ("$here/headless_chromium.sh" dom "$page" || true) | { grep -o -E '<(canvas|svg)[^>]*class="marks"' || true; } | wc -l)
"$here/headless_chromium.sh" screenshot "$page" "$out_abs/dvc_plots.png" "$size" >/dev/null
echo "rendered $drawn of $expected vega plots"
echo "$out_abs/dvc_plots.png"
[ "$expected" -gt 0 ] && [ "$drawn" -eq "$expected" ]
