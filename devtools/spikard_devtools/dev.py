"""``spikard dev [APP]``: serve an app for development (the command's description
is ``DESCRIPTION``)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType

import watchfiles

from spikard_devtools import _console
from spikard_devtools._find import CANDIDATES, NoApp, app_directory, find_app, missing_file
from spikard_devtools._session import Session
from spikard_devtools._watch import IGNORED_DIRS, SourceFilter, shown

DESCRIPTION = """\
Serve an app for development. A save reloads it in tens of milliseconds without
refusing a request. Code that does not load leaves the last good code serving, is
shown with its file, line and traceback, and every response says so in a
Spikard-Stale header until a save loads. Every response carries Server-Timing, and
each request is shown with its five stages."""

# How long the writes of one save (or of "save all", a few milliseconds apart) may
# take to settle before the reload starts: a burst spread wider is two reloads, the
# supervisor coalescing the second while the first starts.
SETTLE_MS = 10
# `spikard run`'s exit status for options it refuses.
USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikard dev",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"With no APP, the first of {', '.join(CANDIDATES)} found in the working directory. "
        f"Never watched: {', '.join(IGNORED_DIRS)}, bytecode and editor scratch files.",
    )
    parser.add_argument(
        "app",
        nargs="?",
        metavar="APP",
        help="path/app.py, path/app.py:attr, package.module or package.module:attr (attribute 'app' by default)",
    )
    where = parser.add_argument_group("where to listen")
    where.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    where.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    reload = parser.add_argument_group("reloading")
    reload.add_argument(
        "--reload-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="watch DIR (repeatable; default: the app's directory)",
    )
    reload.add_argument(
        "--reload-include",
        action="append",
        default=[],
        metavar="GLOB",
        help="also reload on files matching GLOB, by name or, with a '/', by path (repeatable; .py always)",
    )
    reload.add_argument(
        "--reload-exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="never reload on files matching GLOB (repeatable)",
    )
    reload.add_argument("--no-reload", action="store_true", help="serve without watching for changes")
    serving = parser.add_argument_group("serving (as for spikard run)")
    serving.add_argument("--root-path", metavar="PATH", help="the path prefix a proxy serves the app under")
    serving.add_argument("--no-access-log", action="store_true", help="no line per request")
    serving.add_argument(
        "--graceful-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long an old worker's in-flight requests may take to finish, on reload or Ctrl-C (default: 5)",
    )
    serving.add_argument(
        "--max-body-size", type=int, metavar="BYTES", help="largest request body accepted (default: spikard run's)"
    )
    serving.add_argument("--log-level", choices=("debug", "info", "warning", "error", "critical"), help="log level")
    return parser


def _run_args(args: argparse.Namespace) -> list[str]:
    """The ``spikard run`` options for development, and those passed through."""
    run = [
        "--preload-imports",
        "--server-timing",
        "--debug",
        "--graceful-timeout",
        str(args.graceful_timeout),
    ]
    if args.root_path:
        run += ["--root-path", args.root_path]
    run.append("--no-access-log" if args.no_access_log else "--access-log-stages")
    if args.max_body_size is not None:
        run += ["--max-body-size", str(args.max_body_size)]
    if args.log_level:
        run += ["--log-level", args.log_level]
    return run


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.graceful_timeout < 0:
        _console.console.print("spikard dev: --graceful-timeout cannot be negative", style="red")
        return 2
    here = Path.cwd()
    try:
        target = find_app(args.app, here)
    except NoApp as error:
        _console.console.print(f"spikard dev: {error}", style="red")
        return 2
    if absent := missing_file(target, here):
        _console.console.print(f"spikard dev: no such file: {absent}", style="red")
        return 2
    watched = [Path(d).resolve() for d in args.reload_dir] or [app_directory(target, here)]
    missing = [str(d) for d in watched if not d.is_dir()]
    if missing:
        _console.console.print(f"spikard dev: no such directory: {', '.join(missing)}", style="red")
        return 2
    try:
        sock = _listen(args.host, args.port)
    except OSError as error:
        _console.console.print(f"spikard dev: cannot listen on {args.host}:{args.port}: {error.strerror}", style="red")
        return 1
    stop = threading.Event()
    host = f"[{args.host}]" if ":" in args.host else args.host
    port = sock.getsockname()[1]
    session = Session(target, sock, _run_args(args))

    def stop_on(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # a second Ctrl-C: at once
            session.kill()
        stop.set()

    # SIGHUP too: a closed terminal must not leave the server behind.
    previous = {sig: signal.signal(sig, stop_on) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        _console.banner(f"http://{host}:{port}", target, watched, not args.no_reload)
        session.start()
        if args.no_reload:
            if not _serve_until(stop, session):
                stop.set()
        else:
            _watch(stop, session, watched, SourceFilter(watched, args.reload_include, args.reload_exclude))
    finally:
        with sock:
            status = session.stop(args.graceful_timeout)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _console.console.print("spikard dev: stopped", style="dim")
    if status == USAGE:
        return USAGE
    if args.no_reload and status not in (0, -signal.SIGTERM, -signal.SIGKILL):
        return 1
    return 0 if status in (0, -signal.SIGTERM, -signal.SIGKILL) else 1


def _serve_until(stop: threading.Event, session: Session) -> bool:
    """Serves until stopped (True), or until the server exits on its own (False):
    without reloading, nothing would start it again."""
    while not stop.wait(0.5):
        if session.exited() is not None:
            return False
    return True


def _watch(stop: threading.Event, session: Session, roots: list[Path], source: SourceFilter) -> None:
    said = False
    for changes in watchfiles.watch(
        *roots,
        watch_filter=source,
        debounce=1600,
        step=SETTLE_MS,
        stop_event=stop,
        rust_timeout=500,
        yield_on_timeout=True,
        raise_interrupt=False,
    ):
        if changes:
            said = False
            session.reload(shown((path for _, path in changes), roots))
            continue
        status = session.exited()
        if status == USAGE:
            return  # spikard run refused the options; it said why
        if status is not None and session.reload_pending():
            # It exited (giving up on code that never loaded) as the save's SIGHUP arrived.
            session.start()
            continue
        if status is not None and status != 0 and not said and session.stale is None and not session.never_loaded:
            # Nothing serves (the app never loaded, or the server died): the next save starts it again.
            said = True
            with contextlib.suppress(Exception):
                _console.stopped_unexpectedly(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
