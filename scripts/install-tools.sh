#!/usr/bin/env bash
# Installs the programs `spikard profile` drives, at the versions it is tested with
# (devtools/spikard_devtools/_tools.py names them): oha (the load generator) and
# inferno (the SVG flamegraph renderer) with `cargo install --locked`, into cargo's
# bin folder, and py-spy (the sampler) with pip into the Python given (default:
# python3). A tool already installed at its version is left alone.
#
#   bash scripts/install-tools.sh [PYTHON]     all three
#   bash scripts/install-tools.sh --cargo      oha and inferno only
set -euo pipefail
cd "$(dirname "$0")/.."
only=""
python="python3"
for arg in "$@"; do
    case "$arg" in
        --cargo) only="cargo" ;;
        *) python="$arg" ;;
    esac
done
installed_crates="$(cargo install --list 2>/dev/null || true)"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

# "COMMAND VERSION HOW PACKAGE" lines, read from the source (nothing need be installed).
plan="$("$python" devtools/spikard_devtools/_tools.py)"
while read -r command version how package; do
    [ -n "$only" ] && [ "$how" != "$only" ] && continue
    case "$how" in
        cargo) grep -qx "$package v$version:" <<< "$installed_crates" && [ -x "$cargo_bin/$command" ] && continue ;;
        pip) [[ "$("$python" -m pip show "$package" 2>/dev/null)" == *"Version: $version"* ]] && continue ;;
    esac
    echo "install-tools: installing $package $version ($how; cargo builds take a few minutes)" >&2
    case "$how" in
        cargo) cargo install --locked --quiet "$package@$version" ;;
        pip) "$python" -m pip install --quiet --disable-pip-version-check "$package==$version" ;;
    esac
done <<< "$plan"
