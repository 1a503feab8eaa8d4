"""spikard: typed Python handlers served by a Rust HTTP runtime."""

from spikard._spikard import __version__
from spikard.app import Spikard
from spikard.params import Body, Cookie, Header, Path, Query
from spikard.responses import Response

__all__ = ["Body", "Cookie", "Header", "Path", "Query", "Response", "Spikard", "__version__"]
