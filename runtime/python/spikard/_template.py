"""The template of ``spikard run --preload-imports``: a process that imports what the
app's workers import from outside the app's folder (its packages, the standard
library, spikard) and forks a worker each time the supervisor asks, so that starting
or restarting a worker does not import them again. Each worker imports the app's own
modules afresh, as they are on disk now.

It never starts the runtime (whose threads exist only in the workers), and forks
only while it is one thread. It starts with spikard and the logging configuration
loaded; each worker then reports what it imported (``imports NAMES`` to the
supervisor, which passes it on as ``preload NAMES``), and the template imports that
too, between forks. Over its pipe with the supervisor:

- it says ``ready``; for each ``spawn ARGV-JSON`` (the worker's control socket passed
  along) it answers ``pid N``, or ``stale PATH`` when a file it imported has changed on
  disk since (it then forks no more), or ``threads N`` when its imports started
  threads (likewise);
- ``signal PID SIG`` signals a worker it has not reaped yet; it reports ``exit PID
  STATUS`` for each worker that exits, and exits itself once asked to ``retire`` (or
  once it forks no more) and its last worker is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
from pathlib import Path

from spikard.loading import split_target


def app_folder(target: str) -> Path:
    """Where the app's own modules live: the file's folder, or the working directory."""
    location, _ = split_target(target)
    path = Path(location)
    if location.endswith(".py") or path.is_file():
        return path.resolve().parent
    return Path.cwd().resolve()


def imported_outside(folder: Path) -> list[str]:
    """The modules imported now that do not come from ``folder`` (the app's own)."""
    inside = str(folder) + os.sep
    names = []
    for name, module in list(sys.modules.items()):
        if name == "__main__" or module is None:
            continue
        path = getattr(module, "__file__", None)
        # Paths as the import system made them (absolute; no symlink resolving:
        # this runs over every module).
        if path and os.path.abspath(path).startswith(inside):
            continue
        names.append(name)
    return sorted(names)


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


class Template:
    def __init__(self, control: socket.socket, folder: Path) -> None:
        self.control = control
        self.folder = folder
        self.children: set[int] = set()
        self.retired = False
        self.refusal: str | None = None  # why it forks no more
        self.files: dict[str, float] = {}
        # Signals wake the loop through this pair (Python's wake-up descriptor).
        self.reader, self.writer = socket.socketpair()

    def say(self, message: str) -> None:
        with contextlib.suppress(OSError):
            self.control.sendall(message.encode() + b"\n")

    def preload(self, names: list[str]) -> None:
        """Imports ``names`` (failures are the worker's to report), then notes every
        imported file's modification time."""
        for name in names:
            if name in sys.modules:
                continue
            try:
                importlib.import_module(name)
            except BaseException:  # any failure: not preloaded, nothing more
                sys.modules.pop(name, None)
        gc.collect()
        gc.freeze()
        self.files = self._imported_files()
        threads = _threads()
        if threads > 1:
            self.refusal = f"threads {threads}"
            self.say(self.refusal)

    def _imported_files(self) -> dict[str, float]:
        seen = dict(self.files)
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if path and path not in seen:
                with contextlib.suppress(OSError):
                    seen[path] = os.stat(path).st_mtime
        return seen

    def _changed(self) -> str | None:
        for path, mtime in self.files.items():
            try:
                if os.stat(path).st_mtime != mtime:
                    return path
            except OSError:
                return path
        return None

    def serve(self) -> int:
        self.reader.setblocking(False)
        self.writer.setblocking(False)
        signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # The supervisor stops the workers itself; a terminal's Ctrl-C is not for us.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        selector = selectors.DefaultSelector()
        selector.register(self.control, selectors.EVENT_READ, "control")
        selector.register(self.reader, selectors.EVENT_READ, "signal")
        buffer = b""
        while True:
            for key, _ in selector.select(1.0):
                if key.data == "signal":
                    with contextlib.suppress(BlockingIOError):
                        self.reader.recv(64)
                    continue
                try:
                    data, fds, _, _ = socket.recv_fds(self.control, 1 << 20, 4)
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
            if (self.retired or self.refusal) and not self.children:
                return 0

    def _handle(self, line: str, fds: list[int]) -> None:
        command, _, rest = line.partition(" ")
        if command == "retire":
            self.retired = True
        elif command == "preload" and not self.refusal:
            self.preload(rest.split())
        elif command == "signal":
            pid, sig = map(int, rest.split())
            if pid in self.children:  # not reaped: the pid is still its
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        elif command == "spawn" and fds:
            self._spawn(json.loads(rest), fds)

    def _spawn(self, argv: list[str], fds: list[int]) -> None:
        changed = self._changed()
        if changed:
            self.refusal = f"stale {changed}"
        elif self.retired:
            self.refusal = self.refusal or "stale retired"
        elif _threads() > 1:
            self.refusal = f"threads {_threads()}"
        if self.refusal:
            for fd in fds:
                os.close(fd)
            self.say(self.refusal)
            return
        # Whatever is buffered would be written once by each child too.
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._become_worker(argv, fds[0])
        for fd in fds:
            os.close(fd)
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
            # Folders may have gained modules since the template looked.
            importlib.invalidate_caches()
            from spikard import _worker

            status = _worker.main([*argv, "--control-fd", str(control_fd)])
        except SystemExit as exit:
            status = 0 if exit.code is None else exit.code if isinstance(exit.code, int) else 1
        except BaseException:  # reported, then the worker exits
            import traceback

            traceback.print_exc()
        finally:
            # As a spawned worker's interpreter would at exit.
            with contextlib.suppress(Exception):
                import logging

                logging.shutdown()
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
    parser = argparse.ArgumentParser(prog="spikard-template")
    parser.add_argument("app")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--log-level")
    parser.add_argument("--log-config")
    args = parser.parse_args(argv)
    from spikard import _worker

    _worker._stop_with_supervisor()
    folder = app_folder(args.app)
    # As the worker will have it: the app's folder first on the path.
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    template = Template(socket.socket(fileno=args.control_fd), folder)
    # As each worker will: what its logging configuration imports is loaded here too.
    with contextlib.suppress(Exception):
        from spikard import _logging

        _logging.configure_logging(args.log_level, log_config=args.log_config)
    template.preload([])
    if template.refusal:
        return 0
    template.say("ready")
    return template.serve()


if __name__ == "__main__":
    sys.exit(main())
