#!/usr/bin/env bash
# Makes sure Debian packages some tests need are installed: nginx for
# tests/test_nginx.py (nginx in front of two `spikard run` instances), valgrind for
# the callgrind count of `spikard bench --instructions`. Each PACKAGE whose program of
# the same name is missing is installed with apt (through sudo when not root), with
# no service started: the tests run their own nginx on loopback ports, and nothing
# is left listening on port 80.
#
#   bash scripts/ensure-debian.sh PACKAGE...
#
# Idempotent: does nothing when every program is there. On a machine without apt,
# says so and returns 0; the tests that need one then skip, naming it.
#
# Why `nginx` and not `nginx-light`: on Debian bookworm `nginx-light` is only `nginx`
# plus the echo module (it depends on `nginx`); `nginx` with --no-install-recommends is
# the smallest install (nginx, nginx-common) and has the proxy and upstream modules.
set -euo pipefail

missing=()
for package in "$@"; do
    command -v "$package" >/dev/null 2>&1 || [ -x "/usr/sbin/$package" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-debian: ${missing[*]} not installed and there is no apt-get here; install them" \
        "to run the tests that need them (they are skipped without)" >&2
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "ensure-debian: installing ${missing[*]} needs root, and sudo is not available" >&2
    exit 1
fi

echo "ensure-debian: installing Debian's ${missing[*]} (no service is started)" >&2
log="$(mktemp)"

# policy-rc.d exiting 101 tells invoke-rc.d and deb-systemd-invoke not to start the
# service a package's postinst would start. An existing policy-rc.d (Docker images
# ship one) is moved aside and put back afterwards.
policy=/usr/sbin/policy-rc.d
saved=""
cleanup() {
    "${as_root[@]}" rm -f "$policy"
    if [ -n "$saved" ]; then
        "${as_root[@]}" mv "$saved" "$policy"
    fi
    rm -f "$log"
}
if [ -e "$policy.ensure-debian-saved" ]; then # left by an interrupted earlier run
    "${as_root[@]}" mv "$policy.ensure-debian-saved" "$policy"
fi
if [ -e "$policy" ]; then
    saved="$policy.ensure-debian-saved"
    "${as_root[@]}" mv "$policy" "$saved"
fi
trap cleanup EXIT
printf '#!/bin/sh\n# written by spikard scripts/ensure-debian.sh for the install only\nexit 101\n' |
    "${as_root[@]}" tee "$policy" >/dev/null
"${as_root[@]}" chmod 755 "$policy"

apt_get() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0 "$@" >>"$log" 2>&1
}
install_missing() {
    apt_get install --no-install-recommends "${missing[@]}"
}
# A fresh machine may have no package lists yet (or stale ones): update and retry.
if ! install_missing; then
    if ! { apt_get update && install_missing; }; then
        echo "ensure-debian: installing ${missing[*]} failed:" >&2
        cat "$log" >&2
        exit 1
    fi
fi

# Belt and braces: should a service manager have started nginx anyway, stop it, and
# keep it from starting at boot (the package enables it); the tests start their own.
if [[ " ${missing[*]} " == *" nginx "* ]]; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        "${as_root[@]}" systemctl disable --now nginx >>"$log" 2>&1 || true
    elif [ -s /run/nginx.pid ]; then
        "${as_root[@]}" /usr/sbin/nginx -s quit >>"$log" 2>&1 || true
    fi
fi
echo "ensure-debian: installed ${missing[*]}" >&2
