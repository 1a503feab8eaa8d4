"""A worker process of the supervisor (``spikard/supervisor.py``): serves the app on
the listening socket it inherited, and reports to the supervisor over its pipe."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from spikard import _logging as logs
from spikard import _spikard
from spikard._server import ServeOptions, serve_main
from spikard._template import app_folder, imported_outside
from spikard.loading import AppLoadError, load_app

_PR_SET_PDEATHSIG = 1


def _stop_with_supervisor() -> None:
    """Linux: a SIGTERM (a graceful stop) when the supervisor dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


STALE_HEADER = "spikard-stale"


class Reporter:
    """The worker's end of its pipe to the supervisor: one line per message."""

    def __init__(self, fd: int) -> None:
        self._control = socket.socket(fileno=fd)

    def listen(self, server: _spikard.Server) -> None:
        """Follows the supervisor's messages on a thread of its own: ``stale TEXT``
        (what this worker serves is no longer the code on disk: every response says
        so in a ``Spikard-Stale`` header)."""

        def follow() -> None:
            for line in self._control.makefile("r", encoding="utf-8", errors="replace"):
                message = line.strip()
                if message.startswith("stale "):
                    # The supervisor made it a valid header value (spikard._events.stale_text).
                    with contextlib.suppress(ValueError):
                        server.set_notice(STALE_HEADER, message.removeprefix("stale "))

        threading.Thread(target=follow, name="spikard-control", daemon=True).start()

    def tell(self, message: str) -> bool:
        """Sends ``message``; False when the supervisor cannot hear it (if the
        supervisor is gone, the death signal stops this worker anyway)."""
        try:
            self._control.sendall(message.encode() + b"\n")
        except OSError:
            return False
        return True

    def serving(self, folder: Path) -> None:
        """Says the worker serves, then, off the serving path, what it imported from
        outside the app's folder (a template, with --preload-imports, imports it for
        the next worker)."""
        self.tell("ready")

        def report() -> None:
            self.tell("imports " + " ".join(imported_outside(folder)))

        threading.Thread(target=report, name="spikard-imports", daemon=True).start()

    def cannot_start(self, error: Exception) -> int:
        """Tells the supervisor why this worker cannot start: in full (``failure
        JSON``, from ``AppLoadError.to_json``), then in one line (the supervisor
        logs it beside the worker it keeps); gives the exit status."""
        line = " ".join(str(error).split())
        failure = error.to_json() if isinstance(error, AppLoadError) else {"message": line}
        self.tell(f"failure {json.dumps(failure)}")
        if not self.tell(f"failed {line}"):
            print(f"spikard: {line}", file=sys.stderr)
        return 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spikard-worker")
    parser.add_argument("app")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--options", type=json.loads, default={}, help="ServeOptions as JSON")
    parser.add_argument("--log-level")
    parser.add_argument("--log-config")
    args = parser.parse_args(argv)
    _stop_with_supervisor()
    supervisor = Reporter(args.control_fd)
    try:
        logs.configure_logging(args.log_level, log_config=args.log_config)
        app = load_app(args.app)
    except (logs.LogConfigError, AppLoadError) as error:
        return supervisor.cannot_start(error)
    logs.after_app_import()
    sock = socket.socket(fileno=args.fd)
    options = ServeOptions(**args.options)
    options = dataclasses.replace(options, debug=options.debug or app.debug)
    server = _spikard.Server()
    supervisor.listen(server)
    try:
        cut = serve_main(
            app,
            sock,
            options,
            label=f"worker {os.getpid()}",
            ready=lambda: supervisor.serving(app_folder(args.app)),
            on_max_requests=lambda: supervisor.tell("recycle"),
            server=server,
        )
    except ValueError as error:  # routes that cannot be served together
        return supervisor.cannot_start(error)
    supervisor.tell(f"cut {cut}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
