"""What `spikard profile`'s stage phase costs the app it measures: requests per second
of `spikard run` as the stage phase serves it (`--stage-stats --stats-file`) against
plain serving, same app, same requests, rounds interleaved, server on CPU 0 and oha on
CPU 1.

    python bench/profile_overhead.py [--rounds 5] [--seconds 5] [--out FILE]

Needs oha (bash scripts/install-tools.sh) and spikard installed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "examples" / "app.py"
REQUESTS = [
    ("GET /hello", ["-m", "GET"], "/hello"),
    ("GET /items/1?limit=10", ["-m", "GET"], "/items/1?limit=10"),
    (
        "POST /items",
        ["-m", "POST", "-H", "content-type: application/json", "-d", '{"name": "w", "price": 1.5}'],
        "/items",
    ),
]
CONFIGS = {
    "plain serving": [],
    "stage phase": ["--stage-stats", "--stats-file", "{stats}", "--stats-interval", "0"],
}


def serve(extra: list[str], stats: str) -> tuple[subprocess.Popen[bytes], int, socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    args = [a.replace("{stats}", stats) for a in extra]
    command = ["taskset", "-c", "0", sys.executable, "-m", "spikard", "run", str(APP), "--fd", str(sock.fileno())]
    process = subprocess.Popen(
        [*command, "--no-access-log", "--log-level", "warning", *args],
        pass_fds=(sock.fileno(),),
        stdout=subprocess.DEVNULL,
    )
    port = sock.getsockname()[1]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        probe = subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/hello"], check=False)
        if probe.returncode == 0:
            break
        time.sleep(0.1)
    return process, port, sock


def load(port: int, args: list[str], target: str, seconds: float) -> float:
    generator = ["taskset", "-c", "1", "oha", "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-c", "16"]
    out = subprocess.run(
        [*generator, *args, f"http://127.0.0.1:{port}{target}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    summary = json.loads(out)
    return sum(summary["statusCodeDistribution"].values()) / summary["summary"]["total"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rates: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(args.rounds):
            order = list(CONFIGS) if round_number % 2 == 0 else list(reversed(CONFIGS))
            for config in order:
                process, port, sock = serve(CONFIGS[config], os.path.join(scratch, "stats.json"))
                try:
                    for name, oha_args, target in REQUESTS:
                        rate = load(port, oha_args, target, args.seconds)
                        rates.setdefault((config, name), []).append(rate)
                        print(f"round {round_number + 1} {config:14} {name:22} {rate:10,.0f} req/s", file=sys.stderr)
                finally:
                    process.send_signal(signal.SIGINT)
                    process.wait()
                    sock.close()
    lines = [
        "| request | plain serving (req/s) | stage phase (req/s) | stage phase / plain |",
        "|---|---:|---:|---:|",
    ]
    for name, _, _ in REQUESTS:
        plain = rates[("plain serving", name)]
        staged = rates[("stage phase", name)]
        ratios = [s / p for s, p in zip(staged, plain, strict=True)]
        lines.append(
            f"| `{name}` | {statistics.median(plain):,.0f} | {statistics.median(staged):,.0f} "
            f"| {statistics.median(ratios):.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)}) |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(
            f"# The stage phase's overhead\n\n`python bench/profile_overhead.py --rounds {args.rounds} "
            f"--seconds {args.seconds}`: medians of interleaved rounds, ratio per round (same round's "
            "plain serving), server on CPU 0, oha on CPU 1 with 16 connections.\n\n" + table + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
