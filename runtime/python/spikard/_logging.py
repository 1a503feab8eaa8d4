"""spikard's logs, all through Python ``logging`` so that applications can route them:

- ``spikard.access``: one INFO record per request, written in batches by the runtime
  (``access.rs``) once its response has been written — ``client - "METHOD target
  HTTP/x" status duration``, or ``status cut`` for a response cut before its end (a
  client that stopped reading or left), with the fields also as record attributes
  (``client_addr``, ``method``, ``target``, ``http_version``, ``status_code``,
  ``duration_ms``, ``cut``) for structured formatters;
- ``spikard.error``: server messages (serving, stopped, warnings) and handler
  exceptions with their tracebacks. A supervisor message that repeats one of its
  events (``--events-fd``) carries the event's name as ``spikard_event``.

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
import re
import sys
from collections.abc import Callable
from pathlib import Path

ACCESS = "spikard.access"
ERROR = "spikard.error"
LEVELS = ("critical", "error", "warning", "info", "debug")

access_log = logging.getLogger(ACCESS)
error_log = logging.getLogger(ERROR)

# Marks the console handlers configure_logging installed.
_OURS = "_spikard_console"
_ACCESS_FORMAT = '%s - "%s %s %s" %d%s %.2fms%s'
_PLAIN = logging.Formatter("%(message)s")
# What a log line cannot hold as a client sent it (the runtime's lines escape the same).
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def escape_field(text: str) -> str:
    """``text`` as one field of an access line: ``"`` and ``\\`` behind a backslash,
    control bytes, DEL and bytes past ASCII (of its UTF-8) as ``\\xHH``, as nginx
    writes them, so that a request target cannot end its quotes or forge a line."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in '"\\':
        return "\\" + char
    return "".join(f"\\x{b:02X}" for b in char.encode("utf-8", "surrogateescape"))


# The console handler ``configure_logging`` installed for access records, if any.
_console: _ConsoleLines | None = None


class _ServerFormatter(logging.Formatter):
    """``spikard: message``, with the level for warnings and worse."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"spikard: {record.levelname.lower()}: {text}"
        return f"spikard: {text}"


class _ConsoleLines(logging.StreamHandler):
    """The access log's console handler. Records arrive one by one, as for any
    handler, each written whole (one write of at most a pipe's atomic size for a
    usual line, so workers sharing stdout never interleave inside a line); while
    nothing else would see the records, the runtime hands it whole lines instead
    (``write_chunks``)."""

    def write_chunks(self, chunks: list[str]) -> None:
        """Writes chunks of whole lines formatted by the runtime, each at most a
        pipe's atomic write."""
        for chunk in chunks:
            try:
                self.stream.write(chunk)
                self.stream.flush()
            except (OSError, ValueError):  # stdout closed or gone: lines are dropped
                return


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
    global _console
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
        _console = _ConsoleLines(sys.stdout)
        setattr(_console, _OURS, True)
        _console.setFormatter(_PLAIN)
        access_log.addHandler(_console)
        access_log.propagate = False


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


def access_enabled() -> bool:
    return access_log.isEnabledFor(logging.INFO)


def access_console() -> Callable[[list[str]], None] | None:
    """The writer of the console handler ``configure_logging`` installed, when it is
    all that ``spikard.access`` records would reach, unchanged: the runtime then
    hands over formatted lines and no record is built that nothing would see."""
    log, console = access_log, _console
    if console is None or log.handlers != [console] or log.filters or log.propagate:
        return None
    if console.filters or console.formatter is not _PLAIN or console.level > logging.INFO:
        return None
    return console.write_chunks if log.isEnabledFor(logging.INFO) else None


AccessBatch = list[tuple[str | None, str, str, str, int, float, bool, list[tuple[str, float]] | None]]


def write_access(batch: AccessBatch) -> None:
    """Called by the runtime with ``(client, method, target, http_version, status,
    seconds, cut, stages)`` records, oldest first; ``stages`` lists ``(name,
    milliseconds)`` when ``--access-log-stages`` is on. The message escapes the
    target; the record's ``target`` attribute keeps it as sent, for formatters
    that quote it themselves (JSON)."""
    log = access_log
    if not log.isEnabledFor(logging.INFO):
        return
    make, handle, name = log.makeRecord, log.handle, log.name
    for client, method, target, version, status, seconds, cut, stages in batch:
        ms = seconds * 1000.0
        staged = dict(stages) if stages is not None else None
        shown = "".join(f" {name}={took:.3f}" for name, took in stages) if stages else ""
        # Made directly: logging's caller lookup would cost more than the line.
        record = make(
            name,
            logging.INFO,
            "",
            0,
            _ACCESS_FORMAT,
            (client or "-", method, escape_field(target), version, status, " cut" if cut else "", ms, shown),
            None,
            extra={
                "client_addr": client,
                "method": method,
                "target": target,
                "http_version": version,
                "status_code": status,
                "duration_ms": ms,
                "cut": cut,
                "stages_ms": staged,
            },
        )
        handle(record)


def _event(name: str | None) -> dict[str, str] | None:
    return {"spikard_event": name} if name else None


def warn(message: str, event: str | None = None) -> None:
    """A warning from the runtime (a full connection table, a failing accept);
    ``event``: the supervisor event (``--events-fd``) it repeats, as the record's
    ``spikard_event`` attribute, so that a tool showing the events can leave it out."""
    error_log.warning("%s", message, extra=_event(event))


def info(message: str, event: str | None = None) -> None:
    error_log.info("%s", message, extra=_event(event))


def error(message: str, event: str | None = None) -> None:
    error_log.error("%s", message, extra=_event(event))
