#!/usr/bin/env bash
# Installs what bench/run.py needs: wrk (Debian), the peers (FastAPI, uvicorn),
# and spikard itself (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
    echo "bench: installing wrk" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y -q wrk >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q wrk >/dev/null; }
fi
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is needed" >&2; exit 1; }
python3 -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
bash scripts/setup.sh
