"""Commands registered before they are built, so that ``spikard --help`` lists them
and running one says what to expect rather than failing."""

from __future__ import annotations

import sys


def _not_yet(name: str, what: str) -> int:
    print(f"spikard {name}: not yet available in this version of spikard-devtools ({what}).", file=sys.stderr)
    return 2


def bench(argv: list[str]) -> int:
    return _not_yet("bench", "the FastAPI comparison; bench/run.py measures meanwhile")
