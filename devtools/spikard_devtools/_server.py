"""Any server started from a command line that names its port (``{port}``): the
frameworks ``spikard bench`` compares, and the ``--against`` app. Started in a
session of its own (the terminal's Ctrl-C is for the bench, which stops it), asked
whether it answers, sent single requests, and stopped with SIGINT."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence

from spikard_devtools._placement import pinned
from spikard_devtools._requests import Probe
from spikard_devtools._served import Answer, NotServing, answers, send


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
    ) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
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
        """SIGINT to its process group (a server's workers too); killed if not gone
        within ``timeout``, or at once on a second Ctrl-C."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
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
