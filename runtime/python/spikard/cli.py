"""The ``spikard`` command.

``spikard run APP`` serves an app. Other distributions add commands through the
entry-point group ``spikard.commands``: each entry point names a callable that
takes the remaining arguments (``list[str]``) and returns an exit status.
``spikard-devtools`` adds ``dev``, ``profile`` and ``bench`` this way.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import resource
import socket
import sys
import tempfile
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from spikard import __version__, _spikard
from spikard import _logging as logs
from spikard import _timing_options as timing_options
from spikard._logging import LEVELS
from spikard._server import (
    DEFAULT_BACKLOG,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEAD_SIZE,
    MIN_MAX_HEAD_SIZE,
    ServeOptions,
    bind_socket,
    bind_unix,
    remove_unix,
    serve_main,
    unix_identity,
)
from spikard.loading import AppLoadError, load_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

DEVTOOLS_COMMANDS = {
    "dev": "serve with reload on save and timing headers",
    "profile": "per-stage latency table and flamegraphs",
    "bench": "benchmark against FastAPI and the Rust ceiling",
}


def _plugin_commands() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group="spikard.commands") if ep.name != "run"}


def _parser(plugins: dict[str, EntryPoint]) -> argparse.ArgumentParser:
    extra = [f"  {name:<9} (from {ep.dist.name if ep.dist else ep.value})" for name, ep in sorted(plugins.items())]
    missing = [f"  {name:<9} {text}" for name, text in DEVTOOLS_COMMANDS.items() if name not in plugins]
    epilog = ""
    if extra:
        epilog += "installed commands:\n" + "\n".join(extra) + "\n"
    if missing:
        epilog += "with spikard-devtools installed (pip install spikard-devtools):\n" + "\n".join(missing)
    parser = argparse.ArgumentParser(
        prog="spikard",
        description="spikard: typed Python handlers served by a Rust HTTP runtime.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"spikard {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="serve an app",
        description="Serve an app until Ctrl-C or SIGTERM; in-flight requests finish first.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument(
        "app",
        metavar="APP",
        help="path/app.py, path/app.py:attr, package.module:attr or package.module (attribute 'app' by default)",
    )
    where = run.add_argument_group("where to listen")
    # No defaults here, so that --host/--port given with --uds/--fd can be refused.
    where.add_argument(
        "--host", default=argparse.SUPPRESS, help="address to listen on (default: 127.0.0.1; 0.0.0.0 for all)"
    )
    where.add_argument("--port", type=int, default=argparse.SUPPRESS, help="port to listen on (default: 8000)")
    where.add_argument("--uds", metavar="PATH", help="listen on a Unix socket at PATH instead (mode 0666)")
    where.add_argument(
        "--fd", type=int, metavar="N", help="serve on the listening socket inherited as file descriptor N instead"
    )
    where.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG, metavar="N", help="listen queue length")

    processes = run.add_argument_group("processes")
    processes.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the listening socket (0: one per CPU core); "
        "more than one, or --max-requests, starts a supervisor that replaces workers that die. "
        "SIGHUP to the supervisor reloads the app: workers are replaced one at a time, each old one "
        "stopping only once its successor serves; if the app no longer starts, the old workers keep serving",
    )
    processes.add_argument(
        "--max-requests",
        type=int,
        default=0,
        metavar="N",
        help="replace a worker after it has answered N requests, without dropping any (0: never)",
    )
    processes.add_argument(
        "--max-requests-jitter",
        type=int,
        default=0,
        metavar="N",
        help="add a random 0..N to each worker's --max-requests, so that workers are not replaced together",
    )
    processes.add_argument(
        "--preload-imports",
        action="store_true",
        help="fork workers from a template process that has already imported what the app imports from "
        "outside its own folder (its packages, the standard library, spikard), so that a worker starts, "
        "and SIGHUP reloads, without importing them again; the app's own modules are imported afresh "
        "in each worker. A template whose imported files change on disk is replaced "
        "(starts a supervisor)",
    )
    processes.add_argument(
        "--stale-header",
        action="store_true",
        help="while a SIGHUP reload fails (the app on disk no longer starts), every response of the "
        "workers still serving carries 'Spikard-Stale: FILE:LINE ERROR' naming where it fails "
        "(starts a supervisor; for development: it shows file names to clients)",
    )
    processes.add_argument(
        "--events-fd",
        type=int,
        metavar="N",
        help="write the supervisor's events to file descriptor N, one JSON object per line "
        "(ready, reloading, reloaded, reload-failed, start-failed; for tools; starts a supervisor); "
        "when N is a pipe whose reader closes it, the supervisor stops",
    )
    processes.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on shutdown, how long in-flight requests may take to finish",
    )

    connections = run.add_argument_group("connections")
    connections.add_argument(
        "--keep-alive",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="close a keep-alive connection idle this long (0: close each connection after one response)",
    )
    connections.add_argument(
        "--header-read-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="drop a connection whose request head has not fully arrived this long after "
        "it connected or began the request, and answer 408 to a body that pauses this long (0: no limit)",
    )
    connections.add_argument(
        "--write-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="drop a connection whose response has made no progress for this long: a client that stopped "
        "reading (timed between writes, not over the whole response; 0: no limit)",
    )
    connections.add_argument(
        "--max-connections",
        type=int,
        default=10_000,
        metavar="N",
        help="connections open at once per worker; more wait in the listen queue (0: no limit)",
    )
    connections.add_argument(
        "--max-body-size",
        type=int,
        default=DEFAULT_MAX_BODY_SIZE,
        metavar="BYTES",
        help="the largest request body read; a larger one is refused with 413, from its Content-Length "
        f"before it is read (default {DEFAULT_MAX_BODY_SIZE})",
    )
    connections.add_argument(
        "--max-head-size",
        type=int,
        default=DEFAULT_MAX_HEAD_SIZE,
        metavar="BYTES",
        help="the most a request's line and headers may take; a larger head is refused with 431 "
        f"(default {DEFAULT_MAX_HEAD_SIZE}, at least {MIN_MAX_HEAD_SIZE})",
    )

    logs = run.add_argument_group("logs")
    logs.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one line per request on stdout (logger spikard.access)",
    )
    logs.add_argument(
        "--log-level",
        choices=LEVELS,
        default=argparse.SUPPRESS,
        help="least severe messages shown; 'warning' also silences the access log "
        "(default: info, or what --log-config sets)",
    )
    logs.add_argument(
        "--log-config",
        metavar="FILE",
        help="logging configuration: dictConfig in .json or .yaml, or fileConfig .ini (replaces the console setup)",
    )
    logs.add_argument("--debug", action="store_true", help="show tracebacks in 500 responses")

    timing_options.add_arguments(run)

    proxy = run.add_argument_group("behind a proxy")
    proxy.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="take the client address and scheme from X-Forwarded-For/-Proto (or, without them, "
        "Forwarded) when the connection comes from --forwarded-allow-ips",
    )
    proxy.add_argument(
        "--forwarded-allow-ips",
        default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        metavar="LIST",
        help="comma-separated proxy addresses and networks to trust, or '*' (which also trusts "
        "Unix-socket peers) "
        "(default: $FORWARDED_ALLOW_IPS or %(default)s)",
    )
    proxy.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="the path prefix a proxy serves the app under (and strips), for request.url",
    )
    return parser


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, if anything."""
    counts = ("workers", "max_requests", "max_requests_jitter", "max_connections", "max_body_size", "backlog")
    for name in (*counts, "graceful_timeout", "keep_alive", "header_read_timeout", "write_timeout"):
        if getattr(args, name) < 0:
            return f"--{name.replace('_', '-')} cannot be negative"
    if args.max_head_size < MIN_MAX_HEAD_SIZE:
        return f"--max-head-size must be at least {MIN_MAX_HEAD_SIZE} bytes (got {args.max_head_size})"
    if args.events_fd is not None:
        try:
            os.fstat(args.events_fd)
        except OSError:
            return f"--events-fd {args.events_fd} is not an open file descriptor"
    if args.uds and args.fd is not None:
        return "--uds and --fd cannot be used together"
    if (args.uds or args.fd is not None) and (hasattr(args, "host") or hasattr(args, "port")):
        return f"--host and --port do not apply with {'--uds' if args.uds else '--fd'}"
    problem = timing_options.check(args)
    if problem:
        return problem
    if args.root_path and not args.root_path.startswith("/"):
        return f"--root-path must start with '/' (got {args.root_path!r})"
    return _check_allow_ips(args.forwarded_allow_ips)


