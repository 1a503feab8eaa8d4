"""spikard's logs, all through Python ``logging`` so that applications can route them:

- ``spikard.access``: one INFO record per request, written in batches by the runtime
  (``access.rs``) — ``client - "METHOD target HTTP/x" status duration``, with the
  fields also as record attributes (``client_addr``, ``method``, ``target``,
  ``http_version``, ``status_code``, ``duration_ms``) for structured formatters;
- ``spikard.error``: server messages (serving, stopped, warnings) and handler
  exceptions with their tracebacks.

``configure_logging`` gives both a console handler unless the application brought
its own configuration (``--log-config``, or handlers already on the loggers). While
that console handler is all the access records would reach, the runtime formats the
lines itself and hands them over whole (a LogRecord costs several times the line);
any handler, filter, formatter or propagation the application adds brings back one
full record per request.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

ACCESS = "spikard.access"
ERROR = "spikard.error"
LEVELS = ("critical", "error", "warning", "info", "debug")
# POSIX guarantees pipe writes up to PIPE_BUF (4096 on Linux) are not interleaved.
_ATOMIC_WRITE = 4096

access_log = logging.getLogger(ACCESS)
error_log = logging.getLogger(ERROR)

# Marks the console handlers configure_logging installed.
_OURS = "_spikard_console"
_ACCESS_FORMAT = '%s - "%s %s %s" %d %.2fms'
_PLAIN = logging.Formatter("%(message)s")

# The console handler ``configure_logging`` installed for access records, flushed
# once per batch rather than once per record.
_batched: list[_BatchedStreamHandler] = []


class _ServerFormatter(logging.Formatter):
    """``spikard: message``, with the level for warnings and worse."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"spikard: {record.levelname.lower()}: {text}"
        return f"spikard: {text}"


class _BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes a batch of access lines together, in writes of whole lines no larger
    than a pipe takes atomically, so that workers sharing stdout never interleave
    inside a line and a busy server makes one system call per many lines."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self.batching = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
        if not self.batching:
            self.flush_batch()

    def flush_batch(self) -> None:
        self.write_lines(self._pending)
        self._pending = []

    def write_lines(self, lines: list[str]) -> None:
        chunk: list[str] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) > _ATOMIC_WRITE:
                self._write("".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write("".join(chunk))

    def write_chunks(self, chunks: list[str]) -> None:
        """Writes chunks of whole lines formatted by the runtime, each at most a
        pipe's atomic write."""
        for chunk in chunks:
            self._write(chunk)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stdout closed or gone: lines are dropped
            pass


class LogConfigError(Exception):
    """A ``--log-config`` file that cannot be used."""


def _load_config(path: str) -> None:
    file = Path(path)
    try:
        if file.suffix in (".json", ".yaml", ".yml"):
            if file.suffix == ".json":
                config = json.loads(file.read_text())
            else:
                import yaml  # type: ignore[import-untyped]

                config = yaml.safe_load(file.read_text())
            # dictConfig would otherwise silence every logger the file does not
            # name, spikard's own among them.
            config.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(config)
        else:
            logging.config.fileConfig(file, disable_existing_loggers=False)
    except ImportError as error:
        raise LogConfigError(f"{path}: YAML log configurations need PyYAML ({error})") from error
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise LogConfigError(f"{path}: {error}") from error


def configure_logging(level: str | None = "info", *, log_config: str | None = None) -> None:
    """Console logging for ``spikard run`` / ``app.run``: server messages on stderr,
    access lines on stdout, at ``level`` and above (``info`` when None). With
    ``log_config`` (a ``dictConfig`` file in JSON or YAML, or a ``fileConfig`` .ini),
    that file decides instead; ``level``, when given, still applies to the spikard
    loggers, and ``info`` does when neither names a level for them."""
    if log_config:
        _load_config(log_config)
    spikard = logging.getLogger("spikard")
    if level or spikard.level == logging.NOTSET:
        spikard.setLevel((level or "info").upper())
    if log_config:
        return
    if not spikard.handlers:
        console = logging.StreamHandler(sys.stderr)
        setattr(console, _OURS, True)
        console.setFormatter(_ServerFormatter("%(message)s"))
        spikard.addHandler(console)
        spikard.propagate = False
    if not access_log.handlers:
        lines = _BatchedStreamHandler(sys.stdout)
        setattr(lines, _OURS, True)
        lines.setFormatter(_PLAIN)
        access_log.addHandler(lines)
        access_log.propagate = False
        _batched.append(lines)


def after_app_import() -> None:
    """Keeps spikard's logs working whatever the application did to logging when it
    was imported: loggers a ``dictConfig`` disabled are enabled again, and where the
    application put handlers of its own on a spikard logger, the console handler
    ``configure_logging`` installed there steps aside (each line once)."""
    for name in ("spikard", ERROR, ACCESS):
        logger = logging.getLogger(name)
        logger.disabled = False
        ours = [h for h in logger.handlers if getattr(h, _OURS, False)]
        if ours and len(ours) < len(logger.handlers):
            for handler in ours:
                logger.removeHandler(handler)
                if handler in _batched:
                    _batched.remove(handler)


def access_enabled() -> bool:
    return access_log.isEnabledFor(logging.INFO)


def access_console() -> Callable[[list[str]], None] | None:
    """The writer of the console handler ``configure_logging`` installed, when it is
    all that ``spikard.access`` records would reach, unchanged: the runtime then
    hands over formatted lines and no record is built that nothing would see."""
    log = access_log
    if len(_batched) != 1 or log.handlers != _batched or log.filters or log.propagate:
        return None
    console = _batched[0]
    if console.filters or console.formatter is not _PLAIN or not log.isEnabledFor(logging.INFO):
        return None
    if console.level > logging.INFO:
        return None
    return console.write_chunks


def write_access(batch: list[tuple[str | None, str, str, str, int, float]]) -> None:
    """Called by the runtime with ``(client, method, target, http_version, status,
    seconds)`` records, oldest first."""
    log = access_log
    if not log.isEnabledFor(logging.INFO):
        return
    make, handle, name = log.makeRecord, log.handle, log.name
    for handler in _batched:
        handler.batching = True
    try:
        for client, method, target, version, status, seconds in batch:
            ms = seconds * 1000.0
            # Made directly: logging's caller lookup would cost more than the line.
            record = make(
                name,
                logging.INFO,
                "",
                0,
                _ACCESS_FORMAT,
                (client or "-", method, target, version, status, ms),
                None,
                extra={
                    "client_addr": client,
                    "method": method,
                    "target": target,
                    "http_version": version,
                    "status_code": status,
                    "duration_ms": ms,
                },
            )
            handle(record)
    finally:
        for handler in _batched:
            handler.batching = False
            handler.flush_batch()


def warn(message: str) -> None:
    """A warning from the runtime (a full connection table, a failing accept)."""
    error_log.warning("%s", message)


def info(message: str) -> None:
    error_log.info("%s", message)


def error(message: str) -> None:
    error_log.error("%s", message)
