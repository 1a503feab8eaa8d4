#!/usr/bin/env bash
# Sets up spikard and runs the whole test suite: formatting and lints, the Rust
# core's unit tests, and the pytest suites that drive the installed package over
# real sockets. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

echo "test: formatting and lints" >&2
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
python3 -m ruff check .
python3 -m ruff format --check .

echo "test: Rust core (cargo test -p spikard-http)" >&2
cargo test --quiet -p spikard-http

echo "test: pytest over real sockets" >&2
# tests/test_nginx.py puts nginx in front of two instances: install Debian's nginx if missing.
bash scripts/ensure-nginx.sh
python3 -m pytest -q tests
