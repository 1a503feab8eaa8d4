#!/usr/bin/env bash
# Sets up spikard on a fresh machine: builds the runtime extension (release) and
# installs the `spikard` package and command, and the developer tools
# (`spikard-devtools`, from devtools/), into the current Python.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "spikard needs Python 3.11 or newer")'
command -v cargo >/dev/null || { echo "setup: cargo (the Rust toolchain) is needed to build the runtime" >&2; exit 1; }

echo "setup: building and installing spikard (release build of the Rust runtime; the first build takes a few minutes)" >&2
python3 -m pip install --quiet --disable-pip-version-check .
echo "setup: installing the developer tools (spikard-devtools: spikard dev, profile, bench; py-spy; FastAPI to compare with)" >&2
python3 -m pip install --quiet --disable-pip-version-check './devtools[profile,bench]'
echo "setup: spikard profile and spikard bench also drive oha (and inferno): bash scripts/install-tools.sh builds them" >&2
echo "setup: done; 'spikard --help' to start" >&2
