"""`/v1/_events`: the journal's invoice events as Server-Sent Events, live.

Each frame is `id: <journal sequence number>`, `event: <action>` and `data: <JSON>`.
A reconnecting client sends the last id it saw as `Last-Event-ID` (browsers do so by
themselves) and gets what it missed from the journal, then the live events. A comment
line every HEARTBEAT seconds keeps proxies and idle-timeouts from closing the stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from bindle_server.api.auth import Access, AccessDep
from bindle_server.api.feed import EventFeed
from bindle_server.api.openapi import query_parameters, responses
from bindle_server.auth import Verb
from bindle_server.errors import BindleError, InvalidQuery, Unauthenticated
from bindle_server.events.model import Event
from bindle_server.model.version import Version
from bindle_server.search.versions import VersionFilter, parse_version_filter

router = APIRouter()

HEARTBEAT = 15.0
# How often an open stream checks that its caller's credentials still hold: a revoked
# token, a removed user or an expired JWT ends the stream within this many seconds.
RECHECK = 5.0
# How soon a browser's EventSource reconnects after the stream breaks, in milliseconds.
RECONNECT_MS = 2000
MEDIA_TYPE = "text/event-stream"

_RESPONSES = responses(
    {200: "A stream of invoice events, as they are recorded"},
    (400, 401),
    {MEDIA_TYPE: {"schema": {"type": "string"}}},
)
_PARAMETERS = query_parameters(
    ("q", "string", "Terms that must all occur in the bindle name"),
    ("v", "string", "SemVer filter of the bindle version, as for /_q"),
    ("since", "integer", "Replay the events after this id (when Last-Event-ID is not sent)"),
)
_PARAMETERS["parameters"].append(
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "integer"},
        "description": "Resume: replay the events after this id, then go on live",
    }
)


@dataclass(frozen=True)
class EventFilter:
    """Which events one stream carries: its `q` and `v`, and what its caller may read."""

    terms: tuple[str, ...]
    versions: VersionFilter | None
    access: Access
    authorization: str | None

    def passes(self, event: Event) -> bool:
        name = event.name
        if not all(term in name for term in self.terms):
            return False
        if self.versions is not None:
            try:
                version = Version.parse(event.version)
            except ValueError:
                return False
            if not self.versions.matches(version):
                return False
        return self.access.setup.authorizer.allows(self.access.identity, Verb.READ, name)

    async def still_authenticated(self) -> bool:
        """Whether the stream's credentials still prove who opened it. An identity
        provider that cannot be reached now is not a revocation: the stream goes on."""
        if self.access.identity.is_anonymous:
            return True
        try:
            identity = await self.access.setup.authenticator.authenticate(self.authorization)
        except Unauthenticated:
            return False
        except BindleError:
            return True
        return identity.subject == self.access.identity.subject


@router.get(
    "/_events",
    response_class=StreamingResponse,
    responses=_RESPONSES,
    openapi_extra=_PARAMETERS,
)
async def stream_events(request: Request, access: AccessDep) -> StreamingResponse:
    """Invoice events (`invoice.created`, `invoice.completed`, `invoice.yanked`,
    `invoice.purged`) of the bindles the caller may read, as Server-Sent Events.

    Without `Last-Event-ID` (or `since`) the stream starts with the next event.
    """
    if access.identity.is_anonymous:
        access.require_any(Verb.READ)  # 401 before the stream starts, as for `_q`
    params = _parameters(request.query_params.multi_items())
    feed: EventFeed = request.app.state.observers.feed
    resume = _resume_id(request.headers.get("last-event-id"), params.get("since"))
    start = feed.last if resume is None else await feed.resume_point(resume)
    text = params.get("v", "")
    selected = EventFilter(
        tuple(params.get("q", "").split()),
        parse_version_filter(text) if text.strip() else None,
        access,
        request.headers.get("authorization"),
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_frames(feed, start, selected), media_type=MEDIA_TYPE, headers=headers)


async def _frames(feed: EventFeed, cursor: int, selected: EventFilter) -> AsyncIterator[str]:
    # At once, so that a client knows it is subscribed, and where: a frame with an id
    # and no data sets an EventSource's Last-Event-ID without firing an event.
    yield f"retry: {RECONNECT_MS}\nid: {cursor}\n\n"
    written = checked = time.monotonic()
    while not feed.closed:
        events = await feed.wait_after(cursor, min(HEARTBEAT, RECHECK))
        if feed.closed:
            return
        if time.monotonic() - checked >= RECHECK:
            if not await selected.still_authenticated():
                return
            checked = time.monotonic()
        for event in events:
            cursor = event.id
            if selected.passes(event):
                written = time.monotonic()
                yield frame(event, with_actor=not selected.access.identity.is_anonymous)
        # Also while every event is filtered out: silence would look like a dead stream.
        if time.monotonic() - written >= HEARTBEAT:
            written = time.monotonic()
            yield ": keep-alive\n\n"


def frame(event: Event, *, with_actor: bool = True) -> str:
    """One SSE frame. The caller's address stays in the audit log, and who pushed is
    for authenticated readers only: user and token names are not for anonymous ones."""
    data = {**event.public_fields(), "time": event.time}
    if with_actor:
        data["actor"] = event.actor
    if event.digest:
        data["digest"] = event.digest
    if event.detail:
        data["detail"] = event.detail
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.action.value}\ndata: {payload}\n\n"


def _parameters(items: Sequence[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in items:
        if name not in ("q", "v", "since"):
            raise InvalidQuery(f"unknown query parameter {name!r}; known are q, v and since")
        if name in values:
            raise InvalidQuery(f"query parameter {name!r} is given more than once")
        values[name] = value
    return values


def _resume_id(header: str | None, since: str | None) -> int | None:
    """The id to resume after: the Last-Event-ID header, else `since`; None to start live."""
    for raw, what in ((header, "the Last-Event-ID header"), (since, "query parameter 'since'")):
        if raw is None or not raw.strip():
            continue
        raw = raw.strip()
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            raise InvalidQuery(f"{what} must be an event id (a whole number), not {raw!r}")
        return int(raw)
    return None
