"""Deploying behind nginx: the shipped ``deploy/nginx.conf`` in front of two ``spikard run``
instances on loopback, with real nginx, processes, sockets and signals. Requests reach
both instances, the proxy headers nginx sets are honoured, and restarting one instance
(SIGTERM, exit, start again on the same port) under load loses no request.

nginx comes from Debian's package, installed by ``scripts/ensure-debian.sh nginx`` (which
``scripts/test.sh`` runs); without an nginx binary these tests are skipped."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from conftest import SpikardProcess, free_port, spikard_command, write_app

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
if NGINX is None:
    pytest.skip(
        "nginx is not installed (bash scripts/ensure-debian.sh nginx installs Debian's package)",
        allow_module_level=True,
    )

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"

APP = """
import asyncio
import os

from spikard import Request, Spikard

app = Spikard()


@app.get("/who")
async def who(request: Request):
    client = request.client
    return {
        "pid": os.getpid(),
        "client": client.host if client else None,
        "scheme": request.url.scheme,
        "host": request.headers.get("host"),
    }


@app.get("/slow")
async def slow(seconds: float = 0.3):
    await asyncio.sleep(seconds)
    return {"pid": os.getpid()}
"""

SPIKARD_ARGS = ["--proxy-headers", "--forwarded-allow-ips", "127.0.0.1", "--graceful-timeout", "10"]


def render_config(template: str, folder: Path, listen: int, upstreams: tuple[int, int]) -> str:
    """``deploy/nginx.conf`` with only the ports and file locations changed; each change must
    apply exactly once, so that an edit of the shipped file cannot go untested unnoticed."""

    def at(name: str) -> str:
        return str(folder / name)

    changes = [
        (r"^(\s*listen\s+)80;", lambda m: f"{m[1]}127.0.0.1:{listen};"),
        (r"^(\s*server\s+127\.0\.0\.1:)8001\b", lambda m: f"{m[1]}{upstreams[0]}"),
        (r"^(\s*server\s+127\.0\.0\.1:)8002\b", lambda m: f"{m[1]}{upstreams[1]}"),
        (r"^(\s*pid\s+)[^;\s]+;", lambda m: f"{m[1]}{at('nginx.pid')};"),
        (r"^(\s*error_log\s+)[^;\s]+", lambda m: f"{m[1]}{at('error.log')}"),
        (r"^(\s*access_log\s+)[^;\s]+", lambda m: f"{m[1]}{at('access.log')}"),
    ]
    text = template
    for pattern, replacement in changes:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"{CONFIG}: expected one line matching {pattern!r}, found {count}"

    # nginx makes its temporary folders at startup (as root, handing them to the worker
    # user): keep them in the test's folder rather than the system's /var/lib/nginx.
    build = subprocess.run([NGINX, "-V"], capture_output=True, text=True).stderr
    temp = ["client_body", "proxy"]
    temp += [name for name in ("fastcgi", "uwsgi", "scgi") if f"--without-http_{name}_module" not in build]
    lines = "".join(f"    {name}_temp_path {at('temp-' + name)};\n" for name in temp)
    text, count = re.subn(r"^http\s*\{\n", lambda m: m[0] + lines, text, flags=re.MULTILINE)
    assert count == 1, f"{CONFIG}: expected one 'http {{' line"
    return text


class Deployment:
    """nginx (the rendered ``deploy/nginx.conf``) in front of instances ``a`` and ``b``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.instances: list[SpikardProcess] = []
        self.nginx: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        write_app(self.folder, APP)
        self.a = self.start_instance(free_port())
        self.b = self.start_instance(free_port())
        self.start_nginx()

    def start_instance(self, port: int) -> SpikardProcess:
        command = [*spikard_command(), "run", "app.py", "--port", str(port), *SPIKARD_ARGS]
        instance = SpikardProcess(command, self.folder, port, self.folder / f"spikard-{len(self.instances)}.txt")
        self.instances.append(instance)
        instance.wait_serving()
        return instance

    def restart_a(self) -> int:
        """SIGTERM to instance ``a``, then ``a`` again on the same port once it has exited;
        returns the old one's exit status."""
        status = self.a.stop(signal.SIGTERM, timeout=15)
        self.a = self.start_instance(self.a.port)
        return status

    @property
    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def access_log(self) -> str:
        path = self.folder / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_nginx(self) -> None:
        config = self.folder / "nginx.conf"
        config.write_text(render_config(CONFIG.read_text(), self.folder, self.port, (self.a.port, self.b.port)))
        command = [NGINX, "-p", str(self.folder), "-c", str(config), "-g", "daemon off;"]
        with (self.folder / "nginx-stderr.txt").open("wb") as stderr:
            self.nginx = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, start_new_session=True
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.nginx.poll() is not None:
                output = (self.folder / "nginx-stderr.txt").read_text(errors="replace")
                pytest.fail(f"nginx exited with {self.nginx.returncode}:\n{output}\n{self.error_log}")
            try:
                if httpx.get(f"{self.url}/who", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"nginx did not proxy a request within 20s:\n{self.error_log}")

    def close(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()  # fast shutdown: the master stops its workers
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.nginx.pid, signal.SIGKILL)  # the session started for it
                self.nginx.wait(timeout=10)
        for instance in self.instances:
            instance.kill()


