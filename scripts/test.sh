#!/usr/bin/env bash
# Sets up spikard and runs the whole test suite: formatting and lints, the Rust
# core's unit tests, and the pytest suites that drive the installed package over
# real sockets, on the default Python and then on every other CPython version the
# package supports (its classifiers), each against its own build in its own
# virtualenv (.venvs/). CI runs exactly this (.ci/run).
#
# A supported interpreter that cannot be found is skipped with a warning on a
# developer's machine, and fails the run in CI (CI or SPIKARD_REQUIRE_ALL_PYTHONS set).
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests of `spikard profile` drive oha and inferno: cargo builds them (a few
# minutes) while spikard builds and the lints run, and the tests wait for them.
tools_log="$(mktemp)"
setsid bash scripts/install-tools.sh --cargo >"$tools_log" 2>&1 &
tools=$!
# Whatever fails first, the build in the background (its own process group) goes too.
trap 'kill -- "-$tools" 2>/dev/null || true; rm -f "$tools_log"' EXIT

bash scripts/setup.sh
python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

echo "test: formatting and lints" >&2
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
python3 -m ruff check .
python3 -m ruff format --check .
# The package's types, and the stub of the native module against the built extension
# (run away from the source tree, so that the installed package is what is checked).
python3 -m mypy
(cd /tmp && python3 -m mypy.stubtest spikard._spikard)

echo "test: Rust core (cargo test -p spikard-http)" >&2
cargo test --quiet -p spikard-http

# tests/test_nginx.py puts nginx in front of two instances, and spikard bench
# --instructions counts with callgrind: Debian's nginx and valgrind, if missing.
bash scripts/ensure-debian.sh nginx valgrind

if ! wait "$tools"; then
    cat "$tools_log" >&2
    echo "test: FAILED: installing oha and inferno (scripts/install-tools.sh)" >&2
    exit 1
fi
cat "$tools_log" >&2

default="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
echo "test: pytest over real sockets on Python $default" >&2
python3 -m pytest -q tests

# The supported versions, as the classifiers list them: "Programming Language :: Python :: 3.12".
supported="$(python3 -c '
import re, tomllib
classifiers = tomllib.load(open("pyproject.toml", "rb"))["project"]["classifiers"]
print(" ".join(m[1] for c in classifiers if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))))
')"
require="${SPIKARD_REQUIRE_ALL_PYTHONS:-${CI:-}}"
missing=()
for version in $supported; do
    [ "$version" = "$default" ] && continue
    if ! python="$(bash scripts/find-python.sh "$version")"; then
        missing+=("$version")
        continue
    fi
    venv=".venvs/py$version"
    echo "test: building spikard for Python $version ($python) into $venv" >&2
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check . './devtools[profile,bench]' -r tests/requirements.txt
    echo "test: pytest over real sockets on Python $version" >&2
    # The whole benchmark suite's quick run and the callgrind count are taken once,
    # on the default Python, above (SPIKARD_TEST_SECONDARY skips them here).
    SPIKARD_TEST_SECONDARY=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider tests
done
if [ ${#missing[@]} -gt 0 ]; then
    message="no interpreter found for Python ${missing[*]}, which spikard supports (pyproject.toml classifiers)"
    if [ -n "$require" ]; then
        echo "test: FAILED: $message" >&2
        exit 1
    fi
    echo "test: WARNING: $message; those versions were not tested" >&2
fi
