"""The ``spikard`` command.

``spikard run APP`` serves an app. Other distributions add commands through the
entry-point group ``spikard.commands``: each entry point names a callable that
takes the remaining arguments (``list[str]``) and returns an exit status.
``spikard-devtools`` adds ``dev``, ``profile`` and ``bench`` this way.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import EntryPoint, entry_points

from spikard import __version__

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
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    run.add_argument("--port", type=int, default=8000, help="port to listen on")
    run.add_argument("--debug", action="store_true", help="show tracebacks in 500 responses")
    run.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on shutdown, how long in-flight requests may take to finish",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the listening socket (0: one per CPU core); "
        "more than one, or --max-requests, starts a supervisor that replaces workers that die",
    )
    run.add_argument(
        "--max-requests",
        type=int,
        default=0,
        metavar="N",
        help="replace a worker after it has answered N requests, without dropping any (0: never)",
    )
    run.add_argument(
        "--max-requests-jitter",
        type=int,
        default=0,
        metavar="N",
        help="add a random 0..N to each worker's --max-requests, so that workers are not replaced together",
    )
    return parser


def _supervise(args: argparse.Namespace, workers: int) -> int:
    from spikard._server import bind_socket
    from spikard.supervisor import Supervisor, WorkerSpec

    try:
        sock = bind_socket(args.host, args.port)
    except OSError as error:
        print(f"spikard: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return 1
    spec = WorkerSpec(
        app=args.app,
        debug=args.debug,
        graceful_timeout=args.graceful_timeout,
        max_requests=args.max_requests,
        max_requests_jitter=args.max_requests_jitter,
    )
    with sock:
        return Supervisor(spec, sock, workers).run()


def _run(args: argparse.Namespace) -> int:
    from spikard._server import ServeOptions, bind_socket, serve_main
    from spikard.loading import AppLoadError, load_app

    for name in ("workers", "max_requests", "max_requests_jitter"):
        if getattr(args, name) < 0:
            print(f"spikard: --{name.replace('_', '-')} cannot be negative", file=sys.stderr)
            return 2
    workers = args.workers or (os.cpu_count() or 1)
    if workers > 1 or args.max_requests:
        return _supervise(args, workers)

    try:
        app = load_app(args.app)
    except AppLoadError as error:
        print(f"spikard: {error}", file=sys.stderr)
        return 1
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as error:
        print(f"spikard: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return 1
    options = ServeOptions(debug=args.debug or app.debug, graceful_timeout=args.graceful_timeout)
    with sock:
        try:
            serve_main(app, sock, options, name=args.app)
        except ValueError as error:  # routes that cannot be served together
            print(f"spikard: {error}", file=sys.stderr)
            return 1
    return 0


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
