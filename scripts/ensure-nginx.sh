#!/usr/bin/env bash
# Makes sure an `nginx` binary is available for tests/test_nginx.py (nginx in front of
# two `spikard run` instances). When it is missing, installs Debian's `nginx` package
# with apt (through sudo when not root) without starting the system service: the test
# runs its own nginx on loopback ports, and nothing is left listening on port 80.
#
# Idempotent: does nothing when nginx is already installed. On a machine without apt,
# says so and returns 0; tests/test_nginx.py then skips, naming the missing nginx.
#
# Why `nginx` and not `nginx-light`: on Debian bookworm `nginx-light` is only `nginx`
# plus the echo module (it depends on `nginx`); `nginx` with --no-install-recommends is
# the smallest install (nginx, nginx-common) and has the proxy and upstream modules.
set -euo pipefail

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-nginx: nginx is not installed and there is no apt-get here; install nginx" \
        "to run tests/test_nginx.py (it is skipped without it)" >&2
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "ensure-nginx: installing nginx needs root, and sudo is not available" >&2
    exit 1
fi

echo "ensure-nginx: installing Debian's nginx package (the service is not started)" >&2
log="$(mktemp)"

# policy-rc.d exiting 101 tells invoke-rc.d and deb-systemd-invoke not to start the
# service the package's postinst would start. An existing policy-rc.d (Docker images
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
if [ -e "$policy.ensure-nginx-saved" ]; then # left by an interrupted earlier run
    "${as_root[@]}" mv "$policy.ensure-nginx-saved" "$policy"
fi
if [ -e "$policy" ]; then
    saved="$policy.ensure-nginx-saved"
    "${as_root[@]}" mv "$policy" "$saved"
fi
trap cleanup EXIT
printf '#!/bin/sh\n# written by spikard scripts/ensure-nginx.sh for the install only\nexit 101\n' |
    "${as_root[@]}" tee "$policy" >/dev/null
"${as_root[@]}" chmod 755 "$policy"

apt_get() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0 "$@" >>"$log" 2>&1
}
install_nginx() {
    apt_get install --no-install-recommends nginx
}
# A fresh machine may have no package lists yet (or stale ones): update and retry.
if ! install_nginx; then
    if ! { apt_get update && install_nginx; }; then
        echo "ensure-nginx: installing nginx failed:" >&2
        cat "$log" >&2
        exit 1
    fi
fi

# Belt and braces: should a service manager have started nginx anyway, stop it, and
# keep it from starting at boot (the package enables it); the tests start their own.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    "${as_root[@]}" systemctl disable --now nginx >>"$log" 2>&1 || true
elif [ -s /run/nginx.pid ]; then
    "${as_root[@]}" /usr/sbin/nginx -s quit >>"$log" 2>&1 || true
fi

echo "ensure-nginx: $(/usr/sbin/nginx -v 2>&1)" >&2
