"""Parameter markers: where a handler argument comes from and what it must satisfy.

Used as defaults (``limit: int = Query(10, ge=1)``) or inside ``Annotated``
(``limit: Annotated[int, Query(ge=1)] = 10``). ``...`` as the default means required.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from spikard._plan import ParamSource


class Param:
    """A parameter read from the request line or headers; each subclass names where."""

    source: ClassVar[ParamSource]

    def __init__(
        self,
        default: Any = ...,
        *,
        alias: str | None = None,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        description: str | None = None,
    ) -> None:
        self.default = default
        self.alias = alias
        self.gt = gt
        self.ge = ge
        self.lt = lt
        self.le = le
        self.min_length = min_length
        self.max_length = max_length
        self.pattern = pattern
        self.description = description

    def constraints(self) -> dict[str, Any]:
        """The constraints that were given, by msgspec.Meta's names."""
        names = ("gt", "ge", "lt", "le", "min_length", "max_length", "pattern", "description")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.constraints().items())
        default = "" if self.default is ... else repr(self.default)
        return f"{type(self).__name__}({', '.join(filter(None, [default, shown]))})"


class Path(Param):
    source = "path"


class Query(Param):
    source = "query"


class Header(Param):
    """A request header; ``user_agent`` reads ``User-Agent`` (underscores become
    hyphens unless ``convert_underscores=False``)."""

    source = "header"

    def __init__(self, default: Any = ..., *, convert_underscores: bool = True, **options: Any) -> None:
        super().__init__(default, **options)
        self.convert_underscores = convert_underscores


class Cookie(Param):
    source = "cookie"


class Body:
    """The JSON request body. ``Body(embed=True)`` (or several body parameters)
    reads the parameter from its own key of an object body: ``{"item": {...}}``."""

    def __init__(
        self,
        default: Any = ...,
        *,
        embed: bool = False,
        alias: str | None = None,
        description: str | None = None,
    ) -> None:
        self.default = default
        self.embed = embed
        self.alias = alias
        self.description = description

    def __repr__(self) -> str:
        return "Body()" if self.default is ... else f"Body({self.default!r})"
