"""The supervisor's events for tools (``spikard run --events-fd N``), one JSON object
per line, and the text of the ``Spikard-Stale`` header (``--stale-header``)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

# At most this much of a failure goes in a header.
STALE_TEXT_LIMIT = 200


def stale_text(failure: dict[str, Any]) -> str:
    """``app.py:12 SyntaxError``: where the code on disk fails (relative to the working
    directory when under it) and how, or its one-line error; visible ASCII on one
    line, as a header value must be."""
    filename, lineno, kind = failure.get("filename"), failure.get("lineno"), failure.get("kind")
    if filename:
        with contextlib.suppress(ValueError):
            if os.path.abspath(filename).startswith(os.getcwd() + os.sep):
                filename = os.path.relpath(filename)
        where = f"{filename}:{lineno}" if lineno else filename
        text = f"{where} {kind}" if kind else where
    else:
        text = str(failure.get("message", "the app could not be loaded"))
    printable = "".join(c if " " <= c <= "~" else "?" for c in " ".join(text.split()))
    return printable[:STALE_TEXT_LIMIT]


class Events:
    """Writes events to a file descriptor the supervisor was given: ``ready`` (a worker
    serves), ``reloading`` (SIGHUP received), ``reloaded`` (every worker replaced),
    ``reload-failed`` (a successor could not start: ``failure`` is
    ``AppLoadError.to_json()`` or a one-line ``message``, ``stale`` the header text),
    ``start-failed``. Each has ``event`` and ``time`` (Unix seconds)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._file = os.fdopen(fd, "w", encoding="utf-8", buffering=1, closefd=False)

    def emit(self, event: str, **fields: Any) -> None:
        # When the reader is gone, serving goes on (the supervisor stops on its own).
        with contextlib.suppress(OSError, ValueError):
            self._file.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)
