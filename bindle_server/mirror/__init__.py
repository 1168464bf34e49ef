"""A pull-through mirror: serve what upstream Bindle servers hold, storing it on first use."""

from bindle_server.mirror.service import MirroredName, MirrorService
from bindle_server.mirror.upstream import Found, Upstream, UpstreamPage, UpstreamUnavailable

__all__ = [
    "Found",
    "MirrorService",
    "MirroredName",
    "Upstream",
    "UpstreamPage",
    "UpstreamUnavailable",
]
