"""The small containers a request is read through: headers, query parameters, the
URL, the client's address, and ``app.state``. Their names and methods are the
ones FastAPI (Starlette) users already call."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit


class Headers(Mapping[str, str]):
    """Request headers: case-insensitive, multi-valued. ``headers["accept"]`` is
    the first value, ``headers.getlist("accept")`` every value in order."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs = [(name.lower(), value) for name, value in pairs]

    def getlist(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._pairs if key == wanted]

    def __getitem__(self, name: str) -> str:
        wanted = name.lower()
        for key, value in self._pairs:
            if key == wanted:
                return value
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        wanted = name.lower()
        return any(key == wanted for key, _ in self._pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self._pairs))

    def __len__(self) -> int:
        return len(dict.fromkeys(key for key, _ in self._pairs))

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        """Every (name, value) pair, repeated names included."""
        return list(self._pairs)

    def raw(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._pairs) == sorted(other._pairs)
        return NotImplemented

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._pairs!r})"


class MutableHeaders(Headers):
    """Response headers: ``headers["x"] = v`` replaces, ``append`` adds another."""

    __slots__ = ()

    def __setitem__(self, name: str, value: str) -> None:
        key = name.lower()
        self._pairs = [(k, v) for k, v in self._pairs if k != key]
        self._pairs.append((key, value))

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        if key not in self:
            raise KeyError(name)
        self._pairs = [(k, v) for k, v in self._pairs if k != key]

    def append(self, name: str, value: str) -> None:
        self._pairs.append((name.lower(), value))

    def setdefault(self, name: str, value: str) -> str:
        if name in self:
            return self[name]
        self.append(name, value)
        return value

    def update(self, other: Mapping[str, str]) -> None:
        for name, value in other.items():
            self[name] = value


class QueryParams(Mapping[str, str]):
    """The query string: ``params["tag"]`` is the last value (as a handler's
    parameter reads it), ``params.getlist("tag")`` every value."""

    __slots__ = ("_pairs",)

    def __init__(self, query: str | Iterable[tuple[str, str]] = "") -> None:
        if isinstance(query, str):
            self._pairs = parse_qsl(query, keep_blank_values=True)
        else:
            self._pairs = list(query)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]

    def __getitem__(self, name: str) -> str:
        values = self.getlist(name)
        if not values:
            raise KeyError(name)
        return values[-1]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self._pairs))

    def __len__(self) -> int:
        return len(dict.fromkeys(key for key, _ in self._pairs))

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._pairs!r})"


class URL(str):
    """The request URL as a string, with its parts as attributes."""

    __slots__ = ()

    @property
    def scheme(self) -> str:
        return urlsplit(self).scheme

    @property
    def hostname(self) -> str | None:
        return urlsplit(self).hostname

    @property
    def port(self) -> int | None:
        return urlsplit(self).port

    @property
    def netloc(self) -> str:
        return urlsplit(self).netloc

    @property
    def path(self) -> str:
        return urlsplit(self).path

    @property
    def query(self) -> str:
        return urlsplit(self).query


class Address(NamedTuple):
    """The client's address: ``request.client.host``, ``request.client.port``."""

    host: str
    port: int


class State:
    """An attribute bag: ``app.state.db = pool`` at startup, ``app.state.db`` in handlers."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self.__dict__.update(values or {})

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"'state' has no attribute '{name}'")

    def __repr__(self) -> str:
        return f"State({self.__dict__!r})"
