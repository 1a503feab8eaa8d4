"""The ``spikard`` command (also ``python -m spikard``): ``spikard.cli``, except that an
interpreter the runtime does not support is told so in one line, not a traceback."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from spikard.cli import main as run
    except ImportError as error:
        if error.name != "spikard._asyncio_bridge":
            raise
        print(error, file=sys.stderr)  # "spikard supports CPython ...; this interpreter ..."
        return 1
    return run()


if __name__ == "__main__":
    sys.exit(main())
