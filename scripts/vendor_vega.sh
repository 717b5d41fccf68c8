#!/usr/bin/env bash
# Rebuild vendor/vega/dvc_plots_template.html: DVC's plots page with Vega, Vega-Lite and Vega-Embed
# inlined, so `dvc plots show` renders offline (DVC's own page loads them from a CDN: blank offline).
# .dvc/config points `plots.html_template` at the result. Needs npm (the npm registry); the versions
# are the ones the installed dvc-render asks its CDN for, so the pictures are those DVC intends.
#
#   scripts/vendor_vega.sh            (then commit vendor/vega/)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$here/vendor/vega"
versions=(vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "${versions[@]}" >/dev/null)
mkdir -p "$out"
: > "$work/scripts.html"
: > "$out/LICENSES.txt"
for spec in "${versions[@]}"; do
    name=${spec%@*}
    version=${spec#*@}
    mkdir -p "$work/$name"
    tar xzf "$work/$name-$version.tgz" -C "$work/$name"
    {
        printf '<script type="text/javascript">/* %s %s, BSD-3-Clause, see vendor/vega/LICENSES.txt */\n' "$name" "$version"
        grep -v '^//# sourceMappingURL=' "$work/$name/package/build/$name.min.js"
        printf '\n</script>\n'
    } >> "$work/scripts.html"
    { printf '==== %s %s (npm package %s) ====\n' "$name" "$version" "$name"; cat "$work/$name/package/LICENSE"; echo; } >> "$out/LICENSES.txt"
done
{
    cat <<'HEAD'
<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot (offline: Vega inlined by scripts/vendor_vega.sh)</title>
HEAD
    cat "$work/scripts.html"
    cat <<'TAIL'
    <style>
        table {
            border-spacing: 15px;
        }
        body {
            font-family: -apple-system, "Segoe UI", Roboto, Arial, "DejaVu Sans", sans-serif;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
TAIL
} > "$out/dvc_plots_template.html"
printf '%s\n' "$out/dvc_plots_template.html"
