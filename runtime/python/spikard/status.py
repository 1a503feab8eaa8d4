"""HTTP status codes by name, as FastAPI users write them: ``status.HTTP_201_CREATED``."""

from __future__ import annotations

from http import HTTPStatus


def __getattr__(name: str) -> int:
    """``HTTP_404_NOT_FOUND`` -> 404, for every status ``http.HTTPStatus`` knows."""
    prefix, _, rest = name.partition("_")
    code, _, phrase = rest.partition("_")
    if prefix == "HTTP" and code.isdigit():
        try:
            status = HTTPStatus(int(code))
        except ValueError:
            status = None
        if status is not None and status.name == phrase:
            return status.value
    raise AttributeError(f"module 'spikard.status' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [f"HTTP_{s.value}_{s.name}" for s in HTTPStatus]
