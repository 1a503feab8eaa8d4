"""One ``spikard dev`` session: the listening socket, bound once, and the ``spikard
run`` supervisor that serves the app on it, driven only by documented flags
(``--fd``, ``--events-fd``, ``--stale-header``, ``--log-config``, …) and SIGHUP.

On a save the supervisor gets SIGHUP: it starts a worker with the new code while the
old one keeps serving, and retires the old one only once the new one serves. Saves
that arrive while a worker is starting coalesce into one more reload (the supervisor
keeps one pending SIGHUP). When the new code does not load, the old worker keeps
serving and marks every response ``Spikard-Stale``; when nothing has ever loaded
the supervisor exits, and the next save starts it again on the same socket."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from spikard_devtools import _console


@dataclass
class Session:
    app: str
    sock: socket.socket
    run_args: Sequence[str]  # further `spikard run` options
    supervisor: subprocess.Popen[bytes] | None = None
    stale: str | None = None
    never_loaded: bool = False  # the last start failed to load the app (and said so)
    # When the reload under way was asked for, and for which files.
    _reload_started: float | None = None
    _reload_files: str = ""
    _reload_asked: float = 0.0  # when, in Unix time (as events are stamped)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _config_dir: tempfile.TemporaryDirectory[str] = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="spikard-dev-")
    )

    def start(self) -> None:
        """Starts the supervisor; its events are followed on a thread."""
        config = Path(self._config_dir.name) / "logging.json"
        config.write_text(json.dumps(_console.log_config()))
        read_end, write_end = os.pipe()
        command = [
            sys.executable,
            "-m",
            "spikard",
            "run",
            self.app,
            "--fd",
            str(self.sock.fileno()),
            "--events-fd",
            str(write_end),
            "--stale-header",
            "--log-config",
            str(config),
            *self.run_args,
        ]
        try:
            self.supervisor = subprocess.Popen(
                command,
                pass_fds=(self.sock.fileno(), write_end),
                # Ctrl-C reaches `spikard dev` only: it stops the supervisor itself.
                start_new_session=True,
            )
        finally:
            os.close(write_end)
        events = os.fdopen(read_end, "r", encoding="utf-8")
        threading.Thread(target=self._follow, args=(events,), name="spikard-dev-events", daemon=True).start()

    def reload(self, files: str) -> None:
        """The code changed: a rolling restart, or a new start when nothing serves."""
        with self._lock:
            self._reload_files = files
            self._reload_started = time.monotonic()
            self._reload_asked = time.time()
        _console.reloading(files)
        if self.supervisor is None or self.supervisor.poll() is not None:
            self.start()
        else:
            with contextlib.suppress(ProcessLookupError):
                self.supervisor.send_signal(signal.SIGHUP)

    def stop(self, grace: float) -> int:
        """Stops the supervisor (and so its workers) and waits for it."""
        if self.supervisor is None:
            return 0
        with contextlib.suppress(ProcessLookupError):
            self.supervisor.send_signal(signal.SIGTERM)
        try:
            # Past the supervisor's own deadline (grace + 10 s) for its workers.
            return self.supervisor.wait(grace + 15.0)
        except subprocess.TimeoutExpired:
            self.supervisor.kill()
            return self.supervisor.wait()
        finally:
            self._config_dir.cleanup()

    def kill(self) -> None:
        """Stops at once (a second Ctrl-C): the workers get their parent-death signal."""
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.kill()

    def reload_pending(self) -> bool:
        """A reload was asked for and nothing has come of it yet."""
        with self._lock:
            return self._reload_started is not None

    def exited(self) -> int | None:
        """The supervisor's exit status once it has exited on its own."""
        return None if self.supervisor is None else self.supervisor.poll()

    def _follow(self, events: IO[str]) -> None:
        with events:
            for line in events:
                with contextlib.suppress(ValueError):
                    self._event(json.loads(line))

    def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "reloaded":
            with self._lock:
                started, files = self._reload_started, self._reload_files
                self._reload_started = None
            millis = (time.monotonic() - started) * 1000 if started else event.get("seconds", 0) * 1000
            _console.reloaded(files, millis)
            if self.stale:
                self.stale = None
                _console.recovered()
        elif kind == "ready" and not event.get("successor"):
            # A first worker: at start, or of a supervisor started again by a save.
            self.never_loaded = False
            with self._lock:
                started, files = self._reload_started, self._reload_files
                self._reload_started = None
            if started is not None:
                _console.reloaded(files, (time.monotonic() - started) * 1000)
            self.stale = None
        elif kind in ("reload-failed", "start-failed"):
            self.never_loaded = kind == "start-failed"
            failure = event.get("failure", {})
            self.stale = event.get("stale") if kind == "reload-failed" else None
            with self._lock:
                # Only a failure of the code the pending reload asked for ends it.
                if event.get("time", 0.0) >= self._reload_asked:
                    self._reload_started = None
            _console.load_failed(failure, self.stale)
