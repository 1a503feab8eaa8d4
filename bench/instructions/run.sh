#!/usr/bin/env bash
# Instructions per request of the serving process, counted by callgrind: exact and
# repeatable whatever else the machine does, so two builds (or interpreters) can be
# compared where wall-clock figures are too noisy. Each figure is (run with 2500
# requests - run with 500) / 2000, which removes start-up and shutdown.
#
#   bash bench/instructions/run.sh [BASELINE_DIR]
#   bash bench/instructions/run.sh NAME=PYTHON[:PYTHONPATH] ...
#
# Without arguments: the spikard installed for `python`. BASELINE_DIR: an earlier
# build installed with `pip install --no-deps --target DIR REV`, measured beside it.
# NAME=PYTHON[:PYTHONPATH]: any builds side by side, each served by PYTHON (a
# virtualenv's python serves what that virtualenv has installed), with PYTHONPATH
# in front when given; the first is the reference the others are compared with.
# CURRENT_ARGS: extra `spikard run` options for the first build only (say,
# --no-access-log, which older builds lack). Needs valgrind (apt-get install valgrind).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# valgrind must run the interpreter itself, not a pyenv shim: sys.executable is it
# (for a virtualenv, its own python, which keeps its site-packages).
interpreter() { "$1" -c 'import sys; print(sys.executable)'; }

# Each build as three parallel lists: its name, its interpreter, its PYTHONPATH.
names=() pythons=() paths=()
add_build() { # NAME PYTHON [PYTHONPATH]
    names+=("$1") pythons+=("$(interpreter "$2")") paths+=("${3:-}")
}
if [ $# -eq 0 ] || { [ $# -eq 1 ] && [[ "$1" != *=* ]]; }; then
    add_build current python
    [ $# -eq 1 ] && add_build baseline python "$1"
else
    for build in "$@"; do
        spec="${build#*=}"
        path=""
        [[ "$spec" == *:* ]] && path="${spec#*:}"
        add_build "${build%%=*}" "${spec%%:*}" "$path"
    done
fi

count() { # first? python pythonpath kind n -> instructions
    local extra=()
    [ "$1" = first ] && read -ra extra <<< "${CURRENT_ARGS:-}"
    PYTHONHASHSEED=0 PYTHONPATH="$3" valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" \
        "$2" -m spikard.cli run "$here/app.py" --port "$port" "${extra[@]}" > "$out/log" 2>&1 &
    python3 "$here/client.py" "$port" "$4" "$5"
    pkill -INT -f "callgrind.*--port $port"
    while pgrep -f "callgrind.*--port $port" > /dev/null; do sleep 0.5; done
    grep "I   refs" "$out/log" | awk '{print $NF}' | tr -d ,
}

printf '%-8s %-14s %22s %10s\n' kind build instructions/request "vs ${names[0]}"
for kind in hello items struct; do
    reference=""
    for i in "${!names[@]}"; do
        which=$([ "$i" -eq 0 ] && echo first || echo other)
        small=$(count "$which" "${pythons[$i]}" "${paths[$i]}" "$kind" 500)
        large=$(count "$which" "${pythons[$i]}" "${paths[$i]}" "$kind" 2500)
        per=$(((large - small) / 2000))
        [ -z "$reference" ] && reference=$per
        printf '%-8s %-14s %22d %+9.1f%%\n' "$kind" "${names[$i]}" "$per" \
            "$(python3 -c "print(($per - $reference) / $reference * 100)")"
    done
done
