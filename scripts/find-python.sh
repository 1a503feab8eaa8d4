#!/usr/bin/env bash
# Prints the path of a CPython interpreter of the given minor version (`3.12`) that
# can make virtualenvs, or fails. Looks where interpreters live rather than at fixed
# paths: `pythonX.Y` on PATH (a pyenv shim answers only when that version is active,
# so each candidate is run to prove it), every pyenv version `X.Y.*` (newest first),
# and the system's usual prefixes.
#
#   bash scripts/find-python.sh 3.12
set -euo pipefail
version="${1:?usage: find-python.sh X.Y}"

candidates=()
if command -v "python$version" >/dev/null 2>&1; then
    candidates+=("$(command -v "python$version")")
fi
if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root)"
    # Newest patch release first: 3.12.10 before 3.12.9.
    while IFS= read -r dir; do
        candidates+=("$dir/bin/python$version")
    done < <(find "$root/versions" -maxdepth 1 -name "$version.*" 2>/dev/null | sort -V -r)
fi
for prefix in /usr/local/bin /usr/bin /opt/python/bin; do
    candidates+=("$prefix/python$version")
done

for python in "${candidates[@]}"; do
    [ -x "$python" ] || continue
    found="$("$python" -c 'import sys, venv, ensurepip; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || continue
    if [ "$found" = "$version" ]; then
        echo "$python"
        exit 0
    fi
done
echo "find-python: no CPython $version found (looked on PATH, in pyenv's versions and in /usr/local/bin, /usr/bin)" >&2
exit 1