def _check_allow_ips(value: str) -> str | None:
    try:
        _spikard.check_forwarded_allow_ips(value)
    except ValueError as error:
        return f"--forwarded-allow-ips: {error}"
    return None


def _options(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        debug=args.debug,
        graceful_timeout=args.graceful_timeout,
        header_read_timeout=args.header_read_timeout,
        keep_alive=args.keep_alive,
        write_timeout=args.write_timeout,
        max_connections=args.max_connections,
        max_body_size=args.max_body_size,
        max_head_size=args.max_head_size,
        max_requests=args.max_requests,
        access_log=args.access_log,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        root_path=args.root_path,
        server_timing=args.server_timing,
        stage_stats=timing_options.stage_stats(args),
        access_log_stages=args.access_log_stages,
    )


def _listen(args: argparse.Namespace) -> socket.socket:
    """The listening socket the arguments ask for; ``OSError`` with a message if not."""
    if args.fd is not None:
        try:
            sock = socket.socket(fileno=args.fd)
        except OSError as error:
            raise OSError(f"file descriptor {args.fd} is not a socket ({error.strerror or error})") from None
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            sock.detach()
            raise OSError(f"file descriptor {args.fd} is not a listening stream socket")
        return sock
    if args.uds:
        try:
            return bind_unix(args.uds, args.backlog)
        except OSError as error:
            raise OSError(f"cannot listen on {args.uds}: {error.strerror or error}") from None
    host, port = getattr(args, "host", DEFAULT_HOST), getattr(args, "port", DEFAULT_PORT)
    try:
        return bind_socket(host, port, args.backlog)
    except OSError as error:
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def _raise_file_limit(max_connections: int) -> None:
    """Every connection is a file descriptor: lift the soft limit to the hard one,
    and say so if connections would still run out of descriptors first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    wanted = max_connections + 64
    if soft != resource.RLIM_INFINITY and (max_connections == 0 or soft < wanted):
        logs.warn(
            f"at most {soft} open files per process: about {max(soft - 64, 0)} connections; "
            "raise the limit (ulimit -n) or lower --max-connections"
        )


def _supervise(
    args: argparse.Namespace, workers: int, options: ServeOptions, sock: socket.socket, metrics: socket.socket | None
) -> int:
    from spikard._events import Events
    from spikard.supervisor import Supervisor, WorkerSpec

    spec = WorkerSpec(
        app=args.app,
        options=options,
        max_requests_jitter=args.max_requests_jitter,
        log_level=getattr(args, "log_level", None),
        log_config=args.log_config,
    )
    events = Events(args.events_fd) if args.events_fd is not None else None
    extras: dict[str, Any] = {"events": events, "stale_header": args.stale_header, "preload": args.preload_imports}
    if not timing_options.exports(args):
        return Supervisor(spec, sock, workers, **extras).run()
    # Each worker keeps its statistics in a file here, for the supervisor to merge;
    # in memory rather than on disk where there is such a file system.
    shared_memory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with (
        tempfile.TemporaryDirectory(prefix="spikard-stats-", dir=shared_memory) as directory,
        timing_options.exporting(args, metrics, directory) as export,
    ):
        spec = dataclasses.replace(spec, options=dataclasses.replace(options, stats_dir=directory))
        return Supervisor(spec, sock, workers, stats=export, **extras).run()


def _run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        print(f"spikard: {problem}", file=sys.stderr)
        return 2
    try:
        logs.configure_logging(getattr(args, "log_level", None), log_config=args.log_config)
    except logs.LogConfigError as error:
        print(f"spikard: {error}", file=sys.stderr)
        return 2
    options = _options(args)
    _raise_file_limit(options.max_connections)
    workers = args.workers or (os.cpu_count() or 1)
    supervised = (
        workers > 1 or args.max_requests or args.stale_header or args.preload_imports or args.events_fd is not None
    )
    app = None
    if not supervised:
        try:
            app = load_app(args.app)
        except AppLoadError as error:
            print(f"spikard: {error}", file=sys.stderr)
            return 1
        logs.after_app_import()
    try:
        sock = _listen(args)
    except OSError as error:
        print(f"spikard: {error}", file=sys.stderr)
        return 1
    bound = unix_identity(args.uds) if args.uds else None
    try:
        metrics = timing_options.listen(args, getattr(args, "host", DEFAULT_HOST))
    except OSError as error:
        sock.close()
        if args.uds:
            remove_unix(args.uds, bound)
        print(f"spikard: {error}", file=sys.stderr)
        return 1
    metrics_bound = unix_identity(args.metrics_uds) if args.metrics_uds else None
    try:
        with sock:
            if app is None:
                return _supervise(args, workers, options, sock, metrics)
            options = dataclasses.replace(options, debug=options.debug or app.debug)
            try:
                with timing_options.exporting(args, metrics):
                    serve_main(app, sock, options, name=args.app)
            except ValueError as error:  # routes that cannot be served together
                print(f"spikard: {error}", file=sys.stderr)
                return 1
            return 0
    finally:
        if args.uds:
            remove_unix(args.uds, bound)
        if args.metrics_uds:
            remove_unix(args.metrics_uds, metrics_bound)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    plugins = _plugin_commands()
    if argv and argv[0] in plugins:
        status = plugins[argv[0]].load()(argv[1:])
        return int(status or 0)
    if argv and argv[0] in DEVTOOLS_COMMANDS:
        print(
            f"spikard: '{argv[0]}' ({DEVTOOLS_COMMANDS[argv[0]]}) is part of spikard-devtools, "
            "which is not installed.\n"
            "Install it with: pip install spikard-devtools   (from a spikard checkout: pip install ./devtools)",
            file=sys.stderr,
        )
        return 2
    parser = _parser(plugins)
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
