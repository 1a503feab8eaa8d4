#!/usr/bin/env bash
# Installs what the benchmarks need: spikard and its developer tools (release build;
# `spikard bench`), the peers it is compared with and the optional ones (FastAPI,
# uvicorn, Litestar, Granian, Robyn: bench/requirements.txt), oha (the load
# generator, built by cargo) and, for bench/workers.py, wrk (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
bash scripts/install-tools.sh
bash scripts/ensure-debian.sh wrk valgrind
command -v taskset >/dev/null || echo "bench: taskset (util-linux) is missing: servers and oha will not be pinned" >&2
