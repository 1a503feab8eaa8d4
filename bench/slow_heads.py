"""What slow clients holding unfinished request heads cost the server.

    python bench/slow_heads.py [--clients 1000] [--bytes 60000] [--max-head-size N]

One `spikard run` (bench/apps/rss_app.py); `--clients` connections each send the
start of a request head, `--bytes` of header lines, and never finish it. The server's
RSS is read before, once every client has sent its bytes, and after they have all
gone; a normal request is answered meanwhile. hyper's default read buffer would let
each connection hold about 400 KB; `--max-head-size` (64 KiB by default) bounds it.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _process import free_port, rss_kib, wait_serving

HERE = Path(__file__).resolve().parent
APP = HERE / "apps" / "rss_app.py"


def rss_mib(pid: int) -> float:
    return rss_kib(pid) / 1024


def get(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/items/1", timeout=10) as answer:
        return answer.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--bytes", type=int, default=60_000, help="header bytes each client sends")
    parser.add_argument("--max-head-size", type=int, default=None)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients + 256)), hard))
    port = free_port()
    command = [sys.executable, "-m", "spikard.cli", "run", str(APP), "--port", str(port), "--no-access-log"]
    command += ["--header-read-timeout", "60", "--max-connections", str(args.clients + 100)]
    if args.max_head_size:
        command += ["--max-head-size", str(args.max_head_size)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clients: list[socket.socket] = []
    try:
        wait_serving(f"http://127.0.0.1:{port}/items/1", server, "bench/slow_heads.py")
        before = rss_mib(server.pid)
        line = b"X-Slow: " + b"y" * 990 + b"\r\n"
        head = b"GET /items/1 HTTP/1.1\r\nHost: t\r\n" + line * (args.bytes // len(line))
        for _ in range(args.clients):
            client = socket.create_connection(("127.0.0.1", port))
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                client.send(head)
            clients.append(client)
        time.sleep(2)
        held = rss_mib(server.pid)
        served = get(port)
        for client in clients:
            client.close()
        clients.clear()
        time.sleep(3)
        after = rss_mib(server.pid)
    finally:
        for client in clients:
            client.close()
        server.terminate()
        server.wait(timeout=30)
    growth = held - before
    print(
        f"{args.clients} clients holding {args.bytes:,}-byte unfinished heads: RSS {before:.1f} MiB before, "
        f"{held:.1f} MiB while held (+{growth:.1f} MiB, {growth * 1024 / args.clients:.0f} KiB each), "
        f"{after:.1f} MiB after they left; a normal request meanwhile: {served}"
    )


if __name__ == "__main__":
    main()
