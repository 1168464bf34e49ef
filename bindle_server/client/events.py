"""Reading a server's event stream (`GET /v1/_events`, Server-Sent Events).

`EventStream` is a blocking iterator over the invoice events the server sends; it keeps
the id of the last one, so that a new stream made after a broken connection resumes
there (`Last-Event-ID`) and misses nothing. It does not reconnect by itself: what to do
after a failure is the caller's choice (`watch` retries with backoff).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx

from bindle_server.client.calls import raise_for_status
from bindle_server.client.config import ClientConfig
from bindle_server.client.errors import Addressed, UnexpectedResponse

# The server sends a comment at least this often; a silence three times as long is a
# dead connection (e.g. a peer that vanished without closing it).
HEARTBEAT = 15.0
MEDIA_TYPE = "text/event-stream"


@dataclass(frozen=True)
class ServerEvent:
    """One event of the stream: `action` is e.g. `invoice.completed`, `data` its JSON."""

    id: int
    action: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def bindle(self) -> str:
        return str(self.data.get("bindle", ""))

    # Names contain slashes (`example.com/app`), versions never do.
    @property
    def name(self) -> str:
        return self.bindle.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.bindle.rpartition("/")[2]


def parse_events(lines: Iterable[str]) -> Iterator[ServerEvent | int]:
    """The events of an SSE body given line by line (without line ends).

    A frame with an id but no data (the server's position, sent as a stream starts)
    yields that id alone, to resume from. Comments (heartbeats) and fields other than
    `id`, `event` and `data` are skipped; a frame without an id or with data that is not
    a JSON object is refused.
    """
    fields: dict[str, list[str]] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                yield _event(fields)
            elif "id" in fields:
                yield _position(fields["id"][-1])
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))


def _position(raw_id: str) -> int:
    if not raw_id.isdigit():
        raise UnexpectedResponse(f"unreadable event stream frame: id {raw_id!r}")
    return int(raw_id)


def _event(fields: dict[str, list[str]]) -> ServerEvent:
    raw_id = (fields.get("id") or [""])[-1]
    action = (fields.get("event") or ["message"])[-1]
    try:
        data = json.loads("\n".join(fields["data"]))
        event_id = int(raw_id)
    except ValueError:
        raise UnexpectedResponse(f"unreadable event stream frame: id {raw_id!r}") from None
    if not isinstance(data, dict):
        raise UnexpectedResponse(f"event {event_id}: data is not a JSON object")
    return ServerEvent(event_id, action, data)


class EventStream:
    """The server's invoice events, filtered as `_q` filters: bindle names containing
    every term of `query`, versions matching `version` (a SemVer range).

    Starts after `last_event_id` (replaying what the server journaled since), or with the
    next event when it is None. `on_connect` is called once the server has subscribed
    the stream: from then on, no event is missed (a good time to look at what exists).
    Iterating connects; `close()` (or the `with` block's end) disconnects. Errors:
    ResponseError subclasses for refusals (Unauthorized, BadRequest), httpx.TransportError
    when the connection fails or breaks.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        query: str | None = None,
        version: str | None = None,
        last_event_id: int | None = None,
        on_connect: Callable[[], object] | None = None,
    ) -> None:
        self.config = config
        self.last_event_id = last_event_id
        self.on_connect = on_connect
        self._socket: socket.socket | None = None
        self._params = {
            key: value for key, value in (("q", query), ("v", version)) if value is not None
        }
        options = config.http_options()
        self._http = httpx.Client(
            base_url=options["base_url"],
            auth=options["auth"],
            verify=options["verify"],
            headers=options["headers"],
            follow_redirects=options["follow_redirects"],
            timeout=httpx.Timeout(config.timeout, read=3 * HEARTBEAT),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect; safe from another thread while one waits for the next event."""
        # Closing the client alone would leave a blocked read waiting for the next
        # heartbeat; shutting the socket down wakes it at once.
        sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._http.close()

    def __iter__(self) -> Iterator[ServerEvent]:
        """The events until the server ends the stream (e.g. as it shuts down)."""
        headers = {"Accept": MEDIA_TYPE}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        with self._http.stream("GET", "_events", params=self._params, headers=headers) as answer:
            if answer.status_code >= 400:
                answer.read()
                raise_for_status(answer, Addressed.OTHER, self.config.base_url)
            if not answer.headers.get("content-type", "").startswith(MEDIA_TYPE):
                raise UnexpectedResponse(
                    f"{answer.request.url} is not an event stream "
                    f"({answer.headers.get('content-type', 'no content type')})"
                )
            stream = answer.extensions.get("network_stream")
            self._socket = stream.get_extra_info("socket") if stream is not None else None
            if self.on_connect is not None:
                self.on_connect()
            for event in parse_events(answer.iter_lines()):
                if isinstance(event, int):
                    self.last_event_id = event
                    continue
                self.last_event_id = event.id
                yield event
