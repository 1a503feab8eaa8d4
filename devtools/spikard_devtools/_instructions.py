"""Instructions per request, counted by callgrind: exact and repeatable whatever else
the machine does, so small differences between builds, interpreters or frameworks
show where wall-clock figures on a shared machine cannot.

Each server runs under ``valgrind --tool=callgrind`` (children traced, so that a
launcher script's ``exec`` and a server's workers are counted too). For each
workload its counters are zeroed, ``SMALL`` requests are sent one after another on
one connection, and the counts dumped; then again with ``LARGE``. The figure is the
difference over ``LARGE - SMALL`` requests, which removes the fixed cost of the
dump and of whatever the server does between requests."""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from spikard_devtools._bench_run import Contender
from spikard_devtools._served import Answer, NotServing, tree
from spikard_devtools._server import CommandServer, free_port
from spikard_devtools._suite import Expect, Workload

SMALL, LARGE = 200, 1000
# Under callgrind, interpreters start some fifty times slower.
START_TIMEOUT = 600.0
SUMMARY = re.compile(rb"^summary:\s+(\d+)", re.MULTILINE)
INSTALL = "apt-get install valgrind (it brings callgrind_control)"


class Uncountable(Exception):
    """The count could not be taken; the message says why."""


def missing() -> str | None:
    absent = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    return f"{' and '.join(absent)} not installed ({INSTALL})" if absent else None


def count(
    contender: Contender,
    workloads: list[Workload],
    said: Callable[[str], None],
) -> dict[str, int | str]:
    """Instructions per request of ``contender`` on each workload it serves: a
    number, or why there is none (a wrong answer is never counted)."""
    found: dict[str, int | str] = {}
    with tempfile.TemporaryDirectory(prefix="spikard-callgrind-") as scratch:
        folder = Path(scratch)
        prefix = (
            "valgrind",
            "--tool=callgrind",
            "--trace-children=yes",
            f"--callgrind-out-file={folder}/cg.%p",
        )
        port = free_port()
        command = [*prefix, *contender.expanded(port)]
        env = {k: v.format(port=port) for k, v in contender.env.items()}
        said(f"instructions: starting {contender.label} under callgrind")
        server = CommandServer(contender.name, command, port, cwd=contender.cwd, env=env)
        try:
            server.wait_serving(START_TIMEOUT)
            for workload in workloads:
                if not contender.serves(workload):
                    continue
                said(f"instructions: {workload.title} · {contender.label}")
                try:
                    found[workload.name] = _per_request(server, workload, workload.expect, folder)
                except Uncountable as error:
                    found[workload.name] = str(error)
        except NotServing as error:
            return {w.name: f"did not start: {error}" for w in workloads if contender.serves(w)}
        finally:
            server.stop(timeout=60)
    return found


def _per_request(server: CommandServer, workload: Workload, expect: Expect, folder: Path) -> int:
    if not expect.status:  # a request of the user's app: held to the status it gets first
        expect = Expect(server.send(workload.probe).status)
    _send(server.port, workload, 20, expect)  # warm: caches, lazy imports, first-call paths
    small = _counted(server, workload, SMALL, expect, folder)
    large = _counted(server, workload, LARGE, expect, folder)
    return round((large - small) / (LARGE - SMALL))


def _counted(server: CommandServer, workload: Workload, n: int, expect: Expect, folder: Path) -> int:
    pids = tree(server.process.pid)
    _control("-z", pids)
    before = set(folder.iterdir())
    _send(server.port, workload, n, expect)
    _control("-d", pids)
    dumps = [path for path in folder.iterdir() if path not in before and path.stat().st_size]
    if not dumps:
        raise Uncountable("callgrind wrote no counts (is the server a process callgrind can follow?)")
    total = 0
    for dump in dumps:
        match = SUMMARY.search(dump.read_bytes())
        if match:
            total += int(match.group(1))
        dump.unlink()
    return total


def _control(option: str, pids: list[int]) -> None:
    """``callgrind_control`` on every process of the server that runs under callgrind
    (the others say they are not, which is fine)."""
    for pid in pids:
        subprocess.run(["callgrind_control", option, str(pid)], capture_output=True, timeout=120)


def _send(port: int, workload: Workload, n: int, expect: Expect) -> None:
    """``n`` requests one after another on one connection, each answer checked."""
    probe = workload.probe
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for _ in range(n):
            connection.putrequest(probe.method, probe.target, skip_accept_encoding=True)
            for name, value in probe.headers:
                connection.putheader(name, value)
            if probe.body is not None:
                connection.putheader("content-length", str(len(probe.body)))
            connection.endheaders(probe.body)
            response = connection.getresponse()
            answer = Answer(response.status, response.read())
            verdict = expect.verdict(answer)
            if verdict is not None:
                raise Uncountable(f"wrong answer: {verdict}")
            if response.will_close:
                connection.close()
    except (OSError, http.client.HTTPException) as error:
        raise Uncountable(f"no answer: {error}") from None
    finally:
        connection.close()
