"""The servers the devtools start: any command line that names its port (the
frameworks ``spikard bench`` compares, the ``--against`` app), and ``spikard run``
on a socket bound here (each phase of a profile). Started in a session of their own
(the terminal's Ctrl-C is for the tool, which stops them), asked whether they
answer, sent single requests, and stopped with SIGINT."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from spikard_devtools._placement import pinned
from spikard_devtools._requests import Probe
from spikard_devtools._served import Answer, CpuTimes, NotServing, answers, send, tree


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _in_child() -> None:
    """Before the server's program runs: SIGINT at its default (a bench started in
    the background, with nohup or &, has it ignored, which its servers would inherit,
    and some, Robyn, then stop only with SIGKILL); and killed should the bench die
    without stopping it (SIGKILL, or a test's timeout), as its own session keeps it
    from any terminal's signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class CommandServer:
    def __init__(
        self,
        name: str,
        command: Sequence[str],
        port: int,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        pin: str | None = None,
        discard_output: bool = False,
        pass_fds: Sequence[int] = (),
        signal_group: bool = True,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        # SIGINT to the whole process group (a server's workers too), or to the
        # process alone (a supervisor that stops its workers itself).
        self.signal_group = signal_group
        # What it prints, kept to show when it fails (the file goes with this object),
        # unless it would be an access log's worth.
        self._output = None if discard_output else tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                pinned(self.command, pin),
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=self._output if self._output is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=pass_fds,
                preexec_fn=_in_child,
            )
        except OSError as error:
            raise NotServing(f"{name}: cannot run {self.command[0]}: {error.strerror or error}") from None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        if self._output is None:
            return "(its output is discarded)"
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    def wait_serving(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NotServing(
                    f"{self.name} exited with status {self.process.returncode}:\n{self.output().strip()[-1500:]}"
                )
            if answers(self.port):
                return
            time.sleep(0.05)
        raise NotServing(f"{self.name} did not answer within {timeout:.0f} s:\n{self.output().strip()[-1500:]}")

    def send(self, probe: Probe, timeout: float = 30.0) -> Answer:
        return send(self.port, probe, timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (to its process group, or to it alone); killed if not gone within
        ``timeout``, or at once on a second Ctrl-C."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self.signal_group:
                    os.killpg(self.process.pid, signal.SIGINT)
                else:
                    self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except (subprocess.TimeoutExpired, KeyboardInterrupt) as stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                if isinstance(stopped, KeyboardInterrupt):
                    raise
        # Whatever it left behind in its group (a worker that ignored SIGINT).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode


class ServedApp(CommandServer):
    """``spikard run APP`` on a socket bound here and passed with ``--fd`` (a
    connection waits in the backlog until the app accepts it: no port to race for),
    for one phase of a profile. SIGINT goes to the supervisor alone, which stops its
    workers and writes ``--stats-file`` at shutdown."""

    def __init__(self, app: str, run_args: list[str], *, pin: str | None = None) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(2048)
        fd = self.sock.fileno()
        command = [sys.executable, "-m", "spikard", "run", app, "--fd", str(fd), *run_args]
        try:
            super().__init__(
                "spikard run", command, self.sock.getsockname()[1], pin=pin, pass_fds=(fd,), signal_group=False
            )
        except NotServing:
            self.sock.close()
            raise

    def pids(self) -> list[int]:
        """The server and every process under it (a supervisor's workers)."""
        return tree(self.process.pid)

    def cpu_times(self) -> CpuTimes:
        ticks = os.sysconf("SC_CLK_TCK")
        user = system = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                user += int(fields[11]) / ticks
                system += int(fields[12]) / ticks
        return CpuTimes(user, system)

    def stop(self, timeout: float = 15.0) -> int:
        try:
            return super().stop(timeout)
        finally:
            self.sock.close()
