#!/usr/bin/env bash
# Instructions per request, counted by callgrind, of builds side by side: a thin call
# of `spikard bench --instructions` (which counts them for any server).
#
#   bash bench/instructions/run.sh [NAME=PYTHON[:PYTHONPATH] ...]
#
# Without arguments: the spikard installed for `python3`. Each NAME=PYTHON[:PYTHONPATH]
# is a build served by PYTHON (a virtualenv's python serves what that virtualenv has
# installed), with PYTHONPATH in front when given (`pip install --no-deps --target
# DIR REV` installs an earlier build there), measured beside the installed one, which
# is the reference. Extra
# `spikard bench` options go in BENCH_ARGS (default: three workloads).
set -euo pipefail
cd "$(dirname "$0")/../.."
read -ra extra <<< "${BENCH_ARGS:---workload hello,params,small-post}"
apps="$PWD/bench/apps/spikard_app.py"
against=()
for build in "$@"; do
    name="${build%%=*}" spec="${build#*=}"
    python="${spec%%:*}" path=""
    [[ "$spec" == *:* ]] && path="${spec#*:}"
    # valgrind must run the interpreter itself, not a pyenv shim.
    python="$("$python" -c 'import sys; print(sys.executable)')"
    against+=(--against "env PYTHONPATH=$path $python -m spikard run $apps --port {port} --no-access-log")
    echo "instructions: $name = $python${path:+ with PYTHONPATH=$path}" >&2
done
exec python3 -m spikard bench --instructions --framework spikard "${against[@]}" "${extra[@]}"
