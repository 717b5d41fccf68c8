#!/usr/bin/env bash
# Open a local HTML page in headless Chromium (Debian package `chromium`) and either take a
# screenshot or print the page's DOM after its scripts ran. No network: the flags keep Chromium
# from calling home, and a fresh profile folder is used (and removed) each time.
#
#   scripts/headless_chromium.sh screenshot PAGE.html OUT.png [WIDTH,HEIGHT]   (default 1200,2400)
#   scripts/headless_chromium.sh dom PAGE.html > dom.html
#
# CHROMIUM=/path/to/chromium overrides the binary (default: chromium, then chromium-browser on PATH).
set -euo pipefail
mode=${1:?usage: headless_chromium.sh screenshot|dom PAGE.html [OUT.png [W,H]]}
page=${2:?give the HTML page}
bin=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$bin" ]; then
    echo "headless_chromium.sh: no chromium on PATH (Debian: apt-get install chromium)" >&2
    exit 3
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
url="file://$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile"
       --virtual-time-budget=10000)
case "$mode" in
    screenshot)
        out=${3:?give the output PNG}
        size=${4:-1200,2400}
        out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
        rm -f "$out_abs"
        timeout 120 "$bin" "${flags[@]}" --screenshot="$out_abs" --window-size="$size" "$url" >/dev/null 2>&1 || true
        [ -s "$out_abs" ] || { echo "headless_chromium.sh: no screenshot written for $page" >&2; exit 1; }
        echo "$out_abs"
        ;;
    dom)
        timeout 120 "$bin" "${flags[@]}" --dump-dom "$url" 2>/dev/null
        ;;
    *)
        echo "headless_chromium.sh: mode must be screenshot or dom, not $mode" >&2
        exit 2
        ;;
esac
