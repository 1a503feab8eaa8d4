"""Carries the stage statistics out of the process: ``--stats-file`` (the
``spikard.stats`` snapshot as JSON, rewritten every ``--stats-interval`` seconds and
once more at shutdown) and ``--metrics-port`` / ``--metrics-uds`` (the Prometheus
text exposition, on a socket of its own apart from the app's). In a supervisor both
show every worker's figures merged, those of exited workers included."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from spikard import _logging as logs
from spikard import _spikard
from spikard.stats import Snapshot

# What Prometheus expects of the text exposition format.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, sources: _spikard.StatsSources) -> None:
        super().__init__(("127.0.0.1", 0), _MetricsHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock  # bound and listening already, by the command line
        self.sources = sources


class _MetricsHandler(BaseHTTPRequestHandler):
    server: _MetricsServer

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] not in ("/", "/metrics"):
            self.send_error(404, "the metrics are at /metrics")
            return
        body = self.server.sources.prometheus().encode()
        self.send_response(200)
        self.send_header("Content-Type", METRICS_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not logged: one every few seconds would drown the log."""


class StatsExport:
    """Writes ``stats_file`` and serves the exposition on ``metrics`` (either may be
    ``None``) from the figures of ``sources``, between ``start()`` and ``close()``."""

    def __init__(
        self,
        sources: _spikard.StatsSources,
        *,
        stats_file: str | None = None,
        interval: float = 5.0,
        metrics: socket.socket | None = None,
    ) -> None:
        self.sources = sources
        self.stats_file = stats_file
        self.interval = interval
        self._metrics = _MetricsServer(metrics, sources) if metrics is not None else None
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._serving = False  # the metrics server's loop runs (shutdown() waits for it)
        self._last_error: str | None = None

    def start(self) -> StatsExport:
        if self._metrics is not None:
            self._spawn(self._metrics.serve_forever, "spikard-metrics")
            self._serving = True
        if self.stats_file and self.interval > 0:
            self._spawn(self._write_periodically, "spikard-stats-file")
        return self

    def _spawn(self, target: Callable[[], object], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def worker_exited(self, pid: int) -> None:
        """A supervisor's worker has exited: its figures stay counted."""
        try:
            self.sources.worker_exited(pid)
        except OSError as error:
            logs.warn(f"{error}")

    def _write_periodically(self) -> None:
        while not self._stopped.wait(self.interval):
            self.write()

    def write(self) -> None:
        """Replaces the statistics file whole (a reader never sees half of one)."""
        if not self.stats_file:
            return
        snapshot = Snapshot._from_rows(self.sources.rows())
        partial = f"{self.stats_file}.{os.getpid()}.partial"
        try:
            with open(partial, "w") as out:
                out.write(snapshot.to_json())
            os.replace(partial, self.stats_file)
        except OSError as error:
            problem = f"cannot write the statistics to {self.stats_file}: {error.strerror or error}"
            if problem != self._last_error:  # said once, not every interval
                logs.warn(problem)
            self._last_error = problem
            with contextlib.suppress(OSError):
                os.unlink(partial)
        else:
            self._last_error = None

    def close(self) -> None:
        """Stops the exposition and writes the file a last time."""
        self._stopped.set()
        if self._metrics is not None:
            if self._serving:
                self._metrics.shutdown()
            self._metrics.server_close()
        for thread in self._threads:
            thread.join()
        self.write()

    def __enter__(self) -> StatsExport:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
