"""Memory over a million mixed requests: does spikard's resident set stay flat?

    python bench/rss.py [--requests 1000000] [--round 20000] [--connections 32] [--out DIR]

One `spikard run` (no access log) serves bench/apps/rss_app.py. Rounds of five kinds
of request, `--round` of each, are driven by oha until `--requests` have been sent:
a valid GET, a GET whose parameter fails validation (422), a handler that raises
(500; its traceback goes to the server's stderr, thrown away here), a valid JSON
POST, and a POST whose body fails its schema (422). Every status oha counted must be
the expected one. The server's RSS (VmRSS of /proc/PID/status) is read after each
round; the first round warms up, and the report gives RSS after it, at the end, and
the largest seen, with the growth from warm to end. Set-up: bench/setup.sh (oha).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _process import free_port, rss_kib, wait_serving

HERE = Path(__file__).resolve().parent
APP = HERE / "apps" / "rss_app.py"

VALID_ORDER = json.dumps({"id": 1, "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]})
INVALID_ORDER = json.dumps({"id": "x", "lines": [{"sku": 1}, {"qty": "many"}], "extra": True})

# (name, method, path, body, expected status)
KINDS = [
    ("valid GET", "GET", "/items/7?q=x", None, 200),
    ("invalid GET (422)", "GET", "/items/seven", None, 422),
    ("raising (500)", "GET", "/boom", None, 500),
    ("valid POST", "POST", "/orders", VALID_ORDER, 200),
    ("invalid POST (422)", "POST", "/orders", INVALID_ORDER, 422),
]


def oha() -> str:
    found = shutil.which("oha") or str(Path.home() / ".cargo" / "bin" / "oha")
    if not Path(found).exists():
        sys.exit("bench/rss.py: oha is not installed (bash bench/setup.sh)")
    return found


def drive(port: int, kind: tuple[str, str, str, str | None, int], count: int, connections: int) -> None:
    name, method, path, body, expected = kind
    command = [oha(), "-n", str(count), "-c", str(connections), "--no-tui", "--output-format", "json", "-m", method]
    if body is not None:
        command += ["-d", body, "-T", "application/json"]
    command.append(f"http://127.0.0.1:{port}{path}")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    statuses = {int(code): n for code, n in report.get("statusCodeDistribution", {}).items()}
    errors = report.get("errorDistribution", {})
    if set(statuses) != {expected} or sum(statuses.values()) != count or errors:
        sys.exit(f"bench/rss.py: {name}: expected {count} x {expected}, got {statuses} {errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000, help="requests in all (default 1000000)")
    parser.add_argument("--round", type=int, default=20_000, help="requests of each kind per round (default 20000)")
    parser.add_argument("--connections", type=int, default=32, help="oha connections (default 32)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where rss-<time>.json goes")
    args = parser.parse_args()
    port = free_port()
    command = [sys.executable, "-m", "spikard.cli", "run", str(APP), "--port", str(port), "--no-access-log"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[tuple[int, int]] = []
    try:
        wait_serving(f"http://127.0.0.1:{port}/items/1", server, "bench/rss.py")
        sent = 0
        started = time.monotonic()
        while sent < args.requests:
            for kind in KINDS:
                drive(port, kind, args.round, args.connections)
                sent += args.round
            samples.append((sent, rss_kib(server.pid)))
            print(f"{sent:>9,} requests  RSS {samples[-1][1] / 1024:7.1f} MiB", flush=True)
        took = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    warm, end = samples[0][1], samples[-1][1]
    peak = max(rss for _, rss in samples)
    growth = (end - warm) / warm
    report = {
        "requests": samples[-1][0],
        "kinds": [{"name": k[0], "method": k[1], "path": k[2], "status": k[4]} for k in KINDS],
        "seconds": round(took, 1),
        "rss_kib": {"after_warmup": warm, "end": end, "peak": peak},
        "growth_from_warm": round(growth, 4),
        "samples": samples,
        "python": sys.version.split()[0],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / time.strftime("rss-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{report['requests']:,} requests in {took:.0f} s: RSS {warm / 1024:.1f} MiB after the first round, "
        f"{end / 1024:.1f} MiB at the end ({growth:+.1%}), {peak / 1024:.1f} MiB at most; {path}"
    )
    if abs(growth) > 0.05:
        print("bench/rss.py: RSS grew by more than 5%", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
