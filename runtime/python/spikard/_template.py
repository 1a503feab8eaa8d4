"""The template of ``spikard run --preload-imports``: a process that has imported
what the app imports from outside its own folder (third-party packages, the
standard library, spikard itself) and forks a worker each time the supervisor asks,
so that starting or restarting a worker does not import them again. Each worker
imports the app's own modules afresh, as it is on disk now.

It forks before anything has started a thread (the runtime starts its threads in
the worker), and says so when its imports started threads, in which case the
supervisor spawns workers as usual. Over its pipe, with the supervisor:

- it says ``ready`` once its imports are done (or ``threads N``), then for each
  ``spawn ARGV-JSON`` (the worker's control socket passed along) answers ``pid N``,
  or ``stale PATH`` when a file it imported has changed on disk since (it then forks
  no more, and the supervisor starts a new template);
- it reports ``exit PID STATUS`` for each worker that exits (its workers are its
  children), and exits itself once asked to ``retire`` and its last worker is gone.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import selectors
import signal
import socket
import sys
import threading
from pathlib import Path

from spikard.loading import split_target

# Folders whose modules are never the app's imports: tools, environments, builds.
_SKIPPED_DIRS = {".git", ".venv", "venv", "__pycache__", "node_modules", "target", "build", "dist", ".tox"}
# At most this many of the app's files are read for their imports.
_MAX_FILES = 2000


def app_folder(target: str) -> Path:
    """Where the app's own modules live: the file's folder, or the working directory."""
    location, _ = split_target(target)
    path = Path(location)
    if location.endswith(".py") or path.is_file():
        return path.resolve().parent
    return Path.cwd().resolve()


def imported_names(folder: Path) -> set[str]:
    """The absolute imports of the ``.py`` files under ``folder``."""
    names: set[str] = set()
    files = 0
    for root, dirs, filenames in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith(".")]
        for filename in filenames:
            if not filename.endswith(".py"):
                continue
            files += 1
            if files > _MAX_FILES:
                return names
            try:
                tree = ast.parse(Path(root, filename).read_bytes())
            except (SyntaxError, ValueError, OSError):
                continue  # the worker reports what is wrong with it
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module)
    return names


def _outside(name: str, folder: Path) -> bool:
    """Whether module ``name`` is found outside the app's folder (not the app's own)."""
    try:
        spec = importlib.util.find_spec(name.partition(".")[0])
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    places = [spec.origin] if spec.origin and spec.has_location else list(spec.submodule_search_locations or ())
    if not places:
        return True  # built in, or frozen
    return not any(Path(place).resolve().is_relative_to(folder) for place in places)


def preload(target: str) -> list[str]:
    """Imports what the app imports from outside its folder; returns the names imported."""
    folder = app_folder(target)
    # As the worker will have it: the app's folder first on the path.
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    loaded = []
    for name in sorted(imported_names(folder)):
        if name in sys.modules or not _outside(name, folder):
            continue
        try:
            importlib.import_module(name)
        except BaseException:
            continue
        loaded.append(name)
    # What the worker runs, imported once here too.
    import spikard._worker  # noqa: F401

    return loaded


def _files() -> dict[str, float]:
    """Each imported module's file and its modification time."""
    seen = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path not in seen:
            with contextlib.suppress(OSError):
                seen[path] = os.stat(path).st_mtime
    return seen


def _changed(files: dict[str, float]) -> str | None:
    for path, mtime in files.items():
        try:
            if os.stat(path).st_mtime != mtime:
                return path
        except OSError:
            return path
    return None


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


class Template:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: set[int] = set()
        self.retired = False
        self.files: dict[str, float] = {}
        # Signals wake the loop through this pair (Python's wake-up descriptor).
        self.reader, self.writer = socket.socketpair()

    def say(self, message: str) -> None:
        with contextlib.suppress(OSError):
            self.control.sendall(message.encode() + b"\n")

    def serve(self) -> int:
        reader, writer = self.reader, self.writer
        reader.setblocking(False)
        writer.setblocking(False)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # The supervisor stops the workers itself; a terminal's Ctrl-C is not for us.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        selector = selectors.DefaultSelector()
        selector.register(self.control, selectors.EVENT_READ, "control")
        selector.register(reader, selectors.EVENT_READ, "signal")
        buffer = b""
        while True:
            for key, _ in selector.select(1.0):
                if key.data == "signal":
                    with contextlib.suppress(BlockingIOError):
                        reader.recv(64)
                    continue
                try:
                    data, fds, _, _ = socket.recv_fds(self.control, 65536, 4)
                except OSError:
                    data, fds = b"", []
                if not data:
                    self.retired = True  # the supervisor is gone
                    selector.unregister(self.control)
                    continue
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self._handle(line.decode(), fds)
                    fds = []
                for fd in fds:
                    os.close(fd)
            self._reap()
            if self.retired and not self.children:
                return 0

    def _handle(self, line: str, fds: list[int]) -> None:
        if line == "retire":
            self.retired = True
            return
        if not line.startswith("spawn ") or not fds:
            return
        changed = _changed(self.files)
        if changed or self.retired:
            for fd in fds:
                os.close(fd)
            self.retired = True
            self.say(f"stale {changed or 'retired'}")
            return
        argv = json.loads(line.removeprefix("spawn "))
        control_fd = fds[0]
        pid = os.fork()
        if pid == 0:
            self._become_worker(argv, control_fd)
        os.close(control_fd)
        self.children.add(pid)
        self.say(f"pid {pid}")

    def _become_worker(self, argv: list[str], control_fd: int) -> None:
        """In the forked child: the worker's own main, then exit."""
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            for own in (self.control, self.reader, self.writer):
                own.close()
            from spikard import _worker

            status = _worker.main([*argv, "--control-fd", str(control_fd)])
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(status)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.say(f"exit {pid} {os.waitstatus_to_exitcode(status)}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    from spikard import _worker

    parser = argparse.ArgumentParser(prog="spikard-template")
    parser.add_argument("app")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--log-level")
    parser.add_argument("--log-config")
    args = parser.parse_args(argv)
    _worker._stop_with_supervisor()
    control = socket.socket(fileno=args.control_fd)
    template = Template(control)
    # As each worker will: what its logging configuration imports is loaded here too.
    with contextlib.suppress(Exception):
        from spikard import _logging

        _logging.configure_logging(args.log_level, log_config=args.log_config)
    preload(args.app)
    gc.collect()
    gc.freeze()
    threads = _threads()
    if threads > 1:
        template.say(f"threads {threads}")
        return 0
    template.files = _files()
    template.say("ready")
    return template.serve()


if __name__ == "__main__":
    sys.exit(main())
