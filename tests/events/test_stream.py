"""`GET /v1/_events` on live servers: filters, resume, who sees what, shutdown, other nodes."""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bindle_server.client import ClientConfig, Unauthorized
from bindle_server.client.events import EventStream, ServerEvent, parse_events
from tests.auth.conftest import bcrypt_entry, write_policy
from tests.factories import InvoiceDoc, make_invoice, parcel
from tests.servers import ServerProcess, run_command

WAIT = 20.0  # a generous bound on every wait; no test relies on how long anything takes
TOML = {"Content-Type": "application/toml"}


END = "end of stream"


class Listener:
    """An EventStream read in a thread; `next()` hands over its events one by one."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream
        self.connected = threading.Event()
        stream.on_connect = self.connected.set
        self._events: queue.Queue[ServerEvent | BaseException | str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.connected.wait(WAIT), f"the stream did not connect: {self._events.queue}"

    def _read(self) -> None:
        try:
            for event in self.stream:
                self._events.put(event)
            self._events.put(END)
        except BaseException as exc:  # handed to the test: closing ends up here too
            self._events.put(exc)

    def next(self) -> ServerEvent:
        item = self._events.get(timeout=WAIT)
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, ServerEvent), item
        return item

    def take(self, count: int) -> list[tuple[str, str]]:
        return [(event.action, event.bindle) for event in (self.next() for _ in range(count))]

    def ended(self) -> bool:
        """Whether the server ended the stream (waiting for that, within WAIT)."""
        return self._events.get(timeout=WAIT) == END

    def close(self) -> None:
        self.stream.close()
        self._thread.join(WAIT)


@contextmanager
def listening(
    url: str,
    *,
    auth: httpx.Auth | None = None,
    query: str | None = None,
    version: str | None = None,
    last_event_id: int | None = None,
) -> Iterator[Listener]:
    config = ClientConfig.of(url, auth=auth)
    stream = EventStream(config, query=query, version=version, last_event_id=last_event_id)
    listener = Listener(stream)
    try:
        yield listener
    finally:
        listener.close()


def push(url: str, doc: InvoiceDoc, headers: dict[str, str] | None = None) -> None:
    answer = httpx.post(f"{url}/_i", content=doc.toml(), headers=TOML | (headers or {}))
    assert answer.status_code in (201, 202), answer.text


def created_and_completed(bindle_id: str) -> list[tuple[str, str]]:
    return [("invoice.created", bindle_id), ("invoice.completed", bindle_id)]


def test_the_stream_carries_only_names_and_versions_that_match(live_server: ServerProcess) -> None:
    url = live_server.url
    with listening(url, query="app", version="^1.1") as listener:
        push(url, make_invoice("example.com/other", "1.1.0"))  # name does not match
        push(url, make_invoice("example.com/app", "2.0.0"))  # version does not match
        push(url, make_invoice("example.com/app", "1.0.9"))  # version does not match
        shared = parcel("the parcel")
        doc = make_invoice("example.com/app", "1.1.0", parcels=[shared])
        push(url, doc)
        assert listener.take(1) == [("invoice.created", doc.bindle_id)]
        httpx.post(f"{url}/_i/{doc.bindle_id}@{shared.sha256}", content=shared.data)
        completed = listener.next()
        assert (completed.action, completed.bindle) == ("invoice.completed", doc.bindle_id)
        assert completed.name == "example.com/app" and completed.version == "1.1.0"
        # Who pushed is for authenticated readers; the address is for the audit log only.
        assert "actor" not in completed.data and "address" not in completed.data
        assert httpx.delete(f"{url}/_i/{doc.bindle_id}").status_code == 200
        assert listener.take(1) == [("invoice.yanked", doc.bindle_id)]


def test_a_stream_resumes_after_its_last_event_id_or_starts_live(
    live_server: ServerProcess,
) -> None:
    url = live_server.url
    first = make_invoice("example.com/app", "1.0.0")
    with listening(url) as listener:
        push(url, first)
        events = [listener.next(), listener.next()]
    last_seen = events[-1].id
    missed = make_invoice("example.com/app", "1.1.0")
    push(url, missed)  # while nobody listens

    with listening(url, last_event_id=last_seen) as resumed:
        assert resumed.take(2) == created_and_completed(missed.bindle_id)
    # Without an id, what happened before is not replayed: the next event is the new one.
    with listening(url) as fresh:
        later = make_invoice("example.com/app", "1.2.0")
        push(url, later)
        assert fresh.take(2) == created_and_completed(later.bindle_id)
    # `?since=` does what the header does, for clients that cannot send headers.
    with httpx.stream(
        "GET", f"{url}/_events", params={"since": str(last_seen)}, timeout=WAIT
    ) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers["x-accel-buffering"] == "no"
        frames = parse_events(answer.iter_lines())
        position, replayed = next(frames), next(frames)
    assert position == last_seen  # where it starts, then what followed
    assert isinstance(replayed, ServerEvent) and replayed.id == last_seen + 1
    check_bad_parameters_are_refused(live_server)


def check_bad_parameters_are_refused(live_server: ServerProcess) -> None:
    """400 with a TOML error, before any stream starts (part of a test: saves a server)."""
    url = f"{live_server.url}/_events"
    for params, headers in (
        ({"x": "1"}, {}),
        ({"v": "not a range"}, {}),
        ({"since": "-3"}, {}),
        ({}, {"Last-Event-ID": "abc"}),
    ):
        answer = httpx.get(url, params=params, headers=headers, timeout=WAIT)
        assert answer.status_code == 400, (params, headers)
        assert answer.text.startswith("error = "), answer.text


def test_each_reader_sees_only_the_names_it_may_read(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    users = tmp_path / "htpasswd"
    users.write_text(f"{bcrypt_entry('alice', 'a-secret')}\n{bcrypt_entry('bob', 'b-secret')}\n")
    policy = write_policy(
        tmp_path / "policy.toml",
        {"subjects": ["user:alice"], "prefixes": ["*"], "verbs": ["read", "create"]},
        {"subjects": ["user:bob"], "prefixes": ["example.com/public/"], "verbs": ["read"]},
    )
    server = server_factory(None, "--htpasswd-file", str(users), "--auth-policy", str(policy))
    alice = httpx.BasicAuth("alice", "a-secret")
    with EventStream(ClientConfig.of(server.url)) as anonymous, pytest.raises(Unauthorized):
        next(iter(anonymous))  # anonymous read is off: refused before the stream starts
    with listening(server.url, auth=httpx.BasicAuth("bob", "b-secret")) as bob:
        secret = make_invoice("example.com/secret/app", "1.0.0")
        public = make_invoice("example.com/public/app", "1.0.0")
        for doc in (secret, public):
            answer = httpx.post(f"{server.url}/_i", content=doc.toml(), headers=TOML, auth=alice)
            assert answer.status_code == 201, answer.text
        # The secret bindle's events came first; bob's stream skipped them.
        created = bob.next()
        assert (created.action, created.bindle) == ("invoice.created", public.bindle_id)
        assert created.data["actor"] == "user:alice"
        assert bob.take(1) == [("invoice.completed", public.bindle_id)]


def test_a_stream_ends_once_its_token_is_revoked(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    created = run_command("token", "create", "--name", "watcher", "--directory", str(data))
    assert created.returncode == 0, created.stderr
    token = {"Authorization": f"Bearer {created.stdout.strip()}"}
    writer = run_command("token", "create", "--name", "writer", "--directory", str(data))
    pusher = {"Authorization": f"Bearer {writer.stdout.strip()}"}
    server = server_factory(data)
    with listening(server.url, auth=_Headers(token)) as listener:
        before = make_invoice("example.com/revoked/app", "1.0.0")
        push(server.url, before, pusher)
        assert listener.take(2) == created_and_completed(before.bindle_id)
        revoked = run_command("token", "revoke", "watcher", "--directory", str(data))
        assert revoked.returncode == 0, revoked.stderr
        # Within the re-check interval the server ends the stream; what is pushed after
        # the revocation never reaches it.
        assert listener.ended()
        push(server.url, make_invoice("example.com/revoked/app", "2.0.0"), pusher)
    again = EventStream(ClientConfig.of(server.url, auth=_Headers(token)))
    with again, pytest.raises(Unauthorized):
        next(iter(again))


class _Headers(httpx.Auth):
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.headers)
        yield request


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_open_stream_does_not_hold_up_shutdown(
    live_server: ServerProcess, sig: signal.Signals
) -> None:
    with listening(live_server.url) as listener:
        live_server.process.send_signal(sig)
        assert listener.ended()
        # Bounded: a stream that kept the server waiting would fail here, not hang.
        live_server.process.wait(WAIT)
    assert "Finished server process" in live_server.log()


def test_a_stream_on_one_process_carries_what_another_recorded(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # Two servers on one data directory, as the workers of `--workers N` are.
    shared = tmp_path / "shared"
    reader, writer = server_factory(shared), server_factory(shared)
    with listening(reader.url) as listener:
        doc = make_invoice("example.com/app", "3.0.0")
        push(writer.url, doc)
        assert listener.take(2) == created_and_completed(doc.bindle_id)


def test_streams_follow_other_nodes_through_postgresql(
    server_factory: Callable[..., ServerProcess], postgres_url: str, tmp_path: Path
) -> None:
    nodes = [
        server_factory(tmp_path / f"node-{number}", "--index", postgres_url) for number in range(2)
    ]
    with listening(nodes[0].url, query="app") as listener:
        doc = make_invoice("example.com/app", "4.0.0")
        push(nodes[1].url, doc)
        assert listener.take(2) == created_and_completed(doc.bindle_id)
