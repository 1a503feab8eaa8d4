"""HTTP status codes by name, as FastAPI users write them: ``status.HTTP_201_CREATED``."""

from __future__ import annotations

from http import HTTPStatus

# RFC 9110 renamed four statuses; CPython 3.13 took the new names and keeps the old
# ones as aliases, earlier versions know only the old. Both spellings work on every
# version, as in Starlette.
_RENAMED = {
    "REQUEST_ENTITY_TOO_LARGE": "CONTENT_TOO_LARGE",
    "REQUEST_URI_TOO_LONG": "URI_TOO_LONG",
    "REQUESTED_RANGE_NOT_SATISFIABLE": "RANGE_NOT_SATISFIABLE",
    "UNPROCESSABLE_ENTITY": "UNPROCESSABLE_CONTENT",
}
_SPELLINGS = {**_RENAMED, **{new: old for old, new in _RENAMED.items()}}


def _code(phrase: str) -> int | None:
    """The status a phrase names, in either spelling of a renamed one."""
    for name in (phrase, _SPELLINGS.get(phrase)):
        status = HTTPStatus.__members__.get(name or "")
        if status is not None:
            return status.value
    return None


def __getattr__(name: str) -> int:
    """``HTTP_404_NOT_FOUND`` -> 404, for every status ``http.HTTPStatus`` knows."""
    prefix, _, rest = name.partition("_")
    code, _, phrase = rest.partition("_")
    if prefix == "HTTP" and code.isdigit() and _code(phrase) == int(code):
        return int(code)
    raise AttributeError(f"module 'spikard.status' has no attribute {name!r}")


def __dir__() -> list[str]:
    names = {f"HTTP_{s.value}_{s.name}" for s in HTTPStatus}
    names |= {f"HTTP_{s.value}_{_SPELLINGS[s.name]}" for s in HTTPStatus if s.name in _SPELLINGS}
    return sorted(names)
