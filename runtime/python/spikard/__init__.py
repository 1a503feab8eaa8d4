"""spikard: typed Python handlers served by a Rust HTTP runtime."""

from spikard import status
from spikard._spikard import __version__
from spikard.app import Spikard
from spikard.datastructures import Headers, QueryParams, State
from spikard.exceptions import HTTPException, RequestValidationError
from spikard.params import Body, Cookie, Header, Path, Query
from spikard.requests import Request
from spikard.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from spikard.routers import Router

# FastAPI's name for a router, so that ported imports keep working.
APIRouter = Router

__all__ = [
    "APIRouter",
    "Body",
    "Cookie",
    "HTMLResponse",
    "HTTPException",
    "Header",
    "Headers",
    "JSONResponse",
    "Path",
    "PlainTextResponse",
    "Query",
    "QueryParams",
    "RedirectResponse",
    "Request",
    "RequestValidationError",
    "Response",
    "Router",
    "Spikard",
    "State",
    "__version__",
    "status",
]
