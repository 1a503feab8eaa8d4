"""How handler faults are reported: through logging (logger ``spikard.error``),
which without any configuration prints to stderr."""

from __future__ import annotations

import logging
import traceback

error_log = logging.getLogger("spikard.error")


def report_error(exc: BaseException, where: str) -> str:
    """Logs a handler's exception with its traceback; returns the traceback text,
    which the runtime shows in the 500 response only in debug mode."""
    error_log.error("Exception in %s", where, exc_info=exc)
    return "".join(traceback.format_exception(exc))
