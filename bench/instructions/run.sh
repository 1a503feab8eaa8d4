#!/usr/bin/env bash
# Instructions per request of the serving process, counted by callgrind: exact and
# repeatable whatever else the machine does, so two builds can be compared where
# wall-clock figures are too noisy. Each figure is (run with 2500 requests - run
# with 500) / 2000, which removes start-up and shutdown.
#
#   bash bench/instructions/run.sh [BASELINE_DIR]
#
# BASELINE_DIR: an earlier build installed with `pip install --target DIR REV`,
# measured beside the installed spikard. CURRENT_ARGS: extra `spikard run` options
# for the installed build only (say, --no-access-log, which older builds lack).
# Needs valgrind (apt-get install valgrind).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="$(python -c 'import sys; print(sys.executable)')"
python="$(readlink -f "$python")"  # valgrind must see the interpreter, not a shim
out="$(mktemp -d)"
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

count() { # build pythonpath kind n -> instructions
  local extra=()
  [ "$1" = current ] && read -ra extra <<< "${CURRENT_ARGS:-}"
  PYTHONHASHSEED=0 PYTHONPATH="$2" valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" \
    "$python" -m spikard.cli run "$here/app.py" --port "$port" "${extra[@]}" > "$out/log" 2>&1 &
  python "$here/client.py" "$port" "$3" "$4"
  pkill -INT -f "callgrind.*--port $port"
  while pgrep -f "callgrind.*--port $port" > /dev/null; do sleep 0.5; done
  grep "I   refs" "$out/log" | awk '{print $NF}' | tr -d ,
}

builds=("current:")
[ $# -ge 1 ] && builds+=("baseline:$1")
printf '%-8s %-9s %s\n' kind build instructions/request
for kind in hello items struct; do
  for build in "${builds[@]}"; do
    name="${build%%:*}" path="${build#*:}"
    small=$(count "$name" "$path" "$kind" 500)
    large=$(count "$name" "$path" "$kind" 2500)
    printf '%-8s %-9s %d\n' "$kind" "$name" $(((large - small) / 2000))
  done
done
rm -rf "$out"