@pytest.fixture
def deployment(tmp_path: Path):
    deployment = Deployment(tmp_path)
    try:
        deployment.start()
        yield deployment
    finally:  # also when starting failed half way
        deployment.close()


def who(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> dict:
    response = client.get(f"{url}/who", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_requests_through_nginx_reach_both_instances(deployment):
    with httpx.Client(timeout=10) as client:
        pids = Counter(who(client, deployment.url)["pid"] for _ in range(40))
    # `spikard run` without --workers serves in its own process.
    assert set(pids) == {deployment.a.proc.pid, deployment.b.proc.pid}, pids
    assert min(pids.values()) >= 10, pids  # round robin, not a trickle


def test_proxy_headers_from_nginx_are_honoured(deployment):
    with httpx.Client(timeout=10) as client:
        # nginx appends the address it was connected from (127.0.0.1, trusted) to what the
        # client sent; the first untrusted address from the right is the client.
        seen = who(client, deployment.url, {"X-Forwarded-For": "203.0.113.7"})
        assert seen["client"] == "203.0.113.7"
        assert seen["scheme"] == "http"  # X-Forwarded-Proto: $scheme
        # An address made up further left is not believed.
        seen = who(client, deployment.url, {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
        assert seen["client"] == "203.0.113.7"
        # Without the header, the client is whoever connected to nginx.
        seen = who(client, deployment.url)
        assert seen["client"] == "127.0.0.1"
        assert seen["scheme"] == "http"
        # Host is passed on.
        seen = who(client, deployment.url, {"Host": "app.example.test"})
        assert seen["host"] == "app.example.test"

        # Straight to an instance, from 127.0.0.1 (trusted), the headers count too.
        direct = f"http://127.0.0.1:{deployment.a.port}"
        seen = who(client, direct, {"X-Forwarded-For": "203.0.113.9"})
        assert seen["client"] == "203.0.113.9"
        seen = who(client, direct, {"X-Forwarded-Proto": "https"})
        assert seen["scheme"] == "https"
        assert seen["client"] == "127.0.0.1"
        seen = who(client, direct)
        assert (seen["client"], seen["scheme"]) == ("127.0.0.1", "http")


class Load:
    """``workers`` threads, each with its own keep-alive client, sending requests through
    nginx back to back (every fifth one to a route that takes 0.3 s) until stopped."""

    def __init__(self, url: str, workers: int = 8) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self.pids: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(workers)]

    def _run(self, n: int) -> None:
        with httpx.Client(timeout=15) as client:
            sent = n
            while not self._stop.is_set():
                path = "/slow?seconds=0.3" if sent % 5 == 0 else "/who"
                sent += 1
                try:
                    response = client.get(self.url + path)
                except httpx.HTTPError as error:
                    with self._lock:
                        self.failures.append(f"{path}: {error!r}")
                    continue
                with self._lock:
                    if response.status_code == 200:
                        self.ok += 1
                        self.pids[response.json()["pid"]] += 1
                    else:
                        self.failures.append(f"{path}: {response.status_code} {response.text[:200]}")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_restarting_one_instance_under_load_loses_no_request(deployment):
    with Load(deployment.url) as load:
        wait_for(lambda: len(load.pids) == 2, 10, "load reaching both instances")
        for _ in range(2):
            old = deployment.a.proc.pid
            wait_for(lambda old=old: load.pids[old] > 0, 15, "nginx sending requests to instance a")
            before = load.ok
            status = deployment.restart_a()  # returns once the new instance serves
            stopped = deployment.instances[-2]
            assert status == 0, stopped.stderr
            # In-flight requests finished on a: nginx retrying them (GETs) would hide it.
            assert "cut short" not in stopped.stderr
            assert load.ok > before, "nothing was served while instance a was restarting"
            new = deployment.a.proc.pid
            # nginx tries the restarted instance again fail_timeout (2 s) after it refused.
            wait_for(lambda new=new: load.pids[new] > 0, 15, "nginx sending requests to the restarted instance")
        time.sleep(0.3)
    retried = [line for line in deployment.access_log.splitlines() if re.search(r"upstream=\S+, ", line)]
    assert load.failures == [], (
        f"{len(load.failures)} failed of {load.ok + len(load.failures)}: {load.failures[:10]}\n"
        f"retried by nginx: {retried[:10]}\n{deployment.error_log[-3000:]}"
    )
    assert load.ok > 100
    assert len(load.pids) == 4  # a three times (the first and two restarts) and b
    assert deployment.b.proc.poll() is None
